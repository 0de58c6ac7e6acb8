// Per-client rate limit of job submissions when --token is on (src/server/rate_limit.ts, the server's onRequest
// hook): a token bucket per client address; past it HTTP 429 with Retry-After, before the body is looked at.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { RateLimiter } from '../src/server/rate_limit.js';
import { call, startTestServer, type TestServer } from './server_helpers.js';

describe('RateLimiter', () => {
  it('allows a burst of perMinute, then refills one per 60/perMinute s, per client', () => {
    let now = 0;
    const r = new RateLimiter(3, () => now);
    expect([r.take('a').ok, r.take('a').ok, r.take('a').ok]).toEqual([true, true, true]);
    expect(r.take('a')).toEqual({ ok: false, retryAfter: 20 });
    expect(r.take('b').ok).toBe(true); // another client has its own bucket
    now = 19_000;
    expect(r.take('a')).toEqual({ ok: false, retryAfter: 1 });
    now = 20_000;
    expect(r.take('a').ok).toBe(true);
    expect(r.take('a').ok).toBe(false);
    now = 1e9; // refilled, never above the burst
    expect([r.take('a').ok, r.take('a').ok, r.take('a').ok, r.take('a').ok]).toEqual([true, true, true, false]);
  });

  it('forgets refilled clients, so the map holds only those active within the last minute', () => {
    let now = 0;
    const r = new RateLimiter(60, () => now);
    // 5000 clients, one submission each, 100 ms apart: each bucket is full again 1 s later
    for (let i = 0; i < 5000; i++) {
      now = i * 100;
      r.take(`c${i}`);
    }
    expect(r.size).toBeLessThanOrEqual(1024);
    expect(r.size).toBeGreaterThan(0);
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new RateLimiter(0)).toThrow(/positive integer per minute, got 0/);
  });
});

describe('serve --token --rate-limit', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ token: 'test-token-rate', rateLimit: 2 });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  it('the third submission within a minute gets 429 with Retry-After; reads are not limited', async () => {
    // invalid bodies (400 naming the field) still count: the limit applies before the request is looked at
    const bad = { prompt: 'a red circle', width: 100 };
    expect((await call(t, 'POST', '/v1/jobs', bad)).status).toBe(400);
    expect((await call(t, 'POST', '/v1/jobs', bad)).status).toBe(400);
    const third = await call(t, 'POST', '/v1/jobs', bad);
    expect(third.status).toBe(429);
    expect(third.body.error).toMatch(/at most 2 per minute \(--rate-limit\)/);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(29);
    expect((await call(t, 'POST', '/cogvideox_fun/infer_forward', {})).status).toBe(429);
    expect((await call(t, 'GET', '/v1/jobs')).status).toBe(200);
    // a wrong token is refused before it can use anyone's budget
    expect((await call(t, 'POST', '/v1/jobs', bad, { Authorization: 'Bearer wrong-token' })).status).toBe(401);
  });

  it('the CLI checks --rate-limit', async () => {
    const err = (await import('vitest')).vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['serve', '--rate-limit', 'many'])).toBe(2);
      expect(String(err.mock.calls.at(-1)![0])).toMatch(/--rate-limit must be an integer between 0 and 1000000, got "many"/);
    } finally {
      err.mockRestore();
    }
  });
});
