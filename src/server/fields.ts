// The fields of POST /v1/jobs: every generation option of `cogvideox-fun generate`, named as its long option in
// camelCase, plus `format`. One table drives the JSON schema (OpenAPI, request validation), the multipart coercion
// and the translation back to the CLI's own flags, so the server accepts exactly what the CLI accepts.
import { DEMO_DEFAULTS } from '../cli/demo.js';
import { SCHEDULER_NAMES } from '../schedulers/index.js';
import { RequestError } from './types.js';

export type FieldType = 'string' | 'integer' | 'number' | 'boolean' | 'file' | 'lora' | 'seed' | 'reference';

export interface FieldSpec {
  type: FieldType;
  /** the CLI flag it becomes (without --) */
  flag?: string;
  description: string;
  enum?: readonly string[];
}

export const JOB_FIELDS: Record<string, FieldSpec> = {
  model: { type: 'string', flag: 'model', description: 'Model folder, relative to the server\'s --models-dir (default: the server\'s model)' },
  prompt: { type: 'string', flag: 'prompt', description: 'What the video shows' },
  negativePrompt: { type: 'string', flag: 'negative-prompt', description: 'What to avoid (default: the predict scripts\' negative prompt)' },
  image: { type: 'file', flag: 'image', description: 'Start image (image to video): PNG, JPEG, WebP or GIF; base64 in JSON, a file part in multipart' },
  endImage: { type: 'file', flag: 'end-image', description: 'End image (needs image)' },
  video: { type: 'file', flag: 'video', description: 'Source video (video to video): MP4 or GIF' },
  mask: { type: 'file', flag: 'mask', description: 'Inpainting mask for video (white = regenerate)' },
  strength: { type: 'number', flag: 'strength', description: 'Denoise strength in (0, 1] (video to video; default 0.7)' },
  frames: { type: 'integer', flag: 'frames', description: '1 (an image) or 4k+1' },
  height: { type: 'integer', flag: 'height', description: 'Multiple of 16' },
  width: { type: 'integer', flag: 'width', description: 'Multiple of 16' },
  resizeToReference: { type: 'reference', flag: 'resize-to-reference', description: 'Size from the start image / video: true (base 512) or a base of 512, 768, 960, 1024' },
  steps: { type: 'integer', flag: 'steps', description: `Sampling steps, 1–1000 (default 50; the demo model ${DEMO_DEFAULTS.steps}: GET /v1/models current.sampling)` },
  guidance: { type: 'number', flag: 'guidance', description: `Classifier-free guidance scale, ≤ 1: off (default 6; the demo model with a start image and no video ${DEMO_DEFAULTS.guidanceWithImage}: GET /v1/models current.sampling)` },
  sampler: { type: 'string', flag: 'sampler', description: 'Sampler', enum: SCHEDULER_NAMES },
  seed: { type: 'seed', flag: 'seed', description: 'Integer in [0, 2^64) as a number or string; -1 or "" picks one at random (default 43)' },
  fps: { type: 'number', flag: 'fps', description: 'Frames per second of the MP4 / GIF (default 8)' },
  lora: { type: 'lora', flag: 'lora', description: 'LoRA files relative to --models-dir: "FILE[:weight]" or {path, weight} (weight default 0.55); one or a list' },
  longVideo: { type: 'boolean', flag: 'long-video', description: 'Long video: segments chained by their last frames' },
  segment: { type: 'integer', flag: 'segment', description: 'Long video: frames per segment (4k+1, 5–85; default 25)' },
  overlap: { type: 'integer', flag: 'overlap', description: 'Long video: frames shared by consecutive segments (1–4; default 4)' },
  tiling: { type: 'boolean', flag: 'tiling', description: 'VAE tiling (less memory for large sizes)' },
  residency: { type: 'string', flag: 'residency', description: 'Transformer weight residency', enum: ['auto', 'resident', 'host', 'disk'] },
  format: { type: 'string', description: 'Result format (default mp4; png for one frame)', enum: ['mp4', 'gif', 'png'] },
};

export const FILE_FIELDS = ['image', 'endImage', 'video', 'mask'] as const;
export type FileField = (typeof FILE_FIELDS)[number];

/** JSON schema of the JSON body (unknown fields are an error). */
export function jobBodySchema(): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(JOB_FIELDS)) {
    const d = { description: f.description };
    switch (f.type) {
      case 'file':
        properties[name] = { type: 'string', contentEncoding: 'base64', ...d };
        break;
      case 'lora': {
        const one = { anyOf: [{ type: 'string' }, { type: 'object', properties: { path: { type: 'string' }, weight: { type: 'number' } }, required: ['path'], additionalProperties: false }] };
        properties[name] = { anyOf: [one, { type: 'array', items: one }], ...d };
        break;
      }
      case 'seed':
        properties[name] = { anyOf: [{ type: 'integer' }, { type: 'string' }], ...d };
        break;
      case 'reference':
        properties[name] = { anyOf: [{ type: 'boolean' }, { type: 'integer', enum: [512, 768, 960, 1024] }], ...d };
        break;
      default:
        // samplers are matched leniently (any case, '-', '_' or spaces), as the CLI: listed, not enforced here
        properties[name] = { type: f.type, ...d, ...(f.enum ? (name === 'sampler' ? { examples: [...f.enum] } : { enum: [...f.enum] }) : {}) };
    }
  }
  return { type: 'object', properties, additionalProperties: false };
}

/** camelCase → the CLI's flag name, for messages (`negativePrompt` → `negative-prompt`). */
const FLAG_TO_FIELD = new Map([...Object.entries(JOB_FIELDS).flatMap(([name, f]) => (f.flag ? [[f.flag, name] as const] : [])), ['out', 'format'] as const]);

/** Rewrites the CLI's "--end-image …" into the API's "endImage …"; returns the first field named. */
export function cliMessageToApi(message: string): { message: string; field?: string } {
  let field: string | undefined;
  const out = message.replace(/--([a-z][a-z-]*)/g, (m, flag: string) => {
    const name = FLAG_TO_FIELD.get(flag);
    if (!name) return m;
    field ??= name;
    return name;
  });
  return { message: out, field };
}

/** A value of the JSON body or a multipart text part, checked against its field's type. */
export type FieldValue = string | number | boolean | { path: string; weight?: number }[];

function bad(field: string, expected: string, got: unknown): never {
  throw new RequestError(400, field, `${field} must be ${expected}, got ${JSON.stringify(got)}`);
}

/** Checks / coerces one non-file field (multipart values arrive as strings). */
export function coerceField(name: string, value: unknown, fromText: boolean): FieldValue {
  const f = JOB_FIELDS[name];
  if (!f) throw new RequestError(400, name, `unknown field "${name}" (fields: ${Object.keys(JOB_FIELDS).join(', ')})`);
  switch (f.type) {
    case 'string':
      if (typeof value !== 'string') bad(name, 'a string', value);
      if (f.enum && name !== 'sampler' && !f.enum.includes(value)) bad(name, `one of ${f.enum.join(', ')}`, value);
      return value;
    case 'integer':
    case 'number': {
      const n = fromText && typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n) || (f.type === 'integer' && !Number.isInteger(n))) bad(name, f.type === 'integer' ? 'an integer' : 'a number', value);
      return n;
    }
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      if (fromText && typeof value === 'string' && ['true', 'false', 'on', '1', '0', ''].includes(value)) return value === 'true' || value === 'on' || value === '1';
      return bad(name, 'true or false', value);
    }
    case 'reference': {
      if (typeof value === 'boolean') return value;
      if (fromText && (value === 'true' || value === 'false' || value === 'on')) return value !== 'false';
      const n = typeof value === 'string' && fromText ? Number(value) : value;
      if (typeof n !== 'number' || ![512, 768, 960, 1024].includes(n)) bad(name, 'true, false or a base of 512, 768, 960, 1024', value);
      return n;
    }
    case 'seed':
      if (typeof value === 'number' && Number.isInteger(value)) return value;
      if (typeof value === 'string') return value;
      return bad(name, 'an integer (or -1 for a random seed)', value);
    case 'lora': {
      const list = Array.isArray(value) ? value : [value];
      return list.map((v) => {
        if (typeof v === 'string' && v !== '') return { path: v };
        if (typeof v === 'object' && v !== null && typeof (v as { path?: unknown }).path === 'string') {
          const { path, weight, ...rest } = v as { path: string; weight?: unknown };
          if (Object.keys(rest).length) bad(name, 'entries {path, weight}', v);
          if (weight !== undefined && (typeof weight !== 'number' || !Number.isFinite(weight))) bad(`${name}.weight`, 'a number', weight);
          return { path, weight: weight as number | undefined };
        }
        return bad(name, '"FILE[:weight]" or {path, weight}', v);
      });
    }
    case 'file':
      throw new RequestError(400, name, `${name} must be a file upload or base64 data`);
  }
}
