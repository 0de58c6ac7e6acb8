// Real Redis for the queue tests and bench/queue.ts: Debian's redis-server started on a free loopback port in a
// temporary folder (append-only file on, so a stopped and restarted Redis keeps its jobs) and stopped afterwards —
// optionally with a password and TLS only (certificates made here with openssl, in a temporary folder); and
// `cogvideox-fun worker` / `serve` processes started as a user would start them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'cogvideox-fun.mjs');

export function redisServerPath(): string | undefined {
  const p = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return p.status === 0 ? p.stdout.trim() : undefined;
}

export function opensslPath(): string | undefined {
  const p = spawnSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' });
  return p.status === 0 ? p.stdout.trim() : undefined;
}

/** PEM files of a throwaway CA, a server certificate it signed for 127.0.0.1, and an unrelated second CA. */
export interface TestCerts {
  ca: string;
  cert: string;
  key: string;
  /** a CA that did not sign `cert` */
  otherCa: string;
}

/** Makes TestCerts in `dir` (P-256 keys: instant; valid one day). Never in the repository: tests pass a temp dir. */
export function makeTestCerts(dir: string): TestCerts {
  const run = (...args: string[]) => {
    const p = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (p.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${p.status ?? p.error?.message}): ${p.stderr}`);
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = ['-days', '1', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  run('req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=cogvideox test CA', ...ca);
  run('req', '-x509', ...key, '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-subj', '/CN=cogvideox other CA', ...ca);
  run('req', ...key, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '2', '-days', '1', '-extfile', 'server.ext', '-out', 'server.crt');
  const f = (n: string) => path.join(dir, n);
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key'), otherCa: f('other-ca.crt') };
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

async function answers(port: number, o: RedisStartOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const c = o.tls ? tls.connect({ port, host: '127.0.0.1', ca: fs.readFileSync(o.tls.ca) }) : net.connect(port, '127.0.0.1');
    let got = '';
    c.once('error', () => resolve(false));
    // commands as RESP arrays: a password may hold spaces
    const resp = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    c.once(o.tls ? 'secureConnect' : 'connect', () => c.write(`${o.password ? resp('AUTH', o.password) : ''}${resp('PING')}`));
    c.on('data', (d) => {
      got += d.toString();
      if (!got.includes('\r\n', o.password ? got.indexOf('\r\n') + 2 : 0)) return; // AUTH's answer, then PING's
      c.destroy();
      resolve(got.endsWith('+PONG\r\n'));
    });
  });
}

export interface RedisStartOptions {
  /** requirepass */
  password?: string;
  /** TLS only: the plain port is off (--port 0), clients must use rediss:// on `port` */
  tls?: TestCerts;
  /** more addresses to listen on besides 127.0.0.1 (a "-" prefix: only where the address exists) */
  alsoBind?: string[];
}

/** redis-server refused TLS options: built without TLS (Debian's is built with it). */
export class RedisTlsUnsupportedError extends Error {}

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

export async function startRedis(o: RedisStartOptions = {}): Promise<TestRedis> {
  const bin = redisServerPath();
  if (!bin) throw new Error('redis-server is not installed (Debian: apt-get install redis-server)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-redis-'));
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const auth = o.password ? `:${encodeURIComponent(o.password)}@` : '';
  const r: TestRedis = {
    url: `${o.tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    port,
    dir,
    start: async () => {
      const log = path.join(dir, 'redis.log');
      const args = ['--bind', '127.0.0.1', ...(o.alsoBind ?? []), '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--logfile', log];
      if (o.tls) args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', o.tls.cert, '--tls-key-file', o.tls.key, '--tls-ca-cert-file', o.tls.ca, '--tls-auth-clients', 'no');
      else args.push('--port', String(port));
      if (o.password) args.push('--requirepass', o.password);
      const p = (proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
      let stderr = '';
      p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const started = waitFor(`redis-server on port ${port}${o.tls ? ' (TLS)' : ''}`, () => {
        if (p.exitCode !== null) {
          // configuration errors go to stderr, later ones to the log file
          const said = `${stderr}${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`.trim().split('\n').slice(-6).join(' | ');
          // a build without TLS: 7.0 does not know the tls-* directives, later ones lack the TLS connection type
          if (o.tls && /Bad directive|without TLS|TLS.{0,40}(not|un)(supported|available|built)|connection type tls/i.test(said)) {
            throw new RedisTlsUnsupportedError(`redis-server at ${bin} has no TLS support (it was built without it; Debian's redis-server has it): ${said}`);
          }
          throw new Error(`redis-server exited (${p.exitCode}) before answering: ${said}`);
        }
        return answers(port, o);
      }, 10_000);
      await started.catch(async (e) => {
        await r.close(); // not left running (or its folder left behind) by a failed start
        throw e;
      });
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

/** `cogvideox-fun serve …` as a child process (add --port 0); resolves with its address once it listens. */
export async function startServe(args: string[]): Promise<{ proc: ChildProcess; base: string; log: () => string; stop(): Promise<void> }> {
  const proc = spawn(process.execPath, [BIN, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  let base = '';
  await waitFor('serve start', () => {
    if (proc.exitCode !== null) throw new Error(`serve exited (${proc.exitCode}): ${log}`);
    base = /cogvideox-fun serve: (http:\/\/\S+?)\/ /.exec(log)?.[1] ?? '';
    return base !== '';
  }, 60_000);
  return {
    proc,
    base,
    log: () => log,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((res) => proc.once('exit', res));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs `cogvideox-fun ARGS` to its end (killed after `ms`: a hang is an answer too); its exit code, stderr, time. */
export async function runCli(args: string[], ms: number, env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string; seconds: number }> {
  const t0 = performance.now();
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
  const code = await new Promise<number | null>((res) => proc.once('exit', (c) => res(c)));
  clearTimeout(timer);
  return { code, stderr, seconds: (performance.now() - t0) / 1000 };
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
