// `cogvideox-fun worker`: runs jobs from a `serve --redis` queue, on this machine or any other that reaches the
// Redis and shares the server's --output-dir (and holds the models in its own --models-dir).
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';
import { checkRedisFlags } from './redis_flags.js';

export const WORKER_USAGE = `Usage: cogvideox-fun worker --redis URL [options]

Takes generation jobs from the Redis queue of \`cogvideox-fun serve --redis URL\` and runs them, --concurrency at a
time. A job whose worker dies is run again by another worker after --lock-ms; its output is written once.

      --redis URL          the queue: redis://[:PASSWORD@]HOST:PORT (rediss:// for TLS); a Redis that does not
                           answer within 5 s, or whose certificate is refused, ends the worker with the reason
      --redis-ca FILE      with rediss://: the CA certificate (PEM) that signed Redis's certificate, the only one
                           trusted (default: Node's trusted CAs)
      --output-dir DIR     the server's output folder, shared (NFS, SMB, a cloud volume; default ./samples)
      --models-dir DIR     this machine's models folder: model and LoRA paths of jobs resolve inside it only
      --concurrency N      jobs at once, one generation thread each (default 1)
      --backend NAME       tensorflow or wasm (default: the fastest available)
      --lock-ms N          job lock (default 30000); a dead worker's job is retried after about this long
      --stalled-ms N       how often to look for jobs of dead workers (default: --lock-ms)
  -q, --quiet              no per-job log lines
  -h, --help               this help
`;

export interface WorkerFlags {
  redis: string;
  redisCa?: string;
  outputDir: string;
  modelsDir?: string;
  concurrency: number;
  backend?: 'tensorflow' | 'wasm';
  lockMs: number;
  stalledMs?: number;
  quiet: boolean;
}

export function parseWorkerArgs(argv: readonly string[]): WorkerFlags | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        redis: { type: 'string' },
        'redis-ca': { type: 'string' },
        'output-dir': { type: 'string' },
        'models-dir': { type: 'string' },
        concurrency: { type: 'string' },
        backend: { type: 'string' },
        'lock-ms': { type: 'string' },
        'stalled-ms': { type: 'string' },
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
  if (values.help) return 'help';
  const s = (k: string) => values[k] as string | undefined;
  const int = (flag: string, def: number | undefined, min: number, max: number) => {
    const v = s(flag);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${flag} must be an integer between ${min} and ${max}, got "${v}"`);
    return Number(v);
  };
  const redis = s('redis');
  if (!redis) throw new UsageError('--redis URL is required (the Redis of `cogvideox-fun serve --redis URL`)');
  const backend = s('backend');
  if (backend !== undefined && backend !== 'tensorflow' && backend !== 'wasm') throw new UsageError(`--backend must be tensorflow or wasm, got "${backend}"`);
  return {
    redis,
    redisCa: s('redis-ca') === undefined ? undefined : path.resolve(s('redis-ca')!),
    outputDir: path.resolve(s('output-dir') ?? 'samples'),
    modelsDir: s('models-dir') === undefined ? undefined : path.resolve(s('models-dir')!),
    concurrency: int('concurrency', 1, 1, 16)!,
    backend: backend as WorkerFlags['backend'],
    lockMs: int('lock-ms', 30_000, 500, 3_600_000)!,
    stalledMs: int('stalled-ms', undefined, 100, 3_600_000),
    quiet: values.quiet === true,
  };
}

/** Runs until SIGINT / SIGTERM (the first lets running jobs finish, a second stops them); returns the exit code. */
export async function workerCommand(argv: readonly string[]): Promise<number> {
  const flags = parseWorkerArgs(argv);
  if (flags === 'help') {
    process.stdout.write(WORKER_USAGE);
    return 0;
  }
  const fs = await import('node:fs');
  await checkRedisFlags(flags.redis, flags.redisCa);
  if (!fs.statSync(flags.outputDir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--output-dir ${flags.outputDir}: not a folder (the server's output folder, shared)`);
  if (flags.modelsDir !== undefined && !fs.statSync(flags.modelsDir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--models-dir ${flags.modelsDir}: not a folder`);
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  const { RemoteWorker } = await import('../server/remote_worker.js');
  const log = flags.quiet ? undefined : (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);
  const w = new RemoteWorker({
    url: flags.redis,
    ca: flags.redisCa,
    outputDir: flags.outputDir,
    modelsDir: flags.modelsDir,
    concurrency: flags.concurrency,
    backend: flags.backend,
    lockDurationMs: flags.lockMs,
    stalledIntervalMs: flags.stalledMs,
    log,
  });
  await w.start();
  process.stderr.write(`cogvideox-fun worker ${w.name}: taking jobs from ${w.safeUrl} (backend ${w.backendName}; output ${flags.outputDir}; ${flags.concurrency} at a time)\n`);
  let signals = 0;
  await new Promise<void>((resolve) => {
    const stop = () => {
      signals++;
      if (signals === 1) process.stderr.write('cogvideox-fun worker: stopping after the running jobs (again to stop them now)\n');
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  const forced = new Promise<void>((resolve) => {
    const t = setInterval(() => signals > 1 && resolve(), 100);
    t.unref();
  });
  await Promise.race([w.close(false), forced.then(() => w.close(true))]);
  return 0;
}
