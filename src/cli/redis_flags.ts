// --redis / --redis-ca as serve and worker take them: checked before anything connects, a bad one a usage error.
import { UsageError } from './errors.js';

export async function checkRedisFlags(url: string, ca: string | undefined): Promise<void> {
  const { checkRedisUrl, redisTlsOptions } = await import('../server/redis.js');
  try {
    checkRedisUrl(url);
    redisTlsOptions(url, ca);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
