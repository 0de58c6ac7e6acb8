// Checkpoint folders: one safetensors file, a sharded set (`*.safetensors.index.json`), or every `*.safetensors`
// in a component folder (diffusers layout: <model>/<component>/config.json + weights).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ITEM_SIZE, numel, saveSafetensors, SafetensorsError, SafetensorsFile, type TensorEntry, type TensorToWrite } from './safetensors.js';
import type { HostTensor } from './host_tensor.js';

export class WeightStore {
  private readonly byName = new Map<string, SafetensorsFile>();

  private constructor(readonly location: string, readonly files: SafetensorsFile[]) {
    for (const f of files) {
      for (const name of f.entries.keys()) {
        const other = this.byName.get(name);
        if (other) throw new SafetensorsError('overlap', f.path, `tensor also stored in ${other.path}`, name);
        this.byName.set(name, f);
      }
    }
  }

  /**
   * Opens a weights location: a `.safetensors` file, a `.safetensors.index.json`, or a folder (its index if it has
   * one, else its `*.safetensors` files). Headers are read now; tensor data only when asked for.
   */
  static open(location: string): WeightStore {
    if (!fs.existsSync(location)) throw new Error(`${location}: no such file or folder`);
    if (fs.statSync(location).isDirectory()) {
      const names = fs.readdirSync(location).sort();
      const indexes = names.filter((n) => n.endsWith('.safetensors.index.json'));
      if (indexes.length > 1) throw new Error(`${location}: several shard indexes (${indexes.join(', ')}); pass one explicitly`);
      if (indexes.length === 1) return WeightStore.open(path.join(location, indexes[0]!));
      const shards = names.filter((n) => n.endsWith('.safetensors'));
      if (shards.length === 0) {
        const bins = names.filter((n) => n.endsWith('.bin') || n.endsWith('.pt') || n.endsWith('.pth'));
        throw new Error(
          `${location}: no .safetensors weights found` +
            (bins.length ? ` (found ${bins.join(', ')}: PyTorch pickles are not supported; convert them to safetensors)` : ''),
        );
      }
      return WeightStore.fromFiles(location, shards.map((n) => path.join(location, n)));
    }
    if (location.endsWith('.index.json')) {
      const index = readJson(location) as { weight_map?: Record<string, string> };
      if (!index.weight_map || typeof index.weight_map !== 'object') {
        throw new Error(`${location}: shard index has no "weight_map"`);
      }
      const dir = path.dirname(location);
      const shardNames = [...new Set(Object.values(index.weight_map))].sort();
      const store = WeightStore.fromFiles(location, shardNames.map((n) => path.join(dir, n)));
      for (const [name, shard] of Object.entries(index.weight_map)) {
        const f = store.byName.get(name);
        if (!f) throw new SafetensorsError('missing', path.join(dir, shard), `listed in ${path.basename(location)} but not stored in its shard`, name);
        if (path.basename(f.path) !== shard) {
          throw new SafetensorsError('missing', path.join(dir, shard), `index says this shard holds it, but it is in ${path.basename(f.path)}`, name);
        }
      }
      return store;
    }
    return WeightStore.fromFiles(location, [location]);
  }

  private static fromFiles(location: string, paths: string[]): WeightStore {
    const files: SafetensorsFile[] = [];
    try {
      for (const p of paths) {
        if (!fs.existsSync(p)) throw new Error(`${p}: shard listed by ${location} is missing`);
        files.push(SafetensorsFile.open(p));
      }
      return new WeightStore(location, files);
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  keys(): string[] {
    return [...this.byName.keys()];
  }

  entry(name: string): TensorEntry & { file: string } {
    const f = this.byName.get(name);
    if (!f) throw new SafetensorsError('missing', this.location, 'tensor not found in checkpoint', name);
    return { ...f.entry(name), file: f.path };
  }

  /** Reads one tensor into host memory (see SafetensorsFile.read). */
  read(name: string): HostTensor {
    const f = this.byName.get(name);
    if (!f) throw new SafetensorsError('missing', this.location, 'tensor not found in checkpoint', name);
    return f.read(name);
  }

  /** Checks names and shapes against what the config implies; one error lists every problem found. */
  expect(shapes: ReadonlyMap<string, readonly number[]>): void {
    const missing: string[] = [];
    for (const [name, shape] of shapes) {
      const f = this.byName.get(name);
      if (!f) {
        missing.push(name);
        continue;
      }
      const got = f.entry(name).shape;
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        throw new SafetensorsError('shape', f.path, `shape [${got.join(', ')}] but the config implies [${shape.join(', ')}]`, name);
      }
    }
    if (missing.length) {
      const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, … (${missing.length} in all)` : '');
      throw new SafetensorsError('missing', this.location, `missing tensors: ${shown}`, missing[0]);
    }
  }

  /** Total bytes of the stored tensors (as stored, e.g. bf16). */
  get storedBytes(): number {
    let n = 0;
    for (const f of this.files) for (const e of f.entries.values()) n += e.end - e.begin;
    return n;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

/**
 * Writes `tensors` as save_pretrained(max_shard_size=…) does (huggingface_hub split_state_dict_into_shards): in
 * order, a new shard when the next tensor would pass `maxShardBytes` of tensor data (a larger tensor gets a shard of
 * its own); one shard is `dir/FILE`, several are FILE-0000k-of-0000n.safetensors beside FILE.index.json
 * ({metadata: {total_size}, weight_map}), the layout WeightStore.open reads. Returns the file names written.
 */
export function saveShardedSafetensors(
  dir: string,
  file: string,
  tensors: readonly [string, TensorToWrite][],
  maxShardBytes: number,
  metadata?: Record<string, string>,
): string[] {
  const bytes = (t: TensorToWrite) => numel(t.shape) * ITEM_SIZE[t.dtype];
  const shards: [string, TensorToWrite][][] = [[]];
  let size = 0;
  for (const e of tensors) {
    if (size + bytes(e[1]) > maxShardBytes && shards.at(-1)!.length) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(e);
    size += bytes(e[1]);
  }
  if (shards.length === 1) {
    saveSafetensors(path.join(dir, file), Object.fromEntries(tensors), metadata);
    return [file];
  }
  const stem = file.replace(/\.safetensors$/, '');
  const pad = (i: number) => String(i).padStart(5, '0');
  const names = shards.map((_, i) => `${stem}-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    saveSafetensors(path.join(dir, names[i]!), Object.fromEntries(shard), metadata);
    for (const [name] of shard) weightMap[name] = names[i]!;
  });
  const total = tensors.reduce((a, [, t]) => a + bytes(t), 0);
  fs.writeFileSync(path.join(dir, `${file}.index.json`), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  return [...names, `${file}.index.json`];
}

export function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new Error(`${file}: cannot read file`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** Reads `<dir>/config.json` (diffusers/transformers component config). */
export function readConfig<T>(dir: string): T {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new Error(`${dir}: no config.json (expected a diffusers/transformers component folder)`);
  return readJson(file) as T;
}
