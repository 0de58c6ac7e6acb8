// Gradients through AutoencoderKLCogVideoX against PyTorch autograd on the original code (fixtures from
// reference/gen_vae_grad.py, documented in reference/vae_fixtures.md): loss = sum(output · R), the gradient of every
// parameter (passed as overrides: `params`) and of the input, through Fun's encode and decode chunking and
// diffusers' decode chunking — on every backend.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AutoencoderKLCogVideoX } from '../src/models/vae.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { diff, expectClose, FIXTURES, loadFixture, useBackend, describeEachBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'vae', 'grad');
// Reference gradients are exact (float64 autograd on the fp32 weights, rounded once). Worst rel-L2 measured over both
// backends (wasm, tensorflow): 9.9e-6 for one parameter (a conv bias: its gradient sums thousands of float32 terms
// of both signs), 2.0e-6 over all of a case's parameter gradients together, 2.1e-6 for the input gradient. Per
// parameter ≈ 10× the worst; together and for the input, the 1e-5 bar (≈ 5×).
const PARAM_TOL = 1e-4;
const ALL_TOL = 1e-5;
const OUT_TOL = { relL2: 1e-5 };

afterAll(() => shutdownBackend());

const CASES = [
  { what: 'encode (chunks of 9 and 8 frames)', file: 'encode.safetensors', prefix: 'encoder.' },
  { what: 'decode, Fun chunking (calls (0), (1,2))', file: 'decode_fun.safetensors', prefix: 'decoder.', chunking: 'fun' as const },
  { what: 'decode, diffusers chunking (call (0,1,2), odd split)', file: 'decode_diffusers.safetensors', prefix: 'decoder.', chunking: 'diffusers' as const },
];

describeEachBackend('VAE gradients on %s', (backend) => {
  let vae: AutoencoderKLCogVideoX;
  beforeAll(async () => {
    await useBackend(backend);
    vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(DIR, 'vae'));
  });
  afterAll(() => vae?.dispose());

  it.each(CASES.map((c) => [c.what, c] as const))('%s: every parameter and the input, as PyTorch autograd', (_, c) => {
    const fx = loadFixture(path.join(DIR, c.file));
    const t = (k: string) => tf.tensor(fx.f32(k), fx.shape(k));
    const before = tf.memory().numTensors;
    const names = vae.parameterNames().filter((n) => n.startsWith(c.prefix));
    const expected = fx.names().filter((k) => k.startsWith(`grad.${c.prefix}`)).map((k) => k.slice(5));
    expect([...names].sort()).toEqual([...expected].sort());
    // trainable variables initialised from the checkpoint; the input is a variable too
    const variable = (init: tf.Tensor, name: string) => {
      const v = tf.variable(init, true, `${backend}/${c.file}/${name}`);
      init.dispose();
      return v;
    };
    const vars = new Map(names.map((n) => [n, variable(vae.readParameter(n), n)] as const));
    const input = variable(t('input'), 'input');
    const R = t('R');
    let output: tf.Tensor | null = null;
    const { value, grads } = tf.variableGrads(() => {
      const params = (n: string) => vars.get(n);
      const out = c.chunking ? vae.decode(input as tf.Variable as unknown as tf.Tensor5D, { params, chunking: c.chunking }) : vae.encode(input as unknown as tf.Tensor5D, { params }).moments;
      output = tf.keep(tf.clone(out));
      return tf.sum(tf.mul(out, R)) as tf.Scalar;
    });
    expectClose(`${backend} ${c.file} output`, output!, fx.f32('output'), fx.shape('output'), OUT_TOL);
    expect(Math.abs(value.dataSync()[0]! - fx.f32('loss')[0]!) / Math.abs(fx.f32('loss')[0]!)).toBeLessThan(1e-5);
    let worst = { name: '', relL2: 0 };
    let num = 0;
    let den = 0;
    const check = (name: string, key: string, g: tf.Tensor | undefined) => {
      expect(g, `${name}: no gradient`).toBeDefined();
      expect(g!.shape).toEqual(fx.shape(key));
      const ref = fx.f32(key);
      const d = diff(g!.dataSync(), ref);
      if (!(d.relL2 <= worst.relL2)) worst = { name, relL2: d.relL2 };
      const sq = ref.reduce((a, v) => a + v * v, 0);
      num += d.relL2 * d.relL2 * sq;
      den += sq;
      expect(d.relL2, `${backend} ${c.file} gradient of ${name}`).toBeLessThanOrEqual(name === 'input' ? ALL_TOL : PARAM_TOL);
    };
    check('input', 'grad.input', grads[input.name]);
    const inputRel = worst.relL2;
    worst = { name: '', relL2: 0 };
    num = den = 0;
    for (const [n, v] of vars) check(n, `grad.${n}`, grads[v.name]);
    const all = Math.sqrt(num / den);
    console.log(
      `${backend} ${c.file}: input gradient rel-L2 ${inputRel.toExponential(2)}; ${vars.size} parameter gradients: all together ${all.toExponential(2)}, worst ${worst.relL2.toExponential(2)} (${worst.name})`,
    );
    expect(all).toBeLessThanOrEqual(ALL_TOL);
    if (!c.chunking) {
      // the posterior's KL term, as diffusers' DiagonalGaussianDistribution.kl()
      const post = vae.encode(input as unknown as tf.Tensor5D, { params: (n) => vars.get(n) });
      const kl = post.kl();
      expectClose(`${backend} posterior kl`, kl, fx.f32('kl'), fx.shape('kl'), OUT_TOL);
      kl.dispose();
      post.dispose();
    }
    tf.dispose([value, R, output!, ...Object.values(grads)]);
    vars.forEach((v) => v.dispose());
    input.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('takes the differentiable path by itself under tf.grad, with the checkpoint weights', () => {
    const fx = loadFixture(path.join(DIR, 'decode_fun.safetensors'));
    const z = tf.tensor5d(fx.f32('input'), fx.shape('input') as [number, number, number, number, number]);
    const R = tf.tensor(fx.f32('R'), fx.shape('R'));
    const before = tf.memory().numTensors;
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(vae.decode(x as tf.Tensor5D), R)))(z);
    expectClose(`${backend} tf.grad decode input`, g, fx.f32('grad.input'), fx.shape('grad.input'), { relL2: ALL_TOL });
    g.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([z, R]);
  });

  it('names a bad parameter override or name', () => {
    const z = tf.zeros([1, 4, 1, 2, 2]) as tf.Tensor5D;
    const bad = tf.zeros([3, 3]);
    expect(() => vae.decode(z, { params: (n) => (n === 'decoder.conv_in.conv.weight' ? bad : undefined) })).toThrow(
      /params\("decoder\.conv_in\.conv\.weight"\) has shape \[3, 3\], the checkpoint's is \[8, 4, 3, 3, 3\]/,
    );
    expect(() => vae.readParameter('decoder.nope')).toThrow(/"decoder\.nope" is not a parameter of this VAE/);
    const w = vae.readParameter('decoder.conv_in.conv.weight');
    expect(w.shape).toEqual([8, 4, 3, 3, 3]);
    tf.dispose([z, bad, w]);
  });
});
