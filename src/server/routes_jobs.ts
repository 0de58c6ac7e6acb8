// The job API: submit (JSON or multipart), status, Server-Sent Events, cancel, result, history, models.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SCHEDULER_NAMES } from '../schedulers/index.js';
import { collectJson, collectMultipart } from './collect.js';
import { jobBodySchema } from './fields.js';
import { removePartial } from './job.js';
import { listModels } from './models.js';
import { buildJobSpec, workDirFor, type CollectedJob } from './request.js';
import type { ServerContext } from './context.js';
import { RequestError, type JobInfo, type ServerJobEvent } from './types.js';

const TERMINAL = new Set(['done', 'failed', 'cancelled']);
const CONTENT_TYPES: Record<string, string> = { mp4: 'video/mp4', gif: 'image/gif', png: 'image/png', jpg: 'image/jpeg', webp: 'image/webp', bin: 'application/octet-stream' };

/** A sortable, unique job id: UTC time + random. */
export function newJobId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${t}-${Math.random().toString(16).slice(2, 8)}`;
}

/** Validates and queues a submission (JSON fields or multipart); the one path every submit endpoint takes. */
export async function submitCollected(ctx: ServerContext, id: string, collect: (workDir: string) => Promise<CollectedJob> | CollectedJob): Promise<JobInfo> {
  const workDir = workDirFor(ctx.outputDir, id);
  try {
    const collected = await collect(workDir);
    const spec = await buildJobSpec(id, collected, {
      outputDir: ctx.outputDir,
      modelsDir: ctx.modelsDir,
      defaultModel: ctx.currentModel(),
      backend: ctx.pool.backend,
      fusedAttention: ctx.pool.backendName.includes('fused attention'),
      probe: ctx.probe,
    });
    return await ctx.queue.submit(spec);
  } catch (e) {
    removePartial(workDir); // a rejected job leaves nothing behind
    throw e;
  }
}

async function jobOr404(ctx: ServerContext, id: string): Promise<JobInfo> {
  const info = await ctx.queue.get(id);
  if (!info) throw new RequestError(404, 'id', `no job ${id}`);
  return info;
}

/**
 * Sends a file, honouring a single Range (a <video> element seeks with them). The file is opened once and its size
 * taken from that descriptor: a result replaced meanwhile (a job run again renames a new file over it) is sent whole
 * from the version opened, never a mix of two.
 */
async function sendFile(req: FastifyRequest, reply: FastifyReply, file: string, type: string): Promise<FastifyReply> {
  const fh = await fs.promises.open(file, 'r');
  let size: number;
  try {
    size = (await fh.stat()).size;
  } catch (e) {
    await fh.close();
    throw e;
  }
  reply.header('Content-Type', type).header('Accept-Ranges', 'bytes').header('Cache-Control', 'no-store');
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  if (m && (m[1] !== '' || m[2] !== '')) {
    let start = m[1] === '' ? size - Number(m[2]) : Number(m[1]);
    let end = m[1] === '' || m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    start = Math.max(0, start);
    if (start > end || start >= size) {
      await fh.close();
      return reply.code(416).header('Content-Range', `bytes */${size}`).send();
    }
    end = Math.min(end, size - 1);
    reply.code(206).header('Content-Range', `bytes ${start}-${end}/${size}`).header('Content-Length', end - start + 1);
    return reply.send(fh.createReadStream({ start, end }));
  }
  reply.header('Content-Length', size);
  return reply.send(fh.createReadStream());
}

const idParams = { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9A-Za-z-]+$' } }, required: ['id'] } as const;

export function registerJobRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // open event streams end when the server stops (app.close() would wait for them; with a Redis queue the jobs go
  // on and an EventSource reconnects to the restarted server by itself)
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });
  app.post(
    '/v1/jobs',
    {
      schema: {
        body: { content: { 'application/json': { schema: jobBodySchema() }, 'multipart/form-data': { schema: {} } } },
      },
    },
    async (req, reply) => {
      const id = newJobId();
      const info = await submitCollected(ctx, id, (workDir) => (req.isMultipart() ? collectMultipart(req, workDir, ctx.uploadLimit) : collectJson(req.body, workDir, ctx.uploadLimit)));
      return reply.code(202).header('Location', `/v1/jobs/${id}`).send({ id, seq: info.seq, state: info.state, position: info.position });
    },
  );

  app.get('/v1/jobs', async () => ({ jobs: await ctx.queue.list() }));

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', { schema: { params: idParams } }, async (req) => jobOr404(ctx, req.params.id));

  app.delete<{ Params: { id: string } }>('/v1/jobs/:id', { schema: { params: idParams } }, async (req) => ctx.queue.cancel(req.params.id));

  app.get<{ Params: { id: string } }>('/v1/jobs/:id/result', { schema: { params: idParams } }, async (req, reply) => {
    const info = await jobOr404(ctx, req.params.id);
    if (info.state !== 'done' || !info.result) throw new RequestError(409, 'id', `job ${info.id} is ${info.state}; it has no result${info.state === 'queued' || info.state === 'running' ? ' yet' : ''}`);
    return sendFile(req, reply, info.result.path, CONTENT_TYPES[info.result.format]!);
  });

  app.get<{ Params: { id: string; name: string } }>('/v1/jobs/:id/inputs/:name', { schema: { params: { ...idParams, properties: { ...idParams.properties, name: { type: 'string', enum: ['image', 'endImage', 'video', 'mask'] } }, required: ['id', 'name'] } } }, async (req, reply) => {
    const info = await jobOr404(ctx, req.params.id);
    const dir = path.join(info.state === 'done' ? path.join(ctx.outputDir, info.id) : workDirFor(ctx.outputDir, info.id), 'inputs');
    const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((n) => n.startsWith(`${req.params.name}.`)) : undefined;
    if (!file) throw new RequestError(404, 'name', `job ${info.id} has no ${req.params.name} input`);
    return sendFile(req, reply, path.join(dir, file), CONTENT_TYPES[path.extname(file).slice(1)] ?? 'application/octet-stream');
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id/events', { schema: { params: idParams } }, async (req, reply) => {
    const info = await jobOr404(ctx, req.params.id);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    const send = (type: string, data: unknown) => res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    send('state', info);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      streams.delete(end);
      clearInterval(ping);
      unsubscribe?.();
      res.end();
    };
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    streams.add(end);
    let unsubscribe: (() => void) | undefined;
    if (TERMINAL.has(info.state)) {
      send(info.state, info.state === 'done' ? { type: 'done', result: info.result } : info.state === 'failed' ? { type: 'failed', error: info.error } : { type: 'cancelled' });
      end();
      return;
    }
    unsubscribe = ctx.queue.subscribe(info.id, (e: ServerJobEvent) => {
      send(e.type, e);
      if (e.type === 'done' || e.type === 'failed' || e.type === 'cancelled') end();
    });
    res.on('close', end); // the client went away
  });

  app.get('/v1/models', async () => {
    const { models, loras } = listModels(ctx.modelsDir);
    return { current: ctx.currentModelInfo(), models, loras, samplers: SCHEDULER_NAMES, backend: ctx.pool.backendName };
  });

  app.get('/v1/health', async () => ({ ok: true, ...(await ctx.queue.health()) }));
}
