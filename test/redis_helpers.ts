// Real Redis for the queue tests and bench/queue.ts: Debian's redis-server started on a free loopback port in a
// temporary folder (append-only file on, so a stopped and restarted Redis keeps its jobs) and stopped afterwards;
// and `cogvideox-fun worker` processes started as a user would start them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'cogvideox-fun.mjs');

export function redisServerPath(): string | undefined {
  const p = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return p.status === 0 ? p.stdout.trim() : undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('error', () => resolve(false));
    c.once('connect', () => c.write('PING\r\n'));
    c.once('data', (d) => {
      c.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
  });
}

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  /** stops it (SIGTERM: Redis writes its append-only file and exits) */
  stop(): Promise<void>;
  /** starts it again on the same port and folder (the jobs come back) */
  start(): Promise<void>;
  /** stops it and deletes its folder */
  close(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const bin = redisServerPath();
  if (!bin) throw new Error('redis-server is not installed (Debian: apt-get install redis-server)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-redis-'));
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const r: TestRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    start: async () => {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--logfile', path.join(dir, 'redis.log')];
      proc = spawn(bin, args, { stdio: 'ignore' });
      await waitFor(`redis-server on port ${port}`, () => answers(port), 10_000);
    },
    stop: async () => {
      const p = proc;
      proc = undefined;
      if (!p || p.exitCode !== null) return;
      const exited = new Promise((res) => p.once('exit', res));
      p.kill('SIGTERM');
      await exited;
    },
    close: async () => {
      await r.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await r.start();
  return r;
}

export interface TestWorker {
  proc: ChildProcess;
  pid: number;
  log: () => string;
  /** SIGTERM, then waits for the exit */
  stop(): Promise<void>;
}

/** `cogvideox-fun worker …` as a child process; resolves once it takes jobs. */
export async function startWorker(args: string[], env: Record<string, string> = {}): Promise<TestWorker> {
  const proc = spawn(process.execPath, [BIN, 'worker', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitFor('worker start', () => {
    if (proc.exitCode !== null) throw new Error(`worker exited (${proc.exitCode}): ${log}`);
    return log.includes('taking jobs');
  }, 60_000);
  return {
    proc,
    pid: proc.pid!,
    log: () => log,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((res) => proc.once('exit', res));
      proc.kill('SIGTERM');
      proc.kill('SIGTERM'); // twice: do not wait for running jobs
      await exited;
    },
  };
}
