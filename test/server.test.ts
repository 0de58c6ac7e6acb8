// `cogvideox-fun serve` over real HTTP on 127.0.0.1 with the bundled demo model: every endpoint, the bad inputs
// (each a 4xx naming its field, nothing written), cancel of queued and running jobs, 20 jobs in order, and
// CogVideoX-Fun's API routes answered in Fun's shape to the bodies Fun's client (cogvideox/api/post_infer.py) sends.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bundle } from '../scripts/demo/bundle.js';
import { DEMO_DEFAULTS, DEMO_MODEL_ENV, demoModelDir, readDemoInfo, type DemoInfo } from '../src/cli/demo.js';
import { generateUsage } from '../src/cli/usage.js';
import { createServer } from '../src/server/server.js';
import { call, DEMO_MODEL, readEvents, smallPng, startTestServer, waitFinished, type TestServer } from './server_helpers.js';

const TOKEN = 'test-token-123';
let t: TestServer;

/** Output folder entries other than finished job folders (partial folders, stray files). */
function strays(): string[] {
  return fs.readdirSync(t.outputDir).filter((n) => n.startsWith('.'));
}

beforeAll(async () => {
  t = await startTestServer({ token: TOKEN });
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe('job API', () => {
  it('runs a job: 202 → events → done, result MP4, record with settings and seed', async () => {
    const r = await call(t, 'POST', '/v1/jobs', { prompt: 'a cat playing guitar', steps: 4, seed: 7, sampler: 'euler' });
    expect(r.status).toBe(202);
    expect(r.body.id).toMatch(/^[\w-]+$/);
    const events = await readEvents(t, r.body.id);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('state');
    expect(types.at(-1)).toBe('done');
    const steps = events.filter((e) => e.type === 'step').map((e) => e.data.step);
    expect(steps).toEqual([1, 2, 3, 4]);
    expect(types).toContain('stage');
    expect(events.find((e) => e.type === 'step')!.data).toHaveProperty('etaSeconds');

    const info = (await call(t, 'GET', `/v1/jobs/${r.body.id}`)).body;
    expect(info.state).toBe('done');
    expect(info.settings).toMatchObject({ prompt: 'a cat playing guitar', steps: 4, seed: '7', sampler: 'Euler', frames: 9, width: 96, height: 64 });
    const res = await call(t, 'GET', `/v1/jobs/${r.body.id}/result`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('video/mp4');
    expect((res.body as Buffer).subarray(4, 8).toString()).toBe('ftyp');
    const range = await call(t, 'GET', `/v1/jobs/${r.body.id}/result`, undefined, { Range: 'bytes=0-99' });
    expect(range.status).toBe(206);
    expect((range.body as Buffer).length).toBe(100);

    const record = JSON.parse(fs.readFileSync(path.join(t.outputDir, r.body.id, 'record.json'), 'utf8'));
    expect(record.settings).toMatchObject({ seed: '7', steps: 4, sampler: 'Euler', prompt: 'a cat playing guitar' });
    expect(record.output).toEqual({ file: 'sample.mp4', width: 96, height: 64, frames: 9 });
    expect(strays()).toEqual([]);
  });

  it('image to video from a multipart upload, PNG output for one frame, LoRA from the models folder', async () => {
    const fd = new FormData();
    fd.append('prompt', 'i2v');
    fd.append('steps', '2');
    fd.append('frames', '5');
    fd.append('lora', 'Personalized_Model/lora_a.safetensors:0.7');
    fd.append('image', new Blob([await smallPng()], { type: 'image/png' }), 'start.png');
    const r = await call(t, 'POST', '/v1/jobs', fd);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const done = await waitFinished(t, r.body.id);
    expect(done.state, done.error).toBe('done');
    expect(done.settings.inputs).toEqual(['image']);
    expect(done.settings.lora).toEqual([{ path: 'Personalized_Model/lora_a.safetensors', weight: 0.7 }]);
    const input = await call(t, 'GET', `/v1/jobs/${r.body.id}/inputs/image`);
    expect(input.headers.get('content-type')).toBe('image/png');

    const img = await call(t, 'POST', '/v1/jobs', { prompt: 'one frame', frames: 1, steps: 2, image: (await smallPng()).toString('base64'), resizeToReference: true });
    expect(img.status, JSON.stringify(img.body)).toBe(202);
    const d2 = await waitFinished(t, img.body.id);
    expect(d2.state, d2.error).toBe('done');
    expect(d2.result.format).toBe('png');
    const png = await call(t, 'GET', `/v1/jobs/${img.body.id}/result`);
    expect(png.headers.get('content-type')).toBe('image/png');
  });

  it('refuses bad input with a 4xx naming the field, before any compute, writing nothing', async () => {
    const png = (await smallPng()).toString('base64');
    const truncated = (await smallPng()).subarray(0, 60).toString('base64');
    const cases: [string, Record<string, unknown>, string, number?][] = [
      ['unknown field', { prompt: 'x', bogus: 1 }, 'bogus'],
      ['size not a multiple of 16', { width: 100 }, 'width'],
      ['frame count not 4k+1', { frames: 10 }, 'frames'],
      ['more frames than the model takes', { frames: 13 }, 'frames'],
      ['steps 0', { steps: 0 }, 'steps'],
      ['steps not a number', { steps: 'ten' }, 'steps'],
      ['unknown sampler', { sampler: 'Heun' }, 'sampler'],
      ['negative guidance', { guidance: -1 }, 'guidance'],
      ['seed not an integer', { seed: 'abc' }, 'seed'],
      ['strength out of range', { strength: 1.5 }, 'strength'],
      ['not an image', { image: Buffer.from('hello world, not a picture').toString('base64') }, 'image'],
      ['truncated PNG', { image: truncated }, 'image'],
      ['not base64', { image: '%%%' }, 'image'],
      ['end image without start image', { endImage: png }, 'endImage'],
      ['mask without video', { mask: png, image: png }, 'mask'],
      ['model outside the models folder', { model: '../../etc' }, 'model'],
      ['absolute model path outside', { model: '/etc' }, 'model'],
      ['LoRA outside the models folder', { lora: '/etc/passwd' }, 'lora'],
      ['LoRA missing', { lora: 'Personalized_Model/nope.safetensors' }, 'lora'],
      ['memory plan refuses', { width: 16384, height: 16384 }, 'height'],
      ['segment without longVideo', { segment: 9 }, 'segment'],
      ['png of many frames', { format: 'png', frames: 9 }, 'format'],
    ];
    for (const [what, body, field, status] of cases) {
      const r = await call(t, 'POST', '/v1/jobs', body);
      expect(r.status, `${what}: ${JSON.stringify(r.body)}`).toBe(status ?? 400);
      expect(r.body.field, `${what}: ${JSON.stringify(r.body)}`).toBe(field);
      expect(r.body.error, what).toMatch(new RegExp(field.replace(/[A-Z]/g, (c) => `[${c}${c.toLowerCase()}]`)));
    }
    const notJson = await call(t, 'POST', '/v1/jobs', '{not json', { 'Content-Type': 'application/json' });
    expect(notJson.status).toBe(400);
    // over the 50 MB default upload limit, as a multipart file part
    const fd = new FormData();
    fd.append('image', new Blob([Buffer.alloc(51 * 2 ** 20, 1)]), 'big.png');
    const big = await call(t, 'POST', '/v1/jobs', fd);
    expect(big.status).toBe(413);
    expect(big.body.field).toBe('image');
    expect(strays()).toEqual([]);
    const jobs = (await call(t, 'GET', '/v1/jobs')).body.jobs;
    expect(jobs.filter((j: { settings: { prompt: string } }) => j.settings.prompt === 'x')).toEqual([]);
  });

  it('needs the token on API routes, not on the page', async () => {
    expect((await call(t, 'GET', '/v1/jobs', undefined, { Authorization: '' })).status).toBe(401);
    expect((await call(t, 'GET', '/v1/jobs', undefined, { Authorization: 'Bearer wrong-token' })).status).toBe(401);
    expect((await call(t, 'GET', `/v1/jobs?token=${TOKEN}`, undefined, { Authorization: '' })).status).toBe(200);
    const page = await fetch(`${t.base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<form id="form"');
    expect((await fetch(`${t.base}/static/app.js`)).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${t.base}/static/..%2Fpackage.json`)).status).toBe(404);
  });

  it('serves the OpenAPI document, models, health, 404 / 409 answers', async () => {
    const doc = (await call(t, 'GET', '/openapi.json')).body;
    expect(doc.openapi).toBe('3.1.0');
    for (const p of ['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/events', '/v1/jobs/{id}/result', '/cogvideox_fun/infer_forward', '/cogvideox_fun/update_diffusion_transformer']) {
      expect(doc.paths).toHaveProperty([p]);
    }
    expect(Object.keys(doc.components.schemas.JobRequest.properties)).toEqual(expect.arrayContaining(['prompt', 'negativePrompt', 'frames', 'height', 'width', 'steps', 'guidance', 'sampler', 'seed', 'strength', 'fps', 'lora', 'longVideo', 'segment', 'overlap', 'resizeToReference', 'image', 'endImage', 'video', 'mask']));
    const models = (await call(t, 'GET', '/v1/models')).body;
    expect(models.models.map((m: { path: string }) => m.path)).toEqual(['Diffusion_Transformer/CogVideoX-Fun-2b-InP']);
    expect(models.loras).toEqual(['Personalized_Model/lora_a.safetensors']);
    expect(models.samplers).toContain('Euler A');
    // the committed folder's demo.json, or null without one (then the page keeps calling the output noise)
    expect(models.current).toMatchObject({ path: 'demo', demo: true, demoInfo: readDemoInfo(DEMO_MODEL) });
    // what a job naming no steps or guidance gets (the page starts its sliders there): the demo's own
    expect(models.current.sampling).toEqual({ steps: DEMO_DEFAULTS.steps, guidance: DEMO_DEFAULTS.guidance, guidanceWithImage: DEMO_DEFAULTS.guidanceWithImage });
    expect(doc.components.schemas.Models.properties.current.required).toContain('sampling');
    expect(doc.paths['/v1/models'].get.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/Models');
    expect(doc.components.schemas.Models.properties.current.properties.demoInfo.oneOf[0].$ref).toBe('#/components/schemas/DemoInfo');
    expect(doc.components.schemas.DemoInfo.required).toEqual(expect.arrayContaining(['trained', 'example_prompt', 'colors', 'shapes', 'directions', 'backgrounds', 'held_out', 'output']));
    expect((await call(t, 'GET', '/v1/health')).body.ok).toBe(true);
    expect((await call(t, 'GET', '/v1/jobs/nope')).status).toBe(404);
    expect((await call(t, 'DELETE', '/v1/jobs/nope')).status).toBe(404);
    const done = (await call(t, 'GET', '/v1/jobs')).body.jobs.find((j: { state: string }) => j.state === 'done');
    expect((await call(t, 'DELETE', `/v1/jobs/${done.id}`)).status).toBe(409);
  });
});

describe('queue', () => {
  it('cancels a running job within a step: no output, worker memory back to its level; and a queued one', async () => {
    const before = t.server.ctx.pool.memory()[0]!;
    const running = await call(t, 'POST', '/v1/jobs', { prompt: 'long', steps: 1000 });
    const queued = await call(t, 'POST', '/v1/jobs', { prompt: 'waits', steps: 2 });
    expect(queued.body.state).toBe('queued');
    expect(queued.body.position).toBeGreaterThanOrEqual(1);
    let cancelledAt = 0;
    const events = readEvents(t, running.body.id);
    // wait for denoising to be under way
    for (;;) {
      const s = (await call(t, 'GET', `/v1/jobs/${running.body.id}`)).body;
      if (s.state === 'running' && s.step >= 3) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const q = await call(t, 'DELETE', `/v1/jobs/${queued.body.id}`);
    expect(q.status).toBe(200);
    expect(q.body.state).toBe('cancelled');
    cancelledAt = performance.now();
    const c = await call(t, 'DELETE', `/v1/jobs/${running.body.id}`);
    const took = performance.now() - cancelledAt;
    expect(c.status, JSON.stringify(c.body)).toBe(200);
    expect(c.body.state).toBe('cancelled');
    expect(took).toBeLessThan(t.server.ctx.pool.cancelGraceMs);
    expect(c.body.stepsAfterCancel).toBeLessThanOrEqual(1); // stopped within one step of the request reaching it
    expect((await events).at(-1)!.type).toBe('cancelled');
    expect(t.server.ctx.pool.restarts).toBe(0); // stopped by its flag, not by killing the thread
    expect(fs.existsSync(path.join(t.outputDir, running.body.id))).toBe(false);
    expect(fs.existsSync(path.join(t.outputDir, queued.body.id))).toBe(false);
    expect(strays()).toEqual([]);
    const after = t.server.ctx.pool.memory()[0]!;
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
    expect((await call(t, 'GET', `/v1/jobs/${running.body.id}/result`)).status).toBe(409);
  });

  it('20 jobs submitted at once all complete, in submission order', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => call(t, 'POST', '/v1/jobs', { prompt: `job ${i}`, steps: 1, frames: 1, seed: i })));
    for (const r of replies) expect(r.status).toBe(202);
    // the server numbers submissions as they arrive (seq); that is the order they must run in
    const byPosition = [...replies].sort((a, b) => a.body.seq - b.body.seq).map((r) => r.body.id);
    expect(new Set(replies.map((r) => r.body.seq)).size).toBe(20);
    const finished = await Promise.all(byPosition.map((id) => waitFinished(t, id, 90_000)));
    for (const f of finished) expect(f.state, f.error).toBe('done');
    const started = [...finished].sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt) || 0).map((f) => f.id);
    expect(started).toEqual(byPosition);
    for (let i = 1; i < finished.length; i++) expect(Date.parse(finished[i].startedAt)).toBeGreaterThanOrEqual(Date.parse(finished[i - 1].finishedAt));
    expect(t.server.ctx.pool.memory()[0]!.listeners).toBeLessThanOrEqual(2); // no listener (and module) kept per job
    const history = (await call(t, 'GET', '/v1/jobs')).body.jobs.map((j: { id: string }) => j.id);
    expect(history.slice(0, 20).reverse().sort()).toEqual([...byPosition].sort());
  }, 120_000);
});

describe('cogvideox-fun serve (command line)', () => {
  it('prints its help and refuses bad flags with exit code 2', async () => {
    const { main } = await import('../src/cli/main.js');
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await main(['serve', '--help'])).toBe(0);
      expect(String(out.mock.calls[0]![0])).toMatch(/--models-dir DIR/);
      expect(await main(['serve', '--port', 'x'])).toBe(2);
      expect(await main(['serve', '--bogus'])).toBe(2);
      expect(await main(['serve', '--token', 'short'])).toBe(2);
      expect(String(err.mock.calls.at(-1)![0])).toMatch(/--token must be at least 8 characters/);
    } finally {
      err.mockRestore();
      out.mockRestore();
    }
  });
});

describe('CogVideoX-Fun API routes', () => {
  // the bodies of cogvideox/api/post_infer.py, posted as `requests.post(url, data=json.dumps(...))` does: no
  // content type. post_infer(generation_method, length_slider) takes the length as its argument; the size and steps
  // are made small here so the demo model answers in a second (the script's 672×384 × 50 steps also works, slowly).
  const funBody = (over: Record<string, unknown> = {}) =>
    JSON.stringify({
      base_model_path: 'none',
      motion_module_path: 'none',
      lora_model_path: 'none',
      lora_alpha_slider: 0.55,
      prompt_textbox: 'A young woman with beautiful and clear eyes and blonde hair standing and white dress in a forest wearing a crown.',
      negative_prompt_textbox: 'The video is not of a high quality, it has a low resolution. Watermark present in each frame. The background is solid. Strange body and strange trajectory. Distortion. ',
      sampler_dropdown: 'Euler',
      sample_step_slider: 3,
      width_slider: 96,
      height_slider: 64,
      generation_method: 'Video Generation',
      length_slider: 9,
      cfg_scale_slider: 6,
      seed_textbox: 43,
      ...over,
    });
  const post = (route: string, body: string) => fetch(`${t.base}/cogvideox_fun/${route}`, { method: 'POST', body, headers: { Authorization: `Bearer ${TOKEN}` } });

  it('update_diffusion_transformer then infer_forward answer {message, save_sample_path, base64_encoding}', async () => {
    const u = await post('update_diffusion_transformer', JSON.stringify({ diffusion_transformer_path: 'models/Diffusion_Transformer/CogVideoX-Fun-2b-InP' }));
    expect(u.status).toBe(200);
    expect(await u.json()).toEqual({ message: 'Success' });
    const r = await post('infer_forward', funBody());
    const body = (await r.json()) as { message: string; save_sample_path: string; base64_encoding: string };
    expect(r.status, body.message).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['base64_encoding', 'message', 'save_sample_path']);
    expect(body.message).toBe('Success');
    const bytes = Buffer.from(body.base64_encoding, 'base64');
    expect(bytes.subarray(4, 8).toString()).toBe('ftyp');
    expect(fs.readFileSync(body.save_sample_path)).toEqual(bytes);
    const job = (await call(t, 'GET', '/v1/jobs')).body.jobs[0];
    expect(job.settings).toMatchObject({ model: 'Diffusion_Transformer/CogVideoX-Fun-2b-InP', sampler: 'Euler', steps: 3, frames: 9, seed: '43', guidance: 6 });

    const img = await post('infer_forward', funBody({ generation_method: 'Image Generation', start_image: (await smallPng()).toString('base64') }));
    const ib = (await img.json()) as { message: string; base64_encoding: string };
    expect(img.status, ib.message).toBe(200);
    expect(Buffer.from(ib.base64_encoding, 'base64').subarray(1, 4).toString()).toBe('PNG');
  });

  it('answers errors as HTTP 4xx with Fun\'s message shape, naming Fun\'s field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ length_slider: 10 }, 'length_slider'],
      [{ sampler_dropdown: 'Nope' }, 'sampler_dropdown'],
      [{ width_slider: 100 }, 'width_slider'],
      [{ start_image: Buffer.from('not an image').toString('base64') }, 'start_image'],
      [{ lora_model_path: '/etc/passwd' }, 'lora_model_path'],
      [{ control_video: 'AAAA' }, 'control_video'],
      [{ generation_method: 'Long Video Generation', partial_video_length: 72 }, 'partial_video_length'],
      [{ unknown_field: 1 }, 'unknown_field'],
    ];
    for (const [over, field] of cases) {
      const r = await post('infer_forward', funBody(over));
      const b = (await r.json()) as { message: string; save_sample_path: string; field: string };
      expect(r.status, `${field}: ${b.message}`).toBe(400);
      expect(b.message, field).toMatch(/^Error\. error information is /);
      expect(b.save_sample_path).toBe('');
      expect(b.field, b.message).toBe(field);
    }
    const outside = await post('update_diffusion_transformer', JSON.stringify({ diffusion_transformer_path: '/etc' }));
    expect(outside.status).toBe(400);
    expect(((await outside.json()) as { message: string }).message).toMatch(/outside the models folder/);
    expect((await fetch(`${t.base}/cogvideox_fun/infer_forward`, { method: 'POST', body: funBody() })).status).toBe(401);
    expect(strays()).toEqual([]);
  });
});

describe('the demo model\'s demo.json through the API (a temporary bundle named by COGVIDEOX_DEMO_MODEL)', () => {
  let tmp: string;
  let dir: string;
  let info: DemoInfo;
  let d: TestServer;
  let saved: string | undefined;

  beforeAll(async () => {
    // a trained-looking bundle of the committed demo folder (as test/cli.test.ts makes one; assets/demo-model untouched)
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-demo-'));
    dir = path.join(tmp, 'demo-model');
    bundle(DEMO_MODEL, dir, { dtype: 'BF16', trained: true, notes: { steps: 123 }, force: false, log: () => {} });
    info = readDemoInfo(dir)!;
    saved = process.env[DEMO_MODEL_ENV];
    process.env[DEMO_MODEL_ENV] = dir;
    d = await startTestServer();
  }, 60_000);

  afterAll(async () => {
    await d?.close();
    if (saved === undefined) delete process.env[DEMO_MODEL_ENV];
    else process.env[DEMO_MODEL_ENV] = saved;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('GET /v1/models: current.demoInfo is the demo.json `generate --help` lists (trained, what it knows, example, grid)', async () => {
    expect(demoModelDir()).toBe(dir);
    const current = (await call(d, 'GET', '/v1/models')).body.current;
    expect(current).toMatchObject({ path: 'demo', demo: true });
    expect(current.demoInfo).toEqual(info);
    expect(current.demoInfo).toMatchObject({ trained: true, output: { frames: 9, height: 64, width: 96 } });
    expect(current.demoInfo.held_out.length).toBeGreaterThan(0);
    // the CLI, pointed at the same folder the same way, says the same
    const { main } = await import('../src/cli/main.js');
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await main(['generate', '--help'])).toBe(0);
      expect(String(out.mock.calls.map((c) => c[0]).join(''))).toBe(generateUsage(current.demoInfo));
    } finally {
      out.mockRestore();
    }
  });

  it('a job naming no prompt or size gets the trained demo\'s example prompt and grid', async () => {
    const r = await call(d, 'POST', '/v1/jobs', { steps: 1, seed: 1 });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const done = await waitFinished(d, r.body.id);
    expect(done.state, done.error).toBe('done');
    expect(done.settings).toMatchObject({ model: 'demo', prompt: info.example_prompt, frames: info.output.frames, height: info.output.height, width: info.output.width });
    expect(done.result).toMatchObject({ frames: info.output.frames, height: info.output.height, width: info.output.width });
  });

  it('follows the folder: trained false and no demo.json are said as such; a malformed demo.json stops the server at start', async () => {
    const file = path.join(dir, 'demo.json');
    const original = fs.readFileSync(file, 'utf8');
    try {
      fs.writeFileSync(file, JSON.stringify({ ...info, trained: false }));
      expect((await call(d, 'GET', '/v1/models')).body.current.demoInfo).toEqual({ ...info, trained: false });
      fs.rmSync(file);
      expect((await call(d, 'GET', '/v1/models')).body.current.demoInfo).toBeNull();
      fs.writeFileSync(file, JSON.stringify({ ...info, colors: [] }));
      const out = path.join(tmp, 'out-bad');
      await expect(createServer({ outputDir: out, log: null })).rejects.toThrow(/demo\.json: "colors" must be a non-empty list of strings, got \[\]/);
    } finally {
      fs.writeFileSync(file, original);
    }
    // a --model server says nothing about the demo model
    const other = await createServer({ outputDir: path.join(tmp, 'out-model'), model: dir, log: null, workers: 0 });
    try {
      expect(other.ctx.currentModelInfo()).toMatchObject({ demo: false, demoInfo: null });
    } finally {
      await other.close();
    }
  });

  it('COGVIDEOX_DEMO_MODEL naming no folder is an error naming the variable', () => {
    const before = process.env[DEMO_MODEL_ENV];
    process.env[DEMO_MODEL_ENV] = path.join(tmp, 'nope');
    try {
      expect(() => demoModelDir()).toThrow(/COGVIDEOX_DEMO_MODEL=.*nope: not a folder/);
    } finally {
      process.env[DEMO_MODEL_ENV] = before;
    }
    expect(demoModelDir()).toBe(dir);
  });
});
