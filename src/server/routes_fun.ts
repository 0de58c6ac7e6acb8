// CogVideoX-Fun's API routes (cogvideox/api/api.py at 6c39567), so its client (cogvideox/api/post_infer.py) works
// against this server unchanged: same paths, same request fields and defaults, same answer
// {message, save_sample_path, base64_encoding}. Two deliberate differences: an error is an HTTP 4xx/5xx (Fun answers
// 200 with the error inside `message`), and paths are resolved inside --models-dir only.
import * as fs from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { oneLine } from '../cli/errors.js';
import { inspectModelFolder } from '../cli/model_folder.js';
import { FUN_NEGATIVE_PROMPT } from '../cli/generate.js';
import { decodeBase64, stageUpload } from './collect.js';
import type { FieldValue, FileField } from './fields.js';
import { resolveInside } from './models.js';
import type { CollectedJob } from './request.js';
import { newJobId, submitCollected } from './routes_jobs.js';
import type { ServerContext } from './context.js';
import { RequestError } from './types.js';

/** Fun's request fields and their defaults (api.py `datas.get(name, default)`). */
const FUN_DEFAULTS: Record<string, unknown> = {
  base_model_path: 'none',
  lora_model_path: 'none',
  lora_alpha_slider: 0.55,
  prompt_textbox: null,
  negative_prompt_textbox: FUN_NEGATIVE_PROMPT,
  sampler_dropdown: 'Euler',
  sample_step_slider: 30,
  resize_method: 'Generate by',
  width_slider: 672,
  height_slider: 384,
  base_resolution: 512,
  is_image: false,
  generation_method: false,
  length_slider: 49,
  overlap_video_length: 4,
  partial_video_length: 72,
  cfg_scale_slider: 6,
  start_image: null,
  end_image: null,
  validation_video: null,
  validation_video_mask: null,
  control_video: null,
  denoise_strength: 0.7,
  seed_textbox: 43,
};
/** sent by Fun's own client (post_infer.py) and ignored by Fun's API */
const IGNORED = new Set(['motion_module_path']);

/** Fun's clients post JSON with no content type (requests' `data=`): parse the body as JSON whatever it says. */
function parseBody(body: unknown): Record<string, unknown> {
  let v = body;
  if (Buffer.isBuffer(v)) v = v.toString('utf8');
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      throw new RequestError(400, undefined, 'the body is not JSON');
    }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RequestError(400, undefined, 'the body must be a JSON object');
  return v as Record<string, unknown>;
}

/** Fun's numbers may arrive as numbers or numeric strings (Gradio textboxes). */
function num(datas: Record<string, unknown>, name: string, integer: boolean): number {
  const v = datas[name] ?? FUN_DEFAULTS[name];
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new RequestError(400, name, `${name} must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Fun's request → this server's job fields (the CLI's options), uploads staged in the job's folder. */
export function funToJob(datas: Record<string, unknown>, workDir: string, limit: number): CollectedJob {
  for (const k of Object.keys(datas)) if (!(k in FUN_DEFAULTS) && !IGNORED.has(k)) throw new RequestError(400, k, `unknown field "${k}" (CogVideoX-Fun's infer_forward fields: ${Object.keys(FUN_DEFAULTS).join(', ')})`);
  const get = (k: string) => (datas[k] === undefined ? FUN_DEFAULTS[k] : datas[k]);
  const fields: Record<string, FieldValue> = {};
  const files: CollectedJob['files'] = {};

  if (get('base_model_path') !== 'none') throw new RequestError(400, 'base_model_path', 'base_model_path: replacing the transformer with a Dreambooth state dict is not supported; use "none"');
  if (get('control_video') !== null) throw new RequestError(400, 'control_video', 'control_video: CogVideoX-Fun Control models are not supported (InP models only)');
  const prompt = get('prompt_textbox');
  if (prompt !== null) {
    if (typeof prompt !== 'string') throw new RequestError(400, 'prompt_textbox', 'prompt_textbox must be a string');
    fields.prompt = prompt;
  }
  const neg = get('negative_prompt_textbox');
  if (typeof neg !== 'string') throw new RequestError(400, 'negative_prompt_textbox', 'negative_prompt_textbox must be a string');
  fields.negativePrompt = neg;
  const sampler = get('sampler_dropdown');
  if (typeof sampler !== 'string') throw new RequestError(400, 'sampler_dropdown', 'sampler_dropdown must be a string');
  fields.sampler = sampler;
  fields.steps = num(datas, 'sample_step_slider', true);
  fields.guidance = num(datas, 'cfg_scale_slider', false);

  const resize = get('resize_method');
  if (resize === 'Resize according to Reference') {
    const base = num(datas, 'base_resolution', true);
    if (![512, 768, 960, 1024].includes(base)) throw new RequestError(400, 'base_resolution', `base_resolution must be 512, 768, 960 or 1024, got ${base}`);
    fields.resizeToReference = base;
  } else if (resize === 'Generate by') {
    fields.width = num(datas, 'width_slider', true);
    fields.height = num(datas, 'height_slider', true);
  } else {
    throw new RequestError(400, 'resize_method', `resize_method must be "Generate by" or "Resize according to Reference", got ${JSON.stringify(resize)}`);
  }

  // api.py: is_image overrides generation_method; False (its default) means video
  let method = get('is_image') === true ? 'Image Generation' : get('generation_method');
  if (method === false || method === null) method = 'Video Generation';
  if (method === 'Image Generation') fields.frames = 1;
  else if (method === 'Video Generation' || method === 'Long Video Generation') fields.frames = num(datas, 'length_slider', true);
  else throw new RequestError(400, 'generation_method', `generation_method must be "Video Generation", "Image Generation" or "Long Video Generation", got ${JSON.stringify(method)}`);
  if (method === 'Long Video Generation') {
    fields.longVideo = true;
    fields.segment = num(datas, 'partial_video_length', true);
    fields.overlap = num(datas, 'overlap_video_length', true);
  }

  const upload = (funName: string, field: FileField) => {
    const v = get(funName);
    if (v === null || v === undefined) return;
    try {
      files[field] = stageUpload(workDir, field, decodeBase64(funName, v, limit));
    } catch (e) {
      if (e instanceof RequestError) throw new RequestError(e.status, funName, e.message);
      throw e;
    }
  };
  upload('start_image', 'image');
  upload('end_image', 'endImage');
  upload('validation_video', 'video');
  upload('validation_video_mask', 'mask');
  if (files.video) fields.strength = num(datas, 'denoise_strength', false);

  const seed = get('seed_textbox');
  if (typeof seed !== 'number' && typeof seed !== 'string') throw new RequestError(400, 'seed_textbox', 'seed_textbox must be an integer');
  fields.seed = seed;

  const lora = get('lora_model_path');
  if (lora !== 'none' && lora !== null) {
    if (typeof lora !== 'string') throw new RequestError(400, 'lora_model_path', 'lora_model_path must be a string');
    const weight = num(datas, 'lora_alpha_slider', false);
    fields.lora = [{ path: lora, weight }]; // resolved inside --models-dir with the job's other paths
  }
  return { fields, files };
}

/** Our field names in messages → Fun's, so a Fun client sees the field it sent. */
const API_TO_FUN: Record<string, string> = {
  prompt: 'prompt_textbox',
  negativePrompt: 'negative_prompt_textbox',
  sampler: 'sampler_dropdown',
  steps: 'sample_step_slider',
  guidance: 'cfg_scale_slider',
  width: 'width_slider',
  height: 'height_slider',
  frames: 'length_slider',
  segment: 'partial_video_length',
  overlap: 'overlap_video_length',
  resizeToReference: 'base_resolution',
  image: 'start_image',
  endImage: 'end_image',
  video: 'validation_video',
  mask: 'validation_video_mask',
  strength: 'denoise_strength',
  seed: 'seed_textbox',
  lora: 'lora_model_path',
  model: 'diffusion_transformer_path',
};

function funError(reply: FastifyReply, e: unknown): FastifyReply {
  const status = e instanceof RequestError ? e.status : 500;
  let message = oneLine(e);
  let field = e instanceof RequestError ? e.field : undefined;
  if (field && API_TO_FUN[field]) {
    message = message.replace(new RegExp(`\\b${field}\\b`, 'g'), API_TO_FUN[field]!);
    field = API_TO_FUN[field];
  }
  return reply.code(status).send({ message: `Error. error information is ${message}`, save_sample_path: '', field });
}

export function registerFunRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.register(async (scope) => {
    // Fun's client sends JSON without a content type; these routes read any body as JSON text
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: Math.ceil((ctx.uploadLimit * 4 * 4) / 3) + (1 << 20) }, (_req, body, done) => done(null, body));

    scope.post('/cogvideox_fun/update_diffusion_transformer', async (req, reply) => {
      try {
        const datas = parseBody(req.body);
        const p = datas.diffusion_transformer_path ?? 'none';
        if (p === 'none') return { message: 'Success' };
        if (typeof p !== 'string') throw new RequestError(400, 'diffusion_transformer_path', 'diffusion_transformer_path must be a string');
        const dir = resolveInside(ctx.modelsDir, p, 'diffusion_transformer_path');
        try {
          inspectModelFolder(dir);
        } catch (e) {
          throw new RequestError(400, 'diffusion_transformer_path', `diffusion_transformer_path: ${oneLine(e).split(dir).join(p)}`);
        }
        ctx.setCurrentModel(dir);
        return { message: 'Success' };
      } catch (e) {
        return funError(reply, e);
      }
    });

    scope.post('/cogvideox_fun/infer_forward', async (req, reply) => {
      let id: string | undefined;
      try {
        const datas = parseBody(req.body);
        id = newJobId();
        await submitCollected(ctx, id, (workDir) => funToJob(datas, workDir, ctx.uploadLimit));
        // Fun's API answers when the video is made; a client that hangs up cancels its job
        const jobId = id;
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) ctx.queue.cancel(jobId).catch(() => {});
        });
        const info = await ctx.queue.settled(id);
        if (info.state === 'done' && info.result) {
          const bytes = fs.readFileSync(info.result.path);
          return { message: 'Success', save_sample_path: info.result.path, base64_encoding: bytes.toString('base64') };
        }
        if (info.state === 'cancelled') throw new RequestError(409, undefined, `job ${id} was cancelled`);
        throw new RequestError(500, undefined, info.error ?? 'the generation failed');
      } catch (e) {
        return funError(reply, e);
      }
    });
  });
}
