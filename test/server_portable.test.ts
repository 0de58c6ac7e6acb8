// Paths of a job as they travel to remote workers (src/server/portable.ts): rewritten relative to the output folder,
// the models folder and the demo model, and resolved by a worker inside its own folders only.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoModelDir } from '../src/cli/demo.js';
import { fromPortableSpec, toPortablePath, toPortableSpec } from '../src/server/portable.js';
import type { JobSpec } from '../src/server/types.js';

const server = { outputDir: '/srv/out', modelsDir: '/srv/models' };
const worker = { outputDir: '/mnt/shared/out', modelsDir: '/opt/models' };

function spec(over: Partial<JobSpec['job']> = {}, id = '20261202-101010-abcdef'): JobSpec {
  const work = `/srv/out/.${id}.partial`;
  return {
    id,
    job: { model: '/srv/models/Diffusion_Transformer/m', image: `${work}/inputs/image.png`, outTmp: `${work}/sample.mp4.tmp`, loras: [{ path: '/srv/models/Personalized_Model/l.safetensors', weight: 0.5 }], ...over } as JobSpec['job'],
    settings: {} as JobSpec['settings'],
    workDir: work,
    finalDir: `/srv/out/${id}`,
    resultName: 'sample.mp4',
    submittedAt: '2026-12-02T10:10:10.000Z',
  };
}

describe('portable job paths', () => {
  it('a server spec becomes the same job under the worker’s own folders', () => {
    const p = toPortableSpec(spec(), server);
    expect(p.job.model).toBe('{models}/Diffusion_Transformer/m');
    expect(p.workDir).toBe('{out}/.20261202-101010-abcdef.partial');
    const w = fromPortableSpec(p, worker);
    expect(w.job.model).toBe('/opt/models/Diffusion_Transformer/m');
    expect(w.job.image).toBe('/mnt/shared/out/.20261202-101010-abcdef.partial/inputs/image.png');
    expect(w.job.loras[0]!.path).toBe('/opt/models/Personalized_Model/l.safetensors');
    expect(w.finalDir).toBe('/mnt/shared/out/20261202-101010-abcdef');
    const demo = toPortableSpec(spec({ model: demoModelDir() }), server);
    expect(demo.job.model).toBe('{demo}/');
    expect(fromPortableSpec(demo, worker).job.model).toBe(demoModelDir());
  });

  it('refuses paths outside the roots, on either side, naming the field', () => {
    expect(() => toPortablePath(server, '/etc/passwd', 'model')).toThrow(/model: \/etc\/passwd lies outside/);
    const p = toPortableSpec(spec(), server);
    const bad: [Partial<JobSpec['job']>, RegExp][] = [
      [{ model: '{models}/../../etc' }, /model.*leaves its root/],
      [{ model: '/etc' }, /model.*must lie in the models folder/],
      [{ image: '/tmp/x.png' }, /image.*outside the job's own folders/],
      [{ model: '{out}/x' }, /model.*models folder/],
      [{ outTmp: '{out}/other-job/sample.mp4' }, /outTmp.*outside the job's own folders/],
      [{ image: '{models}/x.png' }, /image.*outside the job's own folders/],
    ];
    for (const [over, re] of bad) expect(() => fromPortableSpec({ ...p, job: { ...p.job, ...over } }, worker)).toThrow(re);
    expect(() => fromPortableSpec({ ...p, id: '../x' }, worker)).toThrow(/job field id/);
    expect(() => fromPortableSpec(p, { outputDir: '/o' })).toThrow(/no --models-dir/);
    expect(path.isAbsolute(fromPortableSpec(p, worker).workDir)).toBe(true);
  });
});

describe('worker and serve --redis options', () => {
  it('refuse a missing or malformed Redis URL and bad numbers, naming the option', async () => {
    const { parseWorkerArgs } = await import('../src/cli/work.js');
    const { checkRedisUrl } = await import('../src/server/redis.js');
    expect(() => parseWorkerArgs([])).toThrow(/--redis URL is required/);
    expect(() => parseWorkerArgs(['--redis', 'redis://h:1', '--concurrency', '0'])).toThrow(/--concurrency must be an integer between 1 and 16, got "0"/);
    expect(() => parseWorkerArgs(['--redis', 'redis://h:1', '--lock-ms', '10'])).toThrow(/--lock-ms/);
    expect(parseWorkerArgs(['--redis', 'rediss://:pw@h:6380', '--stalled-ms', '500'])).toMatchObject({ redis: 'rediss://:pw@h:6380', concurrency: 1, lockMs: 30_000, stalledMs: 500 });
    expect(() => checkRedisUrl('http://h:1')).toThrow(/--redis must start with redis:\/\/ or rediss:\/\/, got "http:\/\/"/);
    expect(() => checkRedisUrl('not a url')).toThrow(/--redis must be a URL like redis:\/\/HOST:PORT/);
    expect(checkRedisUrl('redis://:secret@h:1')).not.toContain('secret'); // messages never show the password
  });
});
