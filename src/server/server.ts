// The HTTP server of `cogvideox-fun serve`: fastify with the job API, CogVideoX-Fun's API routes, the OpenAPI
// document and the page. Generation happens in worker threads (pool.ts); this thread only validates, queues and
// answers, so status and event requests are served while a job computes.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import { demoModelDir, readDemoInfo, samplingDefaults } from '../cli/demo.js';
import { defaultRequest, inspectModelFolder } from '../cli/model_folder.js';
import { openApiDocument } from './openapi.js';
import { WorkerPool } from './pool.js';
import { UploadProbe } from './probe.js';
import { InProcessQueue, type JobQueue } from './queue.js';
import { relativeName } from './models.js';
import { RateLimiter } from './rate_limit.js';
import { registerFunRoutes } from './routes_fun.js';
import { registerJobRoutes } from './routes_jobs.js';
import { toPortablePath } from './portable.js';
import { checkRedisUrl } from './redis.js';
import { RedisQueue } from './redis_queue.js';
import { RequestError, type JobInfo } from './types.js';
import type { ServerContext } from './context.js';

export type { ServerContext };

/** the routes that start a job (rate-limited per client with --token) */
const SUBMISSIONS = new Set(['/v1/jobs', '/cogvideox_fun/infer_forward']);

export interface ServerOptions {
  /** the default model folder; undefined: the bundled demo model */
  model?: string;
  modelsDir?: string;
  outputDir: string;
  token?: string;
  /** per upload, bytes (default 50 MB) */
  uploadLimit?: number;
  workers?: number;
  backend?: 'tensorflow' | 'wasm';
  cancelGraceMs?: number;
  /** redis://HOST:PORT: jobs go to this Redis (BullMQ) and `cogvideox-fun worker` processes run them; no threads here */
  redis?: string;
  /** rediss://: the CA certificate file (PEM) that signed Redis's certificate; default: Node's trusted CAs */
  redisCa?: string;
  /** Redis queue: runs after a failure before a job fails for good (default 2) */
  retries?: number;
  /** Redis queue: waiting jobs beyond which a submission gets 429 */
  maxQueued?: number;
  /** with a token: job submissions per minute per client address (default 60; 0 = no limit); without a token: none */
  rateLimit?: number;
  /** one line per request; default stderr, null for none */
  log?: ((line: string) => void) | null;
}

export interface RunningServer {
  app: FastifyInstance;
  ctx: ServerContext;
  close(): Promise<void>;
}

/** web/ at the package root (from src/server or dist/server alike). */
export function pageDir(): string {
  return fileURLToPath(new URL('../../web', import.meta.url));
}

function sameToken(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

function fieldOfValidation(e: FastifyError): string | undefined {
  const v = e.validation?.[0];
  if (!v) return undefined;
  const extra = (v.params as { additionalProperty?: string } | undefined)?.additionalProperty;
  if (extra) return extra;
  return v.instancePath.split('/').filter(Boolean)[0];
}

export async function createServer(o: ServerOptions): Promise<RunningServer> {
  const outputDir = path.resolve(o.outputDir);
  fs.mkdirSync(outputDir, { recursive: true });
  // partial folders of jobs a previous process did not finish (killed, crashed): never results, so removed. With
  // Redis they belong to jobs still queued there (and to workers running them): kept.
  if (!o.redis) for (const n of fs.readdirSync(outputDir)) if (/^\..+\.partial$/.test(n)) fs.rmSync(path.join(outputDir, n), { recursive: true, force: true });
  const modelsDir = o.modelsDir === undefined ? undefined : path.resolve(o.modelsDir);
  if (modelsDir !== undefined && !fs.statSync(modelsDir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--models-dir ${modelsDir}: not a folder`);
  let model = o.model === undefined ? undefined : path.resolve(o.model);
  if (model) inspectModelFolder(model); // a broken --model fails at start, not at the first job
  else readDemoInfo(demoModelDir()); // and so does a malformed demo.json (the page reads it from /v1/models)
  const uploadLimit = o.uploadLimit ?? 50 * 2 ** 20;
  const log = o.log === undefined ? (l: string) => process.stderr.write(`${l}\n`) : o.log;

  const resultUrl = (id: string) => `/v1/jobs/${id}/result`;
  const onFinished = log ? (info: JobInfo) => log(`job ${info.id} ${info.state}${info.error ? `: ${info.error}` : ''}`) : undefined;
  let pool: WorkerPool;
  let queue: JobQueue;
  let ready: () => Promise<void>;
  if (o.redis) {
    // the memory plan of a submission assumes the workers' backend (--backend, else tensorflow's)
    pool = new WorkerPool({ size: 0 });
    pool.backend = o.backend ?? 'tensorflow';
    pool.backendName = `remote workers (${checkRedisUrl(o.redis)})`;
    const rq = new RedisQueue({ url: o.redis, ca: o.redisCa, outputDir, modelsDir, resultUrl, retries: o.retries, maxQueued: o.maxQueued, onFinished });
    if (model) toPortablePath({ outputDir, modelsDir }, model, '--model'); // workers find models in their --models-dir only
    queue = rq;
    ready = () => rq.ready();
  } else {
    const threads = (pool = new WorkerPool({ size: o.workers ?? 1, backend: o.backend, cancelGraceMs: o.cancelGraceMs }));
    queue = new InProcessQueue(threads, { resultUrl, onFinished });
    ready = () => threads.ready();
  }
  const probe = new UploadProbe();
  probe.start();
  const ctx: ServerContext = {
    outputDir,
    modelsDir,
    uploadLimit,
    pool,
    queue,
    probe,
    currentModel: () => model,
    setCurrentModel: (dir) => (model = dir),
    currentModelInfo: () => {
      const dir = model ?? demoModelDir();
      const f = inspectModelFolder(dir);
      const demoInfo = model ? null : readDemoInfo(dir);
      // the demo's size is its demo.json's (generate's default); another folder offers its training size
      const size = model ? { width: f.sampleWidth, height: f.sampleHeight } : defaultRequest(f, true, demoInfo?.output);
      return {
        path: model ? relativeName(modelsDir, dir) : 'demo',
        variant: f.variant,
        kind: f.kind,
        maxFrames: f.maxFrames,
        defaultWidth: size.width,
        defaultHeight: size.height,
        demo: !model,
        demoInfo,
        sampling: samplingDefaults(!model),
      };
    },
  };

  const app = Fastify({
    logger: false,
    // JSON submissions carry uploads as base64 (4/3 of the bytes), up to four of them
    bodyLimit: Math.ceil((uploadLimit * 4 * 4) / 3) + (1 << 20),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  await app.register(multipart, { limits: { fileSize: uploadLimit } });

  const rate = o.rateLimit ?? 60;
  const limiter = o.token && rate > 0 ? new RateLimiter(rate) : undefined;
  app.addHook('onRequest', async (req, reply) => {
    (req as unknown as { t0: number }).t0 = performance.now();
    if (!o.token) return;
    const url = req.url.split('?')[0]!;
    if (!(url.startsWith('/v1/') || url.startsWith('/cogvideox_fun/') || url === '/openapi.json')) return;
    const header = req.headers.authorization ?? '';
    const query = new URLSearchParams(req.url.split('?')[1] ?? '').get('token') ?? '';
    // Bearer as the API documents; EventSource and <video> cannot send headers, so ?token= too; Fun's EAS client
    // sends the bare token
    const given = header.startsWith('Bearer ') ? header.slice(7) : header || query;
    if (!given || !sameToken(given, o.token)) throw new RequestError(401, 'token', 'missing or wrong token: send Authorization: Bearer <token>');
    if (limiter && req.method === 'POST' && SUBMISSIONS.has(url)) {
      const d = limiter.take(req.ip);
      if (!d.ok) {
        reply.header('Retry-After', String(d.retryAfter));
        throw new RequestError(429, undefined, `too many submissions from ${req.ip}: at most ${limiter.perMinute} per minute (--rate-limit); retry in ${d.retryAfter} s`);
      }
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    const ms = performance.now() - ((req as unknown as { t0?: number }).t0 ?? performance.now());
    log?.(`${new Date().toISOString()} ${req.method} ${req.url.replace(/token=[^&]*/, 'token=…')} ${reply.statusCode} ${ms.toFixed(1)}ms`);
  });
  app.setErrorHandler((e: FastifyError | RequestError, _req, reply) => {
    if (e instanceof RequestError) {
      // a full queue (429) or an unreachable Redis (503): the client may retry, after a few seconds
      if ((e.status === 429 || e.status === 503) && !reply.hasHeader('Retry-After')) reply.header('Retry-After', '5');
      return reply.code(e.status).send({ error: e.message, field: e.field });
    }
    if ((e as FastifyError).validation) {
      const field = fieldOfValidation(e as FastifyError);
      const extra = (e as FastifyError).validation?.[0]?.keyword === 'additionalProperties';
      return reply.code(400).send({ error: extra ? `unknown field "${field}"` : `${e.message.replace(/^body\/?/, '')}`, field });
    }
    const status = (e as FastifyError).statusCode ?? 500;
    if (status >= 500) log?.(`error: ${e.stack ?? e.message}`);
    return reply.code(status).send({ error: status === 413 ? `the request is larger than the server's limit (${e.message})` : e.message });
  });

  registerJobRoutes(app, ctx);
  registerFunRoutes(app, ctx);
  app.get('/openapi.json', async () => openApiDocument());

  const page = pageDir();
  const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
  app.get('/', async (_req, reply) => reply.type(types['.html']!).send(fs.readFileSync(path.join(page, 'index.html'))));
  app.get<{ Params: { file: string } }>('/static/:file', async (req, reply) => {
    const name = req.params.file;
    const ext = path.extname(name);
    if (!/^[\w.-]+$/.test(name) || !types[ext] || !fs.existsSync(path.join(page, name))) throw new RequestError(404, undefined, 'not found');
    return reply.type(types[ext]!).send(fs.readFileSync(path.join(page, name)));
  });

  try {
    await ready();
  } catch (e) {
    await queue.close();
    await probe.close();
    throw e;
  }
  return {
    app,
    ctx,
    close: async () => {
      await app.close();
      await queue.close();
      await probe.close();
    },
  };
}
