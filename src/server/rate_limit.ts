// Per-client rate limit of job submissions (issue: back-pressure "per-client rate limit when --token is on"): a token
// bucket per client address, `perMinute` submissions refilled evenly over a minute, bursts up to `perMinute`. With
// one shared --token the token does not tell clients apart, so the client is the request's address (behind a
// reverse proxy that is the proxy: put the limit there instead). Buckets that have refilled are forgotten, so the
// map stays bounded by the clients active within the last minute.

export interface RateDecision {
  ok: boolean;
  /** whole seconds until one submission is allowed again (for Retry-After); 0 when ok */
  retryAfter: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly ratePerMs: number;

  constructor(readonly perMinute: number, private readonly now: () => number = () => performance.now()) {
    if (!Number.isInteger(perMinute) || perMinute < 1) throw new Error(`rate limit must be a positive integer per minute, got ${perMinute}`);
    this.ratePerMs = perMinute / 60_000;
  }

  /** Takes one submission from `client`'s bucket. */
  take(client: string): RateDecision {
    const t = this.now();
    this.forgetFull(t);
    const b = this.buckets.get(client) ?? { tokens: this.perMinute, at: t };
    b.tokens = Math.min(this.perMinute, b.tokens + (t - b.at) * this.ratePerMs);
    b.at = t;
    this.buckets.set(client, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true, retryAfter: 0 };
    }
    return { ok: false, retryAfter: Math.max(1, Math.ceil((1 - b.tokens) / this.ratePerMs / 1000)) };
  }

  /** clients tracked now (for tests: the map does not grow without bound) */
  get size(): number {
    return this.buckets.size;
  }

  private forgetFull(t: number): void {
    if (this.buckets.size < 1024) return;
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.at) * this.ratePerMs >= this.perMinute) this.buckets.delete(k);
  }
}
