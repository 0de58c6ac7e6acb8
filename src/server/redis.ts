// What the server and the workers share about Redis: the URL check, the connections (ioredis: redis:// with an
// optional password, rediss:// for TLS), the queue's names, the cancel channel, and the 503 every API call answers
// while Redis is unreachable (instead of hanging on ioredis's offline queue).
import { Redis, type RedisOptions } from 'ioredis';
import { RequestError } from './types.js';

export const QUEUE_NAME = 'cogvideox';
/** Published (job id) when a running job is to be cancelled; the worker that runs it stops it. */
export const CANCEL_CHANNEL = `${QUEUE_NAME}:cancel`;
/** Set before publishing, so a worker that picks the job up later (after a restart, a stall) still sees it. */
export const cancelKey = (id: string) => `${QUEUE_NAME}:cancel:${id}`;
/** Hash id → JobInfo (JSON) of jobs cancelled while queued: BullMQ removes them, the API still reports them. */
export const CANCELLED_KEY = `${QUEUE_NAME}:cancelled`;
/** Sorted set id → seq of the same jobs: the oldest beyond the history limit are dropped from both. */
export const CANCELLED_ORDER_KEY = `${QUEUE_NAME}:cancelled-order`;
/** Counter of submissions: the API's `seq`. */
export const SEQ_KEY = `${QUEUE_NAME}:seq`;

/** Checks a --redis URL; returns it with the password hidden, for messages and logs. */
export function checkRedisUrl(url: string, flag = '--redis'): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${flag} must be a URL like redis://HOST:PORT (or rediss:// for TLS, redis://:PASSWORD@HOST:PORT), got "${url}"`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`${flag} must start with redis:// or rediss://, got "${u.protocol}//"`);
  if (u.password) u.password = '***';
  return u.toString();
}

/**
 * A connection. `failFast` (the server's commands): no offline queue and one attempt per command, so a request fails
 * at once while Redis is away; otherwise (BullMQ's blocking readers, the workers) commands wait for the reconnect.
 */
export function connect(url: string, failFast: boolean, extra: RedisOptions = {}): Redis {
  const r = new Redis(url, {
    maxRetriesPerRequest: failFast ? 1 : null,
    enableOfflineQueue: !failFast,
    connectTimeout: 3000,
    // reconnect forever, at most every 1 s: Redis coming back is noticed within a second
    retryStrategy: (times) => Math.min(100 * times, 1000),
    ...extra,
  });
  r.on('error', () => {}); // reported through the commands that fail; ioredis reconnects by itself
  return r;
}

export function redisUnavailable(safeUrl: string, e: unknown): RequestError {
  const why = e instanceof Error ? e.message : String(e);
  return new RequestError(503, 'redis', `Redis at ${safeUrl} is unavailable (${why}); the job queue cannot answer, retry later`);
}

/** Runs a Redis operation within `ms`; a failure or timeout is the 503 above, a RequestError passes through. */
export async function guarded<T>(safeUrl: string, conn: Redis, op: () => Promise<T>, ms = 3000): Promise<T> {
  if (conn.status !== 'ready') throw redisUnavailable(safeUrl, new Error(`connection ${conn.status}`));
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      op(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } catch (e) {
    if (e instanceof RequestError) throw e;
    throw redisUnavailable(safeUrl, e);
  } finally {
    clearTimeout(timer);
  }
}
