// Shared by the server tests and bench/server.ts: a server on 127.0.0.1 with a models folder laid out as
// CogVideoX-Fun's (Diffusion_Transformer/<model>, Personalized_Model/<lora>), and small HTTP / SSE clients.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TINY_MODEL } from './helpers.js';
import { createServer, type RunningServer, type ServerOptions } from '../src/server/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The demo model of these tests: the tiny random-weights fixture (vitest.config.ts names it with COGVIDEOX_DEMO_MODEL). */
export const DEMO_MODEL = TINY_MODEL;
export const LORA_FIXTURE = path.join(ROOT, 'test/fixtures/lora/lora_a.safetensors');

export interface TestServer {
  server: RunningServer;
  base: string;
  outputDir: string;
  modelsDir: string;
  token?: string;
  close(): Promise<void>;
}

export async function startTestServer(opts: Partial<ServerOptions> = {}): Promise<TestServer> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-serve-'));
  const outputDir = path.join(tmp, 'samples');
  const modelsDir = path.join(tmp, 'models');
  fs.mkdirSync(path.join(modelsDir, 'Diffusion_Transformer'), { recursive: true });
  fs.mkdirSync(path.join(modelsDir, 'Personalized_Model'), { recursive: true });
  fs.symlinkSync(DEMO_MODEL, path.join(modelsDir, 'Diffusion_Transformer', 'CogVideoX-Fun-2b-InP'));
  fs.copyFileSync(LORA_FIXTURE, path.join(modelsDir, 'Personalized_Model', 'lora_a.safetensors'));
  const server = await createServer({ outputDir, modelsDir, log: null, ...opts });
  const address = await server.app.listen({ host: '127.0.0.1', port: 0 });
  return {
    server,
    base: address,
    outputDir,
    modelsDir,
    token: opts.token,
    close: async () => {
      await server.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function call<T = any>(t: TestServer, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
  const h: Record<string, string> = { ...headers };
  if (t.token && !('Authorization' in h)) h.Authorization = `Bearer ${t.token}`;
  let payload: string | FormData | undefined;
  if (body instanceof FormData || typeof body === 'string') payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(`${t.base}${url}`, { method, body: payload, headers: h });
  const type = res.headers.get('content-type') ?? '';
  const out = type.includes('json') ? await res.json() : Buffer.from(await res.arrayBuffer());
  return { status: res.status, body: out as T, headers: res.headers };
}

export interface SseEvent {
  type: string;
  data: any;
  at: number;
}

/** Reads a job's event stream until the server closes it (after done / failed / cancelled). */
export async function readEvents(t: TestServer, id: string, onEvent?: (e: SseEvent) => void): Promise<SseEvent[]> {
  const res = await fetch(`${t.base}/v1/jobs/${id}/events`, { headers: t.token ? { Authorization: `Bearer ${t.token}` } : {} });
  if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let k: number;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, k);
      buf = buf.slice(k + 2);
      const type = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!type || data === undefined) continue;
      const e = { type, data: JSON.parse(data), at: performance.now() };
      events.push(e);
      onEvent?.(e);
    }
  }
  return events;
}

/** Polls a job until it has finished. */
export async function waitFinished(t: TestServer, id: string, timeoutMs = 60_000): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await call(t, 'GET', `/v1/jobs/${id}`);
    if (['done', 'failed', 'cancelled'].includes(r.body.state)) return r.body;
    if (Date.now() > end) throw new Error(`job ${id} still ${r.body.state} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** A small valid PNG (a 32×24 gradient), made with the project's own encoder. */
export async function smallPng(width = 32, height = 24): Promise<Buffer> {
  const { encodePng } = await import('../src/media/image.js');
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([(x * 255) / width, (y * 255) / height, 128], (y * width + x) * 3);
  return Buffer.from(encodePng({ width, height, channels: 3, data }));
}
