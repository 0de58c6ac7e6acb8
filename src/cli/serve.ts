// `cogvideox-fun serve`: the web page and HTTP API (src/server). Binds to 127.0.0.1 unless told otherwise.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';
import { checkRedisFlags } from './redis_flags.js';
import { bundledDemoInfo } from './demo.js';

export const SERVE_USAGE = `Usage: cogvideox-fun serve [options]

Serves the page (open http://HOST:PORT/) and the HTTP API: POST /v1/jobs, GET /v1/jobs/{id}, /events (SSE),
DELETE /v1/jobs/{id}, /result, GET /v1/jobs, /openapi.json, and CogVideoX-Fun's /cogvideox_fun/infer_forward and
/cogvideox_fun/update_diffusion_transformer. Jobs run one at a time per worker thread, in submission order.

      --model DIR          model used when a request names none (default: the bundled demo model, or the folder
                           COGVIDEOX_DEMO_MODEL names; GET /v1/models lists what it knows from its demo.json)
      --models-dir DIR     folder of model folders and LoRA files that requests may name (nothing outside it)
      --host HOST          address to bind (default 127.0.0.1; 0.0.0.0 exposes the server to the network)
      --port N             port (default 7860, as CogVideoX-Fun's app; 0 picks a free one)
      --token T            require "Authorization: Bearer T" on every API call (also COGVIDEOX_TOKEN)
      --output-dir DIR     where results go, one folder per job with record.json (default ./samples)
      --max-upload-mb N    size limit per uploaded file (default 50)
      --workers N          generation worker threads (default 1: one model in memory)
      --backend NAME       tensorflow or wasm (default: the fastest available)
      --redis URL          put jobs on this Redis (redis://[:PASSWORD@]HOST:PORT, rediss:// for TLS); they run on
                           \`cogvideox-fun worker\` processes sharing --output-dir and --models-dir, not here
      --redis-ca FILE      with rediss://: the CA certificate (PEM) that signed Redis's certificate, the only one
                           trusted (default: Node's trusted CAs)
      --retries N          with --redis: runs after a failure before a job fails for good (default 2)
      --max-queued N       with --redis: waiting jobs beyond which submissions get HTTP 429 (default 10000)
      --rate-limit N       with --token: job submissions per minute per client address, then HTTP 429 with
                           Retry-After (default 60; 0 = no limit)
  -q, --quiet              no per-request log lines
  -h, --help               this help
`;

export interface ServeFlags {
  model?: string;
  modelsDir?: string;
  host: string;
  port: number;
  token?: string;
  outputDir: string;
  uploadLimit: number;
  workers: number;
  backend?: 'tensorflow' | 'wasm';
  redis?: string;
  redisCa?: string;
  retries: number;
  maxQueued: number;
  rateLimit: number;
  quiet: boolean;
  help: boolean;
}

export function parseServeArgs(argv: readonly string[]): ServeFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        model: { type: 'string', short: 'm' },
        'models-dir': { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        token: { type: 'string' },
        'output-dir': { type: 'string' },
        'max-upload-mb': { type: 'string' },
        workers: { type: 'string' },
        backend: { type: 'string' },
        redis: { type: 'string' },
        'redis-ca': { type: 'string' },
        retries: { type: 'string' },
        'max-queued': { type: 'string' },
        'rate-limit': { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
        debug: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]!);
  }
  const int = (flag: string, v: string | undefined, def: number, min: number, max: number) => {
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${flag} must be an integer between ${min} and ${max}, got "${v}"`);
    return Number(v);
  };
  const s = (k: string) => values[k] as string | undefined;
  const backend = s('backend');
  if (backend !== undefined && backend !== 'tensorflow' && backend !== 'wasm') throw new UsageError(`--backend must be tensorflow or wasm, got "${backend}"`);
  if (s('redis-ca') !== undefined && s('redis') === undefined) throw new UsageError('--redis-ca needs --redis rediss://…');
  const token = s('token') ?? process.env.COGVIDEOX_TOKEN;
  if (token !== undefined && token.length < 8) throw new UsageError('--token must be at least 8 characters');
  return {
    model: s('model'),
    modelsDir: s('models-dir'),
    host: s('host') ?? '127.0.0.1',
    port: int('port', s('port'), 7860, 0, 65535),
    token,
    outputDir: path.resolve(s('output-dir') ?? 'samples'),
    uploadLimit: int('max-upload-mb', s('max-upload-mb'), 50, 1, 4096) * 2 ** 20,
    workers: int('workers', s('workers'), 1, 1, 16),
    backend: backend as ServeFlags['backend'],
    redis: s('redis'),
    redisCa: s('redis-ca') === undefined ? undefined : path.resolve(s('redis-ca')!),
    retries: int('retries', s('retries'), 2, 0, 100),
    maxQueued: int('max-queued', s('max-queued'), 10_000, 1, 10_000_000),
    rateLimit: int('rate-limit', s('rate-limit'), 60, 0, 1_000_000),
    quiet: values.quiet === true,
    help: values.help === true,
  };
}

/** Runs the server until SIGINT / SIGTERM; returns the exit code. */
export async function serve(argv: readonly string[]): Promise<number> {
  const flags = parseServeArgs(argv);
  if (flags.help) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  if (flags.redis !== undefined) await checkRedisFlags(flags.redis, flags.redisCa);
  // the server modules (fastify, worker threads) load only for this command
  const { createServer } = await import('../server/server.js');
  const server = await createServer({
    model: flags.model,
    modelsDir: flags.modelsDir,
    outputDir: flags.outputDir,
    token: flags.token,
    uploadLimit: flags.uploadLimit,
    workers: flags.workers,
    backend: flags.backend,
    redis: flags.redis,
    redisCa: flags.redisCa,
    retries: flags.retries,
    maxQueued: flags.maxQueued,
    rateLimit: flags.rateLimit,
    log: flags.quiet ? null : undefined,
  });
  const address = await server.app.listen({ host: flags.host, port: flags.port });
  const info = server.ctx.currentModelInfo();
  process.stderr.write(
    `cogvideox-fun serve: ${address}/  (model: ${info.demo ? (bundledDemoInfo()?.trained ? 'bundled demo model, trained on a toy world of coloured shapes' : 'bundled demo model, tiny random weights') : info.variant}; backend ${server.ctx.pool.backendName}; ` +
      `output ${flags.outputDir}${flags.token ? '; token required' : ''})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  process.stderr.write(`cogvideox-fun serve: stopping (${flags.redis ? 'jobs stay queued in Redis' : 'queued and running jobs are cancelled'})\n`);
  await server.close();
  return 0;
}
