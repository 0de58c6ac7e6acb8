// The VAE's weights for each execution strategy, built once from the checkpoint layout (src/weights/vae_names.ts):
//   streaming (src/nn/vae/stream_ops.ts): convs re-laid out for the conv kernels, GroupNorm γ/β as host arrays, in
//     Parts uploaded when a call needs them (per block, or resident);
//   tensor ops (src/nn/vae/tensor_ops.ts): checkpoint names, looked up (or overridden) when an op runs.
// The eps of every norm is decided here: ResNet GroupNorms use norm_eps; the encoder's norm_out and every
// SpatialNorm3D's GroupNorm use 1e-6 whatever norm_eps says (autoencoder_kl_cogvideox.py:755, autoencoder_magvit.py:171).
import { causalConv3dFromHost, conv2dFromHost, disposeCausalConv3d } from '../../nn/conv.js';
import { disposeNorm, disposeResample, type StreamW } from '../../nn/vae/stream_weights.js';
import type { TensorW } from '../../nn/vae/tensor_ops.js';
import type { DecoderOf, EncoderOf, Part, ResnetOf, VaeWeightKinds } from '../../nn/vae/types.js';
import type { HostTensor } from '../../weights/host_tensor.js';
import {
  isSpatialNorm,
  type ConvNames,
  type DecoderLayout,
  type EncoderLayout,
  type NormNames,
  type ResampleNames,
  type ResnetNames,
  type SpatialNormNames,
} from '../../weights/vae_names.js';

export type EncoderW = EncoderOf<StreamW>;
export type DecoderW = DecoderOf<StreamW>;
export type WeightGetter = (name: string) => HostTensor;

/** How one strategy makes (and frees) each kind of weight. */
interface Factory<W extends VaeWeightKinds> {
  conv(n: ConvNames): W['conv'];
  norm(n: NormNames, eps: number): W['norm'];
  snorm(n: SpatialNormNames, eps: number): W['snorm'];
  resample(n: ResampleNames): W['resample'];
  freeConv(w: W['conv']): void;
  freeNorm(w: W['norm'] | W['snorm']): void;
  freeResample(w: W['resample']): void;
  part<T>(load: () => T, dispose: (w: T) => void): Part<T>;
}

const SPATIAL_NORM_EPS = 1e-6;
const NORM_OUT_EPS = 1e-6;

function parts<W extends VaeWeightKinds>(f: Factory<W>, eps: number) {
  const norm = (n: NormNames | SpatialNormNames) => (isSpatialNorm(n) ? f.snorm(n, SPATIAL_NORM_EPS) : f.norm(n, eps));
  const resnet = (n: ResnetNames): ResnetOf<W> => ({
    norm1: norm(n.norm1),
    conv1: f.conv(n.conv1),
    norm2: norm(n.norm2),
    conv2: f.conv(n.conv2),
    shortcut: n.shortcut ? f.conv(n.shortcut) : null,
  });
  const freeResnet = (r: ResnetOf<W>) => {
    f.freeNorm(r.norm1);
    f.freeNorm(r.norm2);
    f.freeConv(r.conv1);
    f.freeConv(r.conv2);
    if (r.shortcut) f.freeConv(r.shortcut);
  };
  return {
    conv: (n: ConvNames) => f.part(() => f.conv(n), (w) => f.freeConv(w)),
    resnet: (n: ResnetNames) => f.part(() => resnet(n), freeResnet),
    resample: (n: ResampleNames | null) => (n ? f.part(() => f.resample(n), (w) => f.freeResample(w)) : null),
  };
}

export function buildEncoder<W extends VaeWeightKinds>(l: EncoderLayout, f: Factory<W>, eps: number): EncoderOf<W> {
  const p = parts(f, eps);
  return {
    convIn: p.conv(l.convIn),
    down: l.down.map((b) => ({ resnets: b.resnets.map(p.resnet), downsample: p.resample(b.downsample) })),
    mid: l.mid.map(p.resnet),
    normOut: f.norm(l.normOut, NORM_OUT_EPS),
    convOut: p.conv(l.convOut),
  };
}

export function buildDecoder<W extends VaeWeightKinds>(l: DecoderLayout, f: Factory<W>, eps: number): DecoderOf<W> {
  const p = parts(f, eps);
  return {
    convIn: p.conv(l.convIn),
    mid: l.mid.map(p.resnet),
    up: l.up.map((b) => ({ resnets: b.resnets.map(p.resnet), upsample: p.resample(b.upsample) })),
    normOut: f.part(() => f.snorm(l.normOut, SPATIAL_NORM_EPS), (w) => f.freeNorm(w)),
    convOut: p.conv(l.convOut),
  };
}

/** Every part of an encoder or decoder (e.g. to upload them now, or to free them). */
export function allParts<W extends VaeWeightKinds>(w: EncoderOf<W> | DecoderOf<W>): Part<unknown>[] {
  if ('down' in w) return [w.convIn, ...w.down.flatMap((b) => [...b.resnets, ...(b.downsample ? [b.downsample] : [])]), ...w.mid, w.convOut];
  return [w.convIn, ...w.mid, ...w.up.flatMap((b) => [...b.resnets, ...(b.upsample ? [b.upsample] : [])]), w.normOut, w.convOut];
}

/**
 * A part of the weights, uploaded when a call needs it. Resident parts stay on the backend after their first use;
 * per-block parts are uploaded for each use and freed right after (so a wasm heap holds one block's weights — and
 * XNNPACK's packed copy of them — at a time).
 */
export function part<T>(load: () => T, dispose: (w: T) => void, resident: boolean): Part<T> {
  let kept: T | null = null;
  return {
    use<R>(fn: (w: T) => R): R {
      if (resident) {
        kept ??= load();
        return fn(kept);
      }
      const w = load();
      try {
        return fn(w);
      } finally {
        dispose(w);
      }
    },
    release() {
      if (kept !== null) dispose(kept);
      kept = null;
    },
  };
}

/** Streaming weights from checkpoint tensors, uploaded per block or kept resident. */
export function streamFactory(get: WeightGetter, groups: number, resident: boolean): Factory<StreamW> {
  const conv = (n: ConvNames) => causalConv3dFromHost(get(n.weight), get(n.bias));
  const norm = (n: NormNames, eps: number) => ({ groups, eps, gamma: get(n.weight).toFloat32(), beta: get(n.bias).toFloat32() });
  return {
    conv,
    norm,
    snorm: (n, eps) => ({ norm: norm(n.norm, eps), convY: conv(n.convY), convB: conv(n.convB) }),
    resample: (n) => ({ conv: conv2dFromHost(get(n.conv.weight), get(n.conv.bias)), compressTime: n.compressTime }),
    freeConv: disposeCausalConv3d,
    freeNorm: disposeNorm,
    freeResample: disposeResample,
    part: (load, dispose) => part(load, dispose, resident),
  };
}

/** Tensor-ops weights: checkpoint names (the strategy looks them up when an op runs). */
export function namesFactory(groups: number): Factory<TensorW> {
  const conv = (n: ConvNames) => ({ weight: n.weight, bias: n.bias });
  const norm = (n: NormNames, eps: number) => ({ weight: n.weight, bias: n.bias, groups, eps });
  const none = () => undefined;
  return {
    conv,
    norm,
    snorm: (n, eps) => ({ norm: norm(n.norm, eps), convY: conv(n.convY), convB: conv(n.convB) }),
    resample: (n) => ({ conv: conv(n.conv), compressTime: n.compressTime }),
    freeConv: none,
    freeNorm: none,
    freeResample: none,
    part: (load) => part(load, none, true),
  };
}
