// The OpenAPI 3.1 document served at /openapi.json. The job body schema is the same object the server validates
// requests with (fields.ts), so the document cannot drift from what is accepted.
import { jobBodySchema } from './fields.js';

const error = { type: 'object', properties: { error: { type: 'string' }, field: { type: 'string', description: 'the request field the error is about' } }, required: ['error'] };
const errors = {
  '400': { description: 'Bad input (the field is named)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
  '401': { description: 'Missing or wrong token (server started with --token)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
};
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const json = (ref: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } });

const jobInfo = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    seq: { type: 'integer', description: 'submission number on this server: the queue order' },
    state: { type: 'string', enum: ['queued', 'running', 'done', 'failed', 'cancelled'] },
    position: { type: 'integer', description: 'queued: 1-based place in the queue' },
    stage: { type: 'string', description: 'running: inputs, backend, load, text, conditioning, denoise, decode, write' },
    step: { type: 'integer' },
    steps: { type: 'integer' },
    secondsPerStep: { type: 'number' },
    etaSeconds: { type: 'number', description: 'remaining denoising time' },
    error: { type: 'string' },
    submittedAt: { type: 'string', format: 'date-time' },
    startedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string', format: 'date-time' },
    settings: { type: 'object', description: 'every setting the job runs with, defaults filled in, and its seed' },
    result: { type: 'object', properties: { url: { type: 'string' }, width: { type: 'integer' }, height: { type: 'integer' }, frames: { type: 'integer' }, format: { type: 'string' }, path: { type: 'string' } } },
    warnings: { type: 'array', items: { type: 'string' } },
  },
  required: ['id', 'state', 'submittedAt', 'settings'],
};

const strings = { type: 'array', items: { type: 'string' } };
/** demo.json of the bundled demo model (src/cli/demo.ts DemoInfo; scripts/demo/bundle.ts writes it). */
const demoInfo = {
  type: 'object',
  description: 'What the bundled demo model knows (its demo.json), as `cogvideox-fun generate --help` lists it',
  properties: {
    format: { type: 'integer' },
    trained: { type: 'boolean', description: 'false: random weights, the output is noise-like' },
    prompt_template: { type: 'string', description: 'e.g. "a {color} {shape} moving {direction} on a {background} background"' },
    example_prompt: { type: 'string', description: 'a prompt it follows (the default prompt of a trained demo model)' },
    colors: strings,
    shapes: strings,
    directions: strings,
    backgrounds: strings,
    held_out: {
      type: 'array',
      description: 'combinations kept out of training (the model composes them from what it learned)',
      items: { type: 'object', properties: { color: { type: 'string' }, shape: { type: 'string' }, direction: { type: 'string' }, background: { type: 'string' }, prompt: { type: 'string' } } },
    },
    output: {
      type: 'object',
      description: 'the grid it was trained at (its default frames, height, width)',
      properties: { frames: { type: 'integer' }, height: { type: 'integer' }, width: { type: 'integer' }, latent: { type: 'array', items: { type: 'integer' } }, video_tokens: { type: 'integer' }, text_tokens: { type: 'integer' } },
    },
    weights: { type: 'object', description: 'storage dtype per component', additionalProperties: { type: 'string' } },
    training: { type: ['object', 'null'], description: 'training summary, free-form' },
  },
  required: ['trained', 'example_prompt', 'colors', 'shapes', 'directions', 'backgrounds', 'held_out', 'output'],
};
const modelEntry = {
  path: { type: 'string', description: 'relative to --models-dir ("demo" for the bundled demo model)' },
  variant: { type: 'string' },
  kind: { type: 'string' },
  maxFrames: { type: 'integer' },
  defaultWidth: { type: 'integer' },
  defaultHeight: { type: 'integer' },
};
const models = {
  type: 'object',
  properties: {
    current: {
      type: 'object',
      description: 'the model jobs use when they name none',
      properties: {
        ...modelEntry,
        demo: { type: 'boolean', description: 'the bundled demo model (the server runs without --model)' },
        demoInfo: { oneOf: [{ $ref: '#/components/schemas/DemoInfo' }, { type: 'null' }], description: 'the demo model\'s demo.json; null with --model or when the demo folder has none (random weights)' },
        sampling: {
          type: 'object',
          description: 'what a job gets when it names no steps or guidance',
          properties: {
            steps: { type: 'integer' },
            guidance: { type: 'number', description: 'text to video, and with a source video' },
            guidanceWithImage: { type: 'number', description: 'with a start image (and end image) and no source video' },
          },
          required: ['steps', 'guidance', 'guidanceWithImage'],
        },
      },
      required: ['path', 'demo', 'demoInfo', 'sampling'],
    },
    models: { type: 'array', items: { type: 'object', properties: modelEntry } },
    loras: strings,
    samplers: strings,
    backend: { type: 'string' },
  },
};

export function openApiDocument(): Record<string, unknown> {
  const body = jobBodySchema();
  const multipartBody = {
    ...body,
    description: 'The same fields as form fields; image, endImage, video and mask as file parts; lora repeated for several',
    properties: Object.fromEntries(
      Object.entries(body.properties as Record<string, Record<string, unknown>>).map(([k, v]) => [k, v.contentEncoding ? { type: 'string', format: 'binary', description: v.description } : v]),
    ),
  };
  return {
    openapi: '3.1.0',
    info: { title: 'cogvideox-fun serve', version: '1', description: 'Video generation jobs (CogVideoX-Fun on TensorFlow.js): queue, progress, cancel, results; plus CogVideoX-Fun\'s own API routes.' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Only when the server runs with --token; EventSource / <video> may pass ?token= instead' } },
      schemas: { Error: error, Job: jobInfo, JobRequest: body, Models: models, DemoInfo: demoInfo },
    },
    security: [{ bearer: [] }, {}],
    paths: {
      '/v1/jobs': {
        post: {
          summary: 'Submit a generation job (the CLI generate options in camelCase); it waits in a FIFO queue',
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/JobRequest' } }, 'multipart/form-data': { schema: multipartBody } } },
          responses: {
            '202': { description: 'Queued', content: { 'application/json': { schema: { type: 'object', properties: { id: { type: 'string' }, seq: { type: 'integer' }, state: { type: 'string' }, position: { type: 'integer' } } } } } },
            ...errors,
            '413': { description: 'An upload over the size limit (the field is named)', content: json('Error') },
          },
        },
        get: { summary: 'History of this server\'s jobs, newest first', responses: { '200': { description: 'Jobs', content: { 'application/json': { schema: { type: 'object', properties: { jobs: { type: 'array', items: { $ref: '#/components/schemas/Job' } } } } } } } } },
      },
      '/v1/jobs/{id}': {
        get: { summary: 'A job\'s state, progress and result', parameters: [idParam], responses: { '200': { description: 'The job', content: json('Job') }, '404': { description: 'No such job', content: json('Error') } } },
        delete: {
          summary: 'Cancel a queued or running job (a running job stops within one step; nothing is written)',
          parameters: [idParam],
          responses: { '200': { description: 'Cancelled', content: json('Job') }, '404': { description: 'No such job', content: json('Error') }, '409': { description: 'Already finished', content: json('Error') } },
        },
      },
      '/v1/jobs/{id}/events': {
        get: {
          summary: 'Server-Sent Events: state (snapshot first), queued, started, stage, step, segment, warning, then one of done / failed / cancelled',
          parameters: [idParam],
          responses: { '200': { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } } },
        },
      },
      '/v1/jobs/{id}/result': {
        get: {
          summary: 'The finished video (MP4 / GIF) or image (PNG); Range requests supported',
          parameters: [idParam],
          responses: { '200': { description: 'The file', content: { 'video/mp4': {}, 'image/gif': {}, 'image/png': {} } }, '409': { description: 'Not done', content: json('Error') } },
        },
      },
      '/v1/jobs/{id}/inputs/{name}': {
        get: { summary: 'An uploaded input of the job (image, endImage, video, mask)', parameters: [idParam, { name: 'name', in: 'path', required: true, schema: { type: 'string', enum: ['image', 'endImage', 'video', 'mask'] } }], responses: { '200': { description: 'The file' } } },
      },
      '/v1/models': {
        get: {
          summary: 'The current model (with the demo model: what it knows), the model folders and LoRA files in --models-dir, the samplers',
          responses: { '200': { description: 'Lists', content: json('Models') } },
        },
      },
      '/v1/health': { get: { summary: 'Liveness, backend, workers', responses: { '200': { description: 'OK' } } } },
      '/cogvideox_fun/infer_forward': {
        post: {
          summary: 'CogVideoX-Fun\'s API (cogvideox/api/api.py): its fields and defaults; answers when the video is made',
          requestBody: { content: { 'application/json': { schema: { type: 'object', description: 'base_model_path, lora_model_path, lora_alpha_slider, prompt_textbox, negative_prompt_textbox, sampler_dropdown, sample_step_slider, resize_method, width_slider, height_slider, base_resolution, is_image, generation_method, length_slider, overlap_video_length, partial_video_length, cfg_scale_slider, start_image, end_image, validation_video, validation_video_mask (base64), denoise_strength, seed_textbox' } } } },
          responses: {
            '200': { description: 'Success', content: { 'application/json': { schema: { type: 'object', properties: { message: { type: 'string' }, save_sample_path: { type: 'string' }, base64_encoding: { type: 'string' } } } } } },
            '400': { description: 'Bad input: {message, save_sample_path: "", field}' },
            '500': { description: 'The generation failed: {message, save_sample_path: ""}' },
          },
        },
      },
      '/cogvideox_fun/update_diffusion_transformer': {
        post: {
          summary: 'Select the model the Fun routes use (diffusion_transformer_path, inside --models-dir)',
          requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { diffusion_transformer_path: { type: 'string' } } } } } },
          responses: { '200': { description: '{message: "Success"}' }, '400': { description: '{message: "Error. …", field}' } },
        },
      },
    },
  };
}
