// Model and LoRA paths named by requests, resolved inside --models-dir only: CogVideoX-Fun's API opens any path on
// the machine it is given (cogvideox/api/api.py passes `diffusion_transformer_path` and `lora_model_path` straight
// to from_pretrained / merge_lora); here anything outside the folder is refused.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspectModelFolder } from '../cli/model_folder.js';
import { RequestError } from './types.js';

export interface ModelEntry {
  /** path relative to the models dir (what requests name) */
  path: string;
  variant: string;
  kind: string;
  maxFrames: number;
  defaultWidth: number;
  defaultHeight: number;
}

/**
 * A request's path → an absolute path inside `modelsDir`. Fun's clients name models as Fun's working directory sees
 * them ("models/Diffusion_Transformer/…"), so a leading "models/" is also tried against the folder itself.
 */
export function resolveInside(modelsDir: string | undefined, requested: string, field: string): string {
  if (!modelsDir) throw new RequestError(400, field, `${field}: this server was started without --models-dir, so requests cannot name models or LoRAs`);
  if (requested.includes('\0')) throw new RequestError(400, field, `${field}: invalid path`);
  const root = path.resolve(modelsDir);
  const candidates = [requested];
  if (/^\.?\/?models[\\/]/.test(requested)) candidates.push(requested.replace(/^\.?\/?models[\\/]/, ''));
  let inside: string | undefined;
  for (const c of candidates) {
    const abs = path.resolve(root, c);
    const rel = path.relative(root, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel)) continue;
    inside ??= abs;
    if (fs.existsSync(abs)) return abs;
  }
  if (!inside) throw new RequestError(400, field, `${field}: "${requested}" is outside the models folder; name a path inside --models-dir`);
  throw new RequestError(400, field, `${field}: "${requested}" not found in the models folder`);
}

/** The relative name of an absolute path inside the models dir (for records and messages). */
export function relativeName(modelsDir: string | undefined, abs: string): string {
  if (!modelsDir) return path.basename(abs);
  const rel = path.relative(path.resolve(modelsDir), abs);
  return rel.startsWith('..') ? path.basename(abs) : rel;
}

function isModelFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'transformer', 'config.json'));
}

/** Model folders (up to two levels deep, e.g. Fun's Diffusion_Transformer/<name>) and LoRA files in the models dir. */
export function listModels(modelsDir: string | undefined): { models: ModelEntry[]; loras: string[] } {
  const models: ModelEntry[] = [];
  const loras: string[] = [];
  if (!modelsDir || !fs.existsSync(modelsDir)) return { models, loras };
  const root = path.resolve(modelsDir);
  const walk = (dir: string, depth: number) => {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const d of names.sort((a, b) => a.name.localeCompare(b.name))) {
      if (d.name.startsWith('.')) continue;
      const abs = path.join(dir, d.name);
      const isDir = d.isDirectory() || (d.isSymbolicLink() && fs.statSync(abs, { throwIfNoEntry: false })?.isDirectory());
      if (isDir) {
        if (isModelFolder(abs)) {
          try {
            const f = inspectModelFolder(abs);
            models.push({ path: path.relative(root, abs), variant: f.variant, kind: f.kind, maxFrames: f.maxFrames, defaultWidth: f.sampleWidth, defaultHeight: f.sampleHeight });
          } catch {
            // an incomplete folder is not offered
          }
        } else if (depth < 3) {
          walk(abs, depth + 1);
        }
      } else if (d.name.endsWith('.safetensors')) {
        loras.push(path.relative(root, abs));
      }
    }
  };
  walk(root, 1);
  return { models, loras };
}
