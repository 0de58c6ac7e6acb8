// `serve --redis rediss://…` + `cogvideox-fun worker --redis rediss://…` against a real redis-server that speaks TLS
// only (no plain port) and requires a password, with a throwaway CA and server certificate made here by openssl in
// a temporary folder: a job runs end to end with the CA given as --redis-ca; a certificate the client cannot verify
// (no CA given, another CA, or an address the certificate does not name) ends serve and worker at once with an error
// naming Redis; a Redis that is not there ends a worker after 5 s; NODE_EXTRA_CA_CERTS (Node's own setting) is enough
// for a worker too.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisTlsOptions } from '../src/server/redis.js';
import { createServer } from '../src/server/server.js';
import { freePort, makeTestCerts, opensslPath, redisServerPath, RedisTlsUnsupportedError, runCli, startRedis, startServe, startWorker, type TestCerts, type TestRedis, type TestWorker } from './redis_helpers.js';
import { call, DEMO_MODEL, waitFinished, type TestServer } from './server_helpers.js';

const HAVE_TOOLS = redisServerPath() !== undefined && opensslPath() !== undefined;
// CI installs redis-server and openssl and sets this: a missing one — or a redis-server without TLS — fails there
const EXPECT_REDIS = process.env.COGVIDEOX_EXPECT_REDIS === '1';
const PASSWORD = 'tls test pass/word'; // a space and a slash: the URL carries it percent-encoded

it.runIf(EXPECT_REDIS)('redis-server and openssl are installed (COGVIDEOX_EXPECT_REDIS=1)', () => {
  expect(redisServerPath(), 'redis-server not found on PATH').toBeDefined();
  expect(opensslPath(), 'openssl not found on PATH (Debian: apt-get install openssl)').toBeDefined();
});

describe('--redis-ca: checked before anything connects', () => {
  it('needs a rediss:// URL and a readable PEM file', () => {
    expect(redisTlsOptions('redis://h:1', undefined)).toEqual({});
    expect(() => redisTlsOptions('redis://h:1', '/x.pem')).toThrow(/--redis-ca needs a rediss:\/\/ URL in --redis \(Redis over TLS\), got redis:\/\//);
    expect(() => redisTlsOptions('rediss://h:1', '/nonexistent/ca.pem')).toThrow(/--redis-ca \/nonexistent\/ca\.pem: cannot read it \(ENOENT\)/);
    const notPem = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-ca-')), 'ca.pem');
    fs.writeFileSync(notPem, 'hello');
    expect(() => redisTlsOptions('rediss://h:1', notPem)).toThrow(/expected PEM certificates \("-----BEGIN CERTIFICATE-----"\), got 5 bytes without one/);
    fs.rmSync(path.dirname(notPem), { recursive: true });
  });
});

describe.skipIf(!HAVE_TOOLS)('Redis over TLS (rediss://) with a password: serve and a worker', () => {
  let tmp: string;
  let certs: TestCerts;
  let redis: TestRedis | undefined;
  let noTls: string | undefined; // redis-server without TLS, where that is allowed (not CI): the tests skip
  let outputDir: string;
  let modelsDir: string;
  let serve: Awaited<ReturnType<typeof startServe>> | undefined;
  let t: TestServer;
  const workers: TestWorker[] = [];
  const dirs = () => ['--output-dir', outputDir, '--models-dir', modelsDir];
  /** the URL as messages must show it (password hidden), as a regular expression */
  const shown = () => redis!.url.replace(/:[^:@/]+@/, ':***@').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  /** the password, as given and as in the URL */
  const secrets = [PASSWORD, encodeURIComponent(PASSWORD)];

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-redis-tls-'));
    fs.mkdirSync(path.join(tmp, 'certs'));
    certs = makeTestCerts(path.join(tmp, 'certs'));
    try {
      // 127.0.0.2 (loopback on Linux) reaches the same Redis under an address its certificate does not name
      redis = await startRedis({ password: PASSWORD, tls: certs, alsoBind: ['-127.0.0.2'] });
    } catch (e) {
      if (EXPECT_REDIS || !(e instanceof RedisTlsUnsupportedError)) throw e;
      noTls = e.message;
      return;
    }
    outputDir = path.join(tmp, 'samples');
    modelsDir = path.join(tmp, 'models');
    fs.mkdirSync(outputDir);
    fs.mkdirSync(path.join(modelsDir, 'Diffusion_Transformer'), { recursive: true });
    fs.symlinkSync(DEMO_MODEL, path.join(modelsDir, 'Diffusion_Transformer', 'demo'));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await serve?.stop();
    await redis?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); // the keys too
  }, 60_000);

  it('a job runs end to end: serve and worker connect with --redis-ca, the password is never shown', async (ctx) => {
    if (noTls) ctx.skip();
    expect(redis!.url).toMatch(/^rediss:\/\/:tls%20test%20pass%2Fword@127\.0\.0\.1:\d+$/);
    // the Redis has no plain port (--port 0): whatever connects here speaks TLS and verified the certificate
    let worker: TestWorker;
    [serve, worker] = await Promise.all([
      startServe(['--port', '0', '--redis', redis!.url, '--redis-ca', certs.ca, ...dirs()]),
      startWorker(['--redis', redis!.url, '--redis-ca', certs.ca, ...dirs()]),
    ]);
    workers.push(worker);
    t = { server: undefined as never, base: serve.base, outputDir, modelsDir, close: async () => {} };
    const r = await call(t, 'POST', '/v1/jobs', { prompt: 'over tls', frames: 1, steps: 1, seed: 3 });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const done = await waitFinished(t, r.body.id, 50_000);
    expect(done.state, done.error).toBe('done');
    expect(done.worker).toMatch(new RegExp(`:${worker.pid}$`));
    const res = await call(t, 'GET', `/v1/jobs/${r.body.id}/result`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(JSON.parse(fs.readFileSync(path.join(outputDir, r.body.id, 'record.json'), 'utf8')).id).toBe(r.body.id);
    const health = await call(t, 'GET', '/v1/health');
    expect(health.body).toMatchObject({ queue: 'redis', workers: 1 });
    expect(health.body.redis).toMatch(new RegExp(`^${shown()}`));
    for (const said of [JSON.stringify(health.body), serve.log(), worker.log()]) for (const p of secrets) expect(said).not.toContain(p);
  }, 60_000);

  it('a certificate the client cannot verify: serve and worker end at once, naming Redis and --redis-ca', async (ctx) => {
    if (noTls) ctx.skip();
    const refused = new RegExp(`error: Redis at ${shown()}/?: its TLS certificate is refused \\((self-signed certificate in certificate chain, SELF_SIGNED_CERT_IN_CHAIN|unable to verify the first certificate, UNABLE_TO_VERIFY_LEAF_SIGNATURE)\\); give the CA certificate that signed it with --redis-ca FILE`);
    // no CA: Node's trusted CAs did not sign it; another CA: not that one either; the right CA, but an address the
    // certificate does not name (127.0.0.2: the same Redis); and, for comparison, no Redis at all on a port
    const elsewhere = redis!.url.replace('127.0.0.1', '127.0.0.2');
    const nobody = `rediss://127.0.0.1:${await freePort()}`;
    const [worker, server, wrongHost, none] = await Promise.all([
      runCli(['worker', '--redis', redis!.url, ...dirs()], 30_000),
      runCli(['serve', '--port', '0', '--redis', redis!.url, '--redis-ca', certs.otherCa, ...dirs()], 30_000),
      runCli(['worker', '--redis', elsewhere, '--redis-ca', certs.ca, ...dirs()], 30_000),
      runCli(['worker', '--redis', nobody, '--redis-ca', certs.ca, ...dirs()], 30_000),
    ]);
    for (const r of [worker, server, wrongHost]) {
      expect(r.code, r.stderr).toBe(1);
      for (const p of secrets) expect(r.stderr).not.toContain(p);
    }
    expect(worker.stderr).toMatch(refused);
    expect(server.stderr).toMatch(refused);
    expect(wrongHost.stderr).toMatch(/error: Redis at rediss:\/\/:\*\*\*@127\.0\.0\.2:\d+\/?: its TLS certificate is refused \(Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.2 is not in the cert's list: 127\.0\.0\.1, ERR_TLS_CERT_ALTNAME_INVALID\)/);
    // those by their first attempt, not after the 5 s connection timeout, which is the answer when nobody listens
    expect(none.stderr).toMatch(/error: Redis at rediss:\/\/127\.0\.0\.1:\d+\/?: no connection within 5000 ms \(\w+; last error: connect ECONNREFUSED 127\.0\.0\.1:\d+\)/);
    expect(none.code).toBe(1);
    for (const r of [worker, server, wrongHost]) expect(r.stderr).not.toMatch(/no connection within/);
    // in process: createServer rejects, and its closed connections raise nothing afterwards (a TLS handshake cut short
    // by the close fails on its socket: uncaught, that error ended the process — in about half the tries, hence three)
    for (let k = 0; k < 3; k++) {
      await expect(createServer({ outputDir, modelsDir, log: null, redis: redis!.url, redisCa: certs.otherCa })).rejects.toThrow(/its TLS certificate is refused/);
    }
    await new Promise((r) => setTimeout(r, 1000));
    // --redis-ca with a plain redis:// URL is a command-line mistake (exit 2), before anything connects
    const plain = await runCli(['worker', '--redis', 'redis://127.0.0.1:1', '--redis-ca', certs.ca, ...dirs()], 30_000);
    expect(plain.stderr).toMatch(/error: --redis-ca needs a rediss:\/\/ URL in --redis \(Redis over TLS\), got redis:\/\//);
    expect(plain.code).toBe(2);
  }, 60_000);

  it('NODE_EXTRA_CA_CERTS (Node’s own trust setting) lets a worker verify Redis without --redis-ca', async (ctx) => {
    if (noTls) ctx.skip();
    const w = await startWorker(['--redis', redis!.url, ...dirs()], { NODE_EXTRA_CA_CERTS: certs.ca });
    workers.push(w);
    expect(w.log()).toMatch(new RegExp(`taking jobs from ${shown()}`));
    expect((await call(t, 'GET', '/v1/health')).body.workers).toBe(2);
  }, 60_000);
});
