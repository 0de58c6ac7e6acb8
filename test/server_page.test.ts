// The page of `cogvideox-fun serve` in real browsers (Debian's chromium and firefox-esr, both driven by puppeteer-core:
// Chromium over CDP, Firefox over WebDriver BiDi), as a person uses it: type a prompt, generate with the demo model,
// watch the progress advance, see the video play (first frame not blank); upload a start image for image-to-video;
// re-run from the history; cancel a job; an error shown next to its field; a video the browser cannot decode reported
// beside the download link. The same checks run in each browser, on one server.
// A browser that is absent shows as skipped (the reason in the suite's title) — unless it is expected:
// COGVIDEOX_EXPECT_CHROMIUM=1 / COGVIDEOX_EXPECT_FIREFOX=1 (.ci/run sets them after installing the Debian packages) or
// CI=true, where a missing browser fails its suite. COGVIDEOX_EXPECT_<BROWSER>=0 opts out explicitly.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import puppeteer, { type Browser, type LaunchOptions, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle } from '../scripts/demo/bundle.js';
import { DEMO_DEFAULTS, DEMO_MODEL_ENV, readDemoInfo, type DemoInfo } from '../src/cli/demo.js';
import { call, DEMO_MODEL, smallPng, startTestServer, type TestServer } from './server_helpers.js';

// browser-side code below runs in the page (no DOM types in this project's compilation)
declare const document: any;
declare const window: any;
declare const MutationObserver: any;

// keep a picture of the page: e.g. docs/app.png (taken in Chromium), or /tmp/app-%s.png (one per browser)
const SCREENSHOT = process.env.COGVIDEOX_SCREENSHOT;

interface BrowserSpec {
  name: string;
  executable: string | undefined;
  expected: boolean;
  install: string;
  launch: LaunchOptions;
}

const expected = (v: string | undefined): boolean => v === '1' || (v !== '0' && process.env.CI === 'true');
const firstExisting = (...paths: (string | undefined)[]): string | undefined => paths.find((p) => p && fs.existsSync(p));

const BROWSERS: BrowserSpec[] = [
  {
    name: 'Chromium',
    executable: firstExisting(process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'),
    expected: expected(process.env.COGVIDEOX_EXPECT_CHROMIUM),
    install: 'apt-get install -y chromium',
    launch: {
      browser: 'chrome',
      args: ['--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required', '--no-first-run'],
    },
  },
  {
    name: 'Firefox',
    executable: firstExisting(process.env.FIREFOX_PATH, '/usr/bin/firefox-esr', '/usr/bin/firefox'),
    expected: expected(process.env.COGVIDEOX_EXPECT_FIREFOX),
    install: 'apt-get install -y firefox-esr',
    launch: {
      browser: 'firefox',
      // muted videos autoplay in Firefox by default; say so anyway, as Chromium's flag above does
      extraPrefsFirefox: { 'media.autoplay.default': 0, 'media.autoplay.blocking_policy': 0 },
    },
  },
];

// one server for both browsers, started by the first suite that runs (its worker then warm for the second)
let shared: Promise<TestServer> | undefined;
afterAll(async () => {
  await (await shared)?.close();
});

for (const spec of BROWSERS) {
  const skip = !spec.executable && !spec.expected;
  describe.skipIf(skip)(`page in ${spec.name}${skip ? ` (skipped: not installed; ${spec.install})` : ''}`, () => pageTests(spec));
}

// A second server whose demo model is a trained-looking bundle of the committed folder in a temporary folder (named by
// COGVIDEOX_DEMO_MODEL, as test/server.test.ts does; assets/demo-model untouched). It runs after the suites above:
// the variable is process-wide, so it is set only from its start to the end of the file.
interface TrainedDemo {
  t: TestServer;
  dir: string;
  info: DemoInfo;
}
let trainedShared: Promise<TrainedDemo> | undefined;
let savedDemoEnv: string | undefined;
async function startTrained(): Promise<TrainedDemo> {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'page-demo-')), 'demo-model');
  bundle(DEMO_MODEL, dir, { dtype: 'BF16', trained: true, notes: null, force: false, log: () => {} });
  savedDemoEnv = process.env[DEMO_MODEL_ENV];
  process.env[DEMO_MODEL_ENV] = dir;
  return { t: await startTestServer(), dir, info: readDemoInfo(dir)! };
}
afterAll(async () => {
  if (!trainedShared) return;
  const d = await trainedShared;
  await d.t.close();
  fs.rmSync(path.dirname(d.dir), { recursive: true, force: true });
  if (savedDemoEnv === undefined) delete process.env[DEMO_MODEL_ENV];
  else process.env[DEMO_MODEL_ENV] = savedDemoEnv;
});

for (const spec of BROWSERS) {
  const skip = !spec.executable && !spec.expected;
  describe.skipIf(skip)(`page with a trained demo model in ${spec.name}${skip ? ` (skipped: not installed; ${spec.install})` : ''}`, () => trainedDemoTests(spec));
}

function trainedDemoTests(spec: BrowserSpec): void {
  let d: TrainedDemo;
  let browser: Browser;
  let page: Page;

  const text = (sel: string) => page.$eval(sel, (e) => (e as any).textContent as string);
  const value = (id: string) => page.$eval(`#${id}`, (e) => (e as any).value as string);
  const open = async () => {
    await page.goto(`${d.t.base}/`, { waitUntil: 'load' });
    await page.waitForFunction(() => (document.getElementById('sampler') as any).options.length > 0);
  };

  beforeAll(async () => {
    expect(spec.executable, `${spec.name} is expected here but not installed (${spec.install})`).toBeDefined();
    d = await (trainedShared ??= startTrained());
    browser = await puppeteer.launch({ ...spec.launch, executablePath: spec.executable!, headless: true, protocolTimeout: 60_000 });
    page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
  }, 150_000);

  afterAll(async () => {
    await browser?.close();
  }, 30_000);

  it('says what the demo model knows, prefills its example prompt and grid; the example buttons fill the prompt', async () => {
    await open();
    const { info } = d;
    expect(await text('#model-note')).toMatch(/^demo model: tiny, trained on a toy world/);
    expect(await text('#model-note')).not.toMatch(/noise|random/);
    expect(await page.$eval('#demo-help', (e) => (e as any).hidden)).toBe(false);
    const knows = await text('#demo-knows');
    for (const w of [...info.colors, ...info.shapes, ...info.directions, ...info.backgrounds, info.prompt_template]) expect(knows).toContain(w);
    expect(await value('prompt')).toBe(info.example_prompt);
    expect([await value('frames'), await value('height'), await value('width')]).toEqual([info.output.frames, info.output.height, info.output.width].map(String));

    const examples: { prompt: string; heldOut: boolean }[] = await page.$$eval('#demo-examples button', (bs) => bs.map((b: any) => ({ prompt: b.dataset.prompt, heldOut: b.classList.contains('held-out') })));
    expect(examples.length).toBeGreaterThanOrEqual(3);
    expect(examples[0]).toEqual({ prompt: info.example_prompt, heldOut: false });
    expect(examples.filter((e) => e.heldOut).map((e) => e.prompt)).toEqual([info.held_out[0]!.prompt]);
    const held = new Set(info.held_out.map((h) => h.prompt));
    for (const e of examples.filter((x) => !x.heldOut)) {
      expect(held.has(e.prompt), e.prompt).toBe(false);
      const m = /^a (\w+) (\w+) moving (\w+) on a (\w+) background$/.exec(e.prompt); // the template, filled from what it knows
      expect(m, e.prompt).not.toBeNull();
      expect([info.colors, info.shapes, info.directions, info.backgrounds].every((list, i) => list.includes(m![i + 1]!))).toBe(true);
    }
    await page.click('#demo-examples button.held-out');
    expect(await value('prompt')).toBe(info.held_out[0]!.prompt);
  }, 60_000);

  it('another model: its own defaults, no demo help; back to the demo: its example again; untrained or no demo.json: the noise wording', async () => {
    const { info, dir } = d;
    await open();
    const other = 'Diffusion_Transformer/CogVideoX-Fun-2b-InP'; // the committed demo folder, listed from --models-dir
    await page.select('#model', other);
    expect(await page.$eval('#demo-help', (e) => (e as any).hidden)).toBe(true);
    expect(await value('prompt')).toMatch(/^A young woman/); // the page's own default, as the prompt was not typed
    expect([await value('width'), await value('height')]).toEqual(['672', '384']);
    await page.select('#model', '');
    expect(await value('prompt')).toBe(info.example_prompt);
    // a typed prompt is kept across model changes
    await page.$eval('#prompt', (e) => ((e as any).value = 'a typed prompt'));
    await page.select('#model', other);
    await page.select('#model', '');
    expect(await value('prompt')).toBe('a typed prompt');

    const file = path.join(dir, 'demo.json');
    const original = fs.readFileSync(file, 'utf8');
    try {
      for (const change of [() => fs.writeFileSync(file, JSON.stringify({ ...info, trained: false })), () => fs.rmSync(file)]) {
        change();
        await open();
        expect(await text('#model-note')).toBe('demo model: tiny random weights, the video is noise-like');
        expect(await page.$eval('#demo-help', (e) => (e as any).hidden)).toBe(true);
        expect(await value('prompt')).toMatch(/^A young woman/);
      }
    } finally {
      fs.writeFileSync(file, original);
    }
  }, 60_000);
}

function pageTests(spec: BrowserSpec): void {
  let t: TestServer;
  let browser: Browser;
  let page: Page;

  async function setValue(id: string, value: string | number): Promise<void> {
    await page.evaluate(
      (id, value) => {
        const el = document.getElementById(id) as any;
        el.value = String(value);
        el.dispatchEvent(new Event('input', { bubbles: true }));
        el.dispatchEvent(new Event('change', { bubbles: true }));
      },
      id,
      String(value),
    );
  }

  async function within<T>(what: string, p: Promise<T>, ms = 60_000): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${spec.name}: ${what} did not finish within ${ms} ms`)), ms)));
    try {
      return await Promise.race([p, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function status(): Promise<string> {
    return page.$eval('#status', (e) => e.textContent ?? '');
  }

  async function waitStatus(re: RegExp, timeout = 60_000): Promise<string> {
    await page.waitForFunction((src) => new RegExp(src).test(document.getElementById('status')!.textContent ?? ''), { timeout, polling: 50 }, re.source);
    return status();
  }

  beforeAll(async () => {
    expect(spec.executable, `${spec.name} is expected here but not installed (${spec.install})`).toBeDefined();
    t = await within('the server start', (shared ??= startTestServer()));
    // puppeteer's own command timeout (180 s) is longer than this hook's: a step that hangs is named instead
    browser = await within('the browser launch', puppeteer.launch({ ...spec.launch, executablePath: spec.executable!, headless: true, protocolTimeout: 60_000 }));
    page = await within('a new tab', browser.newPage());
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`${t.base}/`, { waitUntil: 'load' });
    await page.waitForFunction(() => (document.getElementById('sampler') as any).options.length > 0);
  }, 150_000);

  afterAll(async () => {
    await browser?.close();
  }, 30_000);

  it('generates from a typed prompt: progress advances, the video plays, its first frame is not blank', async () => {
    // record every progress line the page shows
    await page.evaluate(() => {
      const seen: string[] = (window.seen = []);
      new MutationObserver(() => seen.push(document.getElementById('detail')!.textContent ?? '')).observe(document.getElementById('detail')!, { childList: true, characterData: true, subtree: true });
    });
    await page.click('#prompt', { count: 3 });
    await page.$eval('#prompt', (e) => ((e as any).value = ''));
    await page.type('#prompt', 'A red fox running through snow');
    await setValue('steps', 25);
    await page.click('#generate');
    await waitStatus(/^Success$/);
    const seen: string[] = await page.evaluate(() => window.seen as string[]);
    const steps = seen.map((s) => /^step (\d+)\/25/.exec(s)?.[1]).filter(Boolean).map(Number);
    expect(steps.length).toBeGreaterThan(2);
    expect(steps.at(-1)).toBe(25);
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
    expect(seen.some((s) => /s\/step · ETA/.test(s))).toBe(true);

    // playing, or the page's own message when the browser cannot decode it (e.g. Firefox without libavcodec)
    await page.waitForFunction(() => {
      const v = document.getElementById('result-video') as any;
      return (!v.hidden && v.readyState >= 2 && !v.paused && v.currentTime > 0) || document.getElementById('result-error')!.textContent !== '';
    }, { timeout: 20_000 });
    expect(await page.$eval('#result-error', (e) => e.textContent)).toBe('');
    const frame = await page.evaluate(async () => {
      const v = document.getElementById('result-video') as any;
      v.pause();
      v.currentTime = 0;
      await new Promise((r) => v.addEventListener('seeked', r, { once: true }));
      const c = document.createElement('canvas');
      c.width = v.videoWidth;
      c.height = v.videoHeight;
      const g = c.getContext('2d')!;
      g.drawImage(v, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let sum = 0;
      let sq = 0;
      const n = d.length / 4;
      for (let i = 0; i < d.length; i += 4) {
        const y = (d[i]! + d[i + 1]! + d[i + 2]!) / 3;
        sum += y;
        sq += y * y;
      }
      const mean = sum / n;
      v.play();
      return { width: c.width, height: c.height, mean, std: Math.sqrt(sq / n - mean * mean) };
    });
    expect(frame.width).toBe(96);
    expect(frame.height).toBe(64);
    expect(frame.std).toBeGreaterThan(5); // not one flat colour
    const prompt = (await call(t, 'GET', '/v1/jobs')).body.jobs[0].settings.prompt;
    expect(prompt).toBe('A red fox running through snow');
    if (SCREENSHOT && (SCREENSHOT.includes('%s') || spec.name === 'Chromium')) {
      const file = SCREENSHOT.replace('%s', spec.name.toLowerCase());
      fs.mkdirSync(path.dirname(file), { recursive: true });
      await page.screenshot({ path: file, type: 'png', clip: { x: 0, y: 0, width: 1200, height: 900 } });
    }
  }, 90_000);

  it('image to video from an uploaded start image', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'page-')), 'start.png');
    fs.writeFileSync(file, await smallPng(48, 32));
    const guidance = () => page.$eval('#guidance', (e) => (e as unknown as { value: string }).value);
    expect(await guidance()).toBe(String(DEMO_DEFAULTS.guidance));
    await page.click('input[name="source"][value="image"]');
    // the demo model runs start images unguided (GET /v1/models current.sampling): the slider follows the source
    expect(await guidance()).toBe(String(DEMO_DEFAULTS.guidanceWithImage));
    const input = await page.$('#image');
    await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(file);
    await setValue('steps', 3);
    await page.$eval('#status', (e) => (e.textContent = ''));
    await page.click('#generate');
    await waitStatus(/^Success$/);
    const job = (await call(t, 'GET', '/v1/jobs')).body.jobs[0];
    expect(job.state).toBe('done');
    expect(job.settings.inputs).toEqual(['image']);
    expect(job.settings.guidance).toBe(DEMO_DEFAULTS.guidanceWithImage);

    // re-run from the history: the same settings and the same uploaded image, one click
    await page.$eval('#status', (e) => (e.textContent = ''));
    await page.click('#history li:first-child .rerun');
    await waitStatus(/^Success$/);
    const again = (await call(t, 'GET', '/v1/jobs')).body.jobs[0];
    expect(again.id).not.toBe(job.id);
    expect(again.state).toBe('done');
    expect(again.settings).toEqual(job.settings);
    const [a, b] = await Promise.all([call(t, 'GET', `/v1/jobs/${job.id}/inputs/image`), call(t, 'GET', `/v1/jobs/${again.id}/inputs/image`)]);
    expect(Buffer.compare(a.body, b.body)).toBe(0);
    await page.click('input[name="source"][value="text"]');
    expect(await guidance()).toBe(String(DEMO_DEFAULTS.guidanceWithImage)); // a rerun's guidance is kept
    await setValue('guidance', 4.5);
    await page.click('input[name="source"][value="image"]');
    expect(await guidance()).toBe('4.5'); // and so is one someone set
    await page.click('input[name="source"][value="text"]');
  }, 90_000);

  it('cancels a running job from the Cancel button; a bad size is shown next to its field', async () => {
    await setValue('steps', 100);
    await setValue('frames', 9);
    await page.evaluate(() => {
      // a long job: more steps than the slider offers
      (document.getElementById('steps') as any).max = '1000';
    });
    await setValue('steps', 1000);
    await page.click('#generate');
    await page.waitForFunction(() => /^step \d+\/1000/.test(document.getElementById('detail')!.textContent ?? ''), { timeout: 30_000, polling: 50 });
    await page.click('#cancel');
    expect(await waitStatus(/^Cancelled/, 15_000)).toMatch(/nothing was written/);
    const job = (await call(t, 'GET', '/v1/jobs')).body.jobs[0];
    expect(job.state).toBe('cancelled');
    expect(fs.existsSync(path.join(t.outputDir, job.id))).toBe(false);

    await setValue('steps', 3);
    await setValue('width', 100);
    await page.click('#generate');
    await page.waitForFunction(() => (document.querySelector('.err[data-for="width"]')!.textContent ?? '') !== '', { timeout: 10_000 });
    expect(await page.$eval('.err[data-for="width"]', (e) => e.textContent)).toMatch(/width must be a multiple of 16/);
    expect(await page.$eval('#width', (e) => e.classList.contains('invalid'))).toBe(true);
    await setValue('width', 96);
  }, 90_000);

  it('says so beside the download link when the browser cannot play the video', async () => {
    // what a browser without an H.264 decoder meets (Firefox on Linux without libavcodec): a src it cannot decode
    await page.evaluate(() => {
      const v = document.getElementById('result-video') as any;
      v.src = '/openapi.json';
    });
    await page.waitForFunction(() => (document.getElementById('result-error')!.textContent ?? '') !== '', { timeout: 10_000, polling: 50 });
    expect(await page.$eval('#result-error', (e) => e.textContent)).toMatch(/This browser cannot play the MP4 \(H\.264\).*download it below/);
  }, 30_000);
}
