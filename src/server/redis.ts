// What the server and the workers share about Redis: the URL check, the connections (ioredis: redis:// with an
// optional password, rediss:// for TLS, verified against --redis-ca or Node's trusted roots), the wait for the first
// connection (a refused certificate fails at once), the queue's names, the cancel channel, and the 503 every API call
// answers while Redis is unreachable (instead of hanging on ioredis's offline queue).
import * as fs from 'node:fs';
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
 * The TLS options of a rediss:// connection given `--redis-ca FILE` (PEM; the CA that signed the Redis server's
 * certificate, as redis-cli's --cacert): that CA is the only one trusted. Without the file, Node's own trust applies
 * (its bundled roots, plus NODE_EXTRA_CA_CERTS): enough for a Redis whose certificate a public CA signed. Certificates
 * are always verified, host name included (Node's tls defaults; ioredis passes these options to tls.connect).
 */
export function redisTlsOptions(url: string, caFile: string | undefined, flag = '--redis-ca'): RedisOptions {
  if (caFile === undefined) return {};
  const scheme = /^[a-z]+:\/\//i.exec(url)?.[0];
  if (scheme !== 'rediss://') throw new Error(`${flag} needs a rediss:// URL in --redis (Redis over TLS), got ${scheme ?? `"${url.slice(0, 10)}…"`}`);
  let pem: string;
  try {
    pem = fs.readFileSync(caFile, 'utf8');
  } catch (e) {
    throw new Error(`${flag} ${caFile}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${flag} ${caFile}: expected PEM certificates ("-----BEGIN CERTIFICATE-----"), got ${pem.length} bytes without one`);
  return { tls: { ca: pem } };
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
  r.on('error', (e: Error) => lastErrors.set(r, e)); // reported through the commands that fail and untilReady; ioredis reconnects by itself
  return r;
}

const lastErrors = new WeakMap<Redis, Error>();

/**
 * Node's codes for a server certificate it does not accept (tls.connect: an X509 verify result, or the host name
 * check). Retrying meets the same certificate, so a connection refused for one of these fails at once.
 */
const CERT_REFUSED = /CERT|SIGNATURE|ISSUER|ALTNAME|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE|PATH_LENGTH/;

/**
 * Resolves once `conn` is connected. Rejects — naming Redis, its URL and why — when the server's TLS certificate is
 * refused (at once), or when no connection is made within `ms` (with the last error): a wrong --redis or --redis-ca
 * ends the command with a message instead of ioredis retrying in silence.
 */
export async function untilReady(conn: Redis, safeUrl: string, ms = 5000): Promise<void> {
  if (conn.status === 'ready') return;
  let onReady!: () => void;
  let onError!: (e: Error) => void;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onError = (e: Error) => {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (CERT_REFUSED.test(code)) {
          reject(new Error(`Redis at ${safeUrl}: its TLS certificate is refused (${e.message}, ${code}); give the CA certificate that signed it with --redis-ca FILE`));
        }
      };
      conn.once('ready', onReady);
      conn.on('error', onError);
      const before = lastErrors.get(conn); // an attempt that failed before this call
      if (before) onError(before);
      timer = setTimeout(() => {
        const last = lastErrors.get(conn);
        reject(new Error(`Redis at ${safeUrl}: no connection within ${ms} ms (${conn.status}${last ? `; last error: ${last.message}` : ''})`));
      }, ms);
    });
  } finally {
    clearTimeout(timer);
    conn.off('ready', onReady);
    conn.off('error', onError);
  }
}

/**
 * Disconnects at once. A TLS handshake cut short by it can still fail on its socket (Redis's alert) after ioredis's
 * one-shot error listener of that socket was used: without a listener of ours that error was uncaught and ended the
 * process (in 4 of 6 tries closing a RedisQueue right after a refused certificate).
 */
export function hangUp(conn: Redis): void {
  conn.stream?.on('error', () => {});
  conn.disconnect();
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
