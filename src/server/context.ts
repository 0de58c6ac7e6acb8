// What the routes share with the server that registers them (its own file, so the route modules and server.ts do
// not import each other).
import type { DemoInfo, SamplingDefaults } from '../cli/demo.js';
import type { ModelEntry } from './models.js';
import type { WorkerPool } from './pool.js';
import type { UploadProbe } from './probe.js';
import type { JobQueue } from './queue.js';

export interface ServerContext {
  outputDir: string;
  modelsDir?: string;
  uploadLimit: number;
  /** the generation threads (with --redis: none; backend and backendName describe the remote workers) */
  pool: WorkerPool;
  queue: JobQueue;
  probe: UploadProbe;
  /** the model jobs use when they name none (absolute), undefined for the demo model */
  currentModel(): string | undefined;
  setCurrentModel(dir: string): void;
  currentModelInfo(): CurrentModelInfo;
}

/** GET /v1/models → current: the model jobs use when they name none. */
export interface CurrentModelInfo extends ModelEntry {
  /** the bundled demo model (no --model) */
  demo: boolean;
  /** the demo model's demo.json (trained or not, what it knows, example prompt, grid) — what `generate --help` lists;
   * null with --model, or for a demo folder without demo.json (the random-weights stand-in) */
  demoInfo: DemoInfo | null;
  /** what a submission gets when it names no steps or guidance (the page starts its sliders there) */
  sampling: SamplingDefaults;
}
