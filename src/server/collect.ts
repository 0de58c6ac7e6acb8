// Reads a job submission — a JSON body (uploads as base64) or multipart/form-data (uploads as file parts) — into
// checked field values and upload files staged in the job's work folder, with the upload size limit enforced while
// reading (an over-size upload is a 413 naming its field, and nothing of it stays on disk).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyRequest } from 'fastify';
import type {} from '@fastify/multipart'; // req.parts()
import { sniffImageFormat } from '../media/image.js';
import { coerceField, FILE_FIELDS, JOB_FIELDS, type FieldValue, type FileField } from './fields.js';
import type { CollectedJob } from './request.js';
import { RequestError } from './types.js';

const isFileField = (name: string): name is FileField => (FILE_FIELDS as readonly string[]).includes(name);

function extensionFor(bytes: Uint8Array, field: FileField): string {
  const fmt = sniffImageFormat(bytes);
  if (fmt) return fmt === 'jpeg' ? 'jpg' : fmt;
  return field === 'video' ? 'mp4' : 'bin';
}

function tooBig(field: string, limit: number): RequestError {
  return new RequestError(413, field, `${field}: the upload is larger than the server's limit of ${(limit / 2 ** 20).toFixed(0)} MB (--max-upload-mb)`);
}

/** base64 (optionally a data: URL) → bytes, or a 400 naming the field. */
export function decodeBase64(field: string, value: unknown, limit: number): Buffer {
  if (typeof value !== 'string') throw new RequestError(400, field, `${field} must be base64 data (a string), got ${typeof value}`);
  const b64 = value.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  if (b64 === '' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64)) throw new RequestError(400, field, `${field} is not valid base64 data`);
  if (Math.floor((b64.length * 3) / 4) > limit + 3) throw tooBig(field, limit);
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length > limit) throw tooBig(field, limit);
  return bytes;
}

/** Writes an upload into <workDir>/inputs/<field>.<ext>. */
export function stageUpload(workDir: string, field: FileField, bytes: Uint8Array): string {
  const dir = path.join(workDir, 'inputs');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${field}.${extensionFor(bytes, field)}`);
  fs.writeFileSync(file, bytes);
  return file;
}

export function collectJson(body: unknown, workDir: string, limit: number): CollectedJob {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError(400, undefined, 'the body must be a JSON object of job fields');
  const fields: Record<string, FieldValue> = {};
  const files: CollectedJob['files'] = {};
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    if (!JOB_FIELDS[name]) throw new RequestError(400, name, `unknown field "${name}" (fields: ${Object.keys(JOB_FIELDS).join(', ')})`);
    if (value === null || value === undefined) continue;
    if (isFileField(name)) files[name] = stageUpload(workDir, name, decodeBase64(name, value, limit));
    else fields[name] = coerceField(name, value, false);
  }
  return { fields, files };
}

export async function collectMultipart(req: FastifyRequest, workDir: string, limit: number): Promise<CollectedJob> {
  const fields: Record<string, FieldValue> = {};
  const files: CollectedJob['files'] = {};
  const loras: { path: string; weight?: number }[] = [];
  for await (const part of req.parts({ limits: { fileSize: limit, fieldSize: 1 << 20, files: 4, fields: 64 } })) {
    const name = part.fieldname;
    if (!JOB_FIELDS[name]) {
      if (part.type === 'file') part.file.resume();
      throw new RequestError(400, name, `unknown field "${name}" (fields: ${Object.keys(JOB_FIELDS).join(', ')})`);
    }
    if (part.type === 'file') {
      if (!isFileField(name)) {
        part.file.resume();
        throw new RequestError(400, name, `${name} is not a file field`);
      }
      const dir = path.join(workDir, 'inputs');
      fs.mkdirSync(dir, { recursive: true });
      const tmp = path.join(dir, `${name}.upload`);
      await pipeline(part.file, fs.createWriteStream(tmp));
      if (part.file.truncated) throw tooBig(name, limit);
      const head = Buffer.alloc(16);
      const fd = fs.openSync(tmp, 'r');
      const n = fs.readSync(fd, head, 0, 16, 0);
      fs.closeSync(fd);
      if (n === 0) {
        fs.rmSync(tmp);
        continue; // an empty file input: not given
      }
      const file = path.join(dir, `${name}.${extensionFor(head, name)}`);
      fs.renameSync(tmp, file);
      files[name] = file;
    } else {
      const value = part.value;
      if (typeof value !== 'string') throw new RequestError(400, name, `${name} must be a text field`);
      if (isFileField(name)) {
        if (value !== '') files[name] = stageUpload(workDir, name, decodeBase64(name, value, limit));
        continue;
      }
      if (value === '' && JOB_FIELDS[name]!.type !== 'string') continue; // an empty form control: not given
      if (name === 'lora') loras.push(...(coerceField(name, value, true) as { path: string }[]));
      else fields[name] = coerceField(name, value, true);
    }
  }
  if (loras.length) fields.lora = loras;
  return { fields, files };
}
