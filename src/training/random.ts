// Every random draw training makes goes through one `TrainingRandom`, named after the call the original makes
// (CogVideoX-Fun scripts/train.py and cogvideox/data/dataset_image_video.py use NumPy's global RNG, torch's global and
// per-process generators and Python's `random`). `SeededRandom` is our own deterministic stream (Philox, so a run
// resumes exactly from a saved position); `InjectedRandom` replays the reference's logged draws so a test follows the
// original draw for draw. Seeds are not compatible with NumPy / torch / Python streams.
import { PhiloxGenerator, philox4x32 } from '../schedulers/generator.js';

/** Draw kinds, as the original calls them. */
export type DrawSource =
  | 'np.choice' // np.random.choice(a, p=p) → the index into a
  | 'np.randint' // np.random.randint(lo, hi): [lo, hi)
  | 'np.rand' // np.random.rand(): [0, 1)
  | 'torch.randint' // torch.randint(lo, hi, size): [lo, hi), int values
  | 'torch.normal' // torch.normal(mean, std, size): float32 values
  | 'py.randint' // random.randint(a, b): [a, b]
  | 'py.sample' // random.sample(range(n), k): k distinct values in draw order
  | 'py.random' // random.random(): [0, 1)
  | 'randn'; // a standard-normal float32 tensor (noise, VAE posterior sample, reference noise)

export interface TrainingRandom {
  npChoice(p: readonly number[]): number;
  npRandint(lo: number, hi: number): number;
  npRand(): number;
  torchRandint(lo: number, hi: number, count: number): Int32Array;
  torchNormal(mean: number, std: number, count: number): Float32Array;
  pyRandint(a: number, b: number): number;
  pySample(n: number, k: number): number[];
  pyRandom(): number;
  randn(shape: readonly number[]): Float32Array;
}

function checkRange(what: string, lo: number, hi: number): void {
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi <= lo) {
    // numpy / torch raise "low >= high" here (e.g. a mask rectangle on an image under 4 pixels wide)
    throw new Error(`${what}: empty range [${lo}, ${hi})`);
  }
}

/** Seeded stream: uniforms from Philox4x32-10 (53-bit), normals from Box–Muller (the pipelines' generator). */
export class SeededRandom implements TrainingRandom {
  private readonly normals: PhiloxGenerator;
  private readonly uniforms: PhiloxGenerator;
  private uniformIndex = 0;

  constructor(readonly seed: number, position: { normals?: number; uniforms?: number } = {}) {
    this.normals = new PhiloxGenerator(seed * 2);
    this.uniforms = new PhiloxGenerator(seed * 2 + 1);
    // fast-forward to a saved position (resume)
    this.normals.seek(position.normals ?? 0);
    this.uniformIndex = position.uniforms ?? 0;
  }

  /** Stream position, saved in training checkpoints. */
  get position(): { normals: number; uniforms: number } {
    return { normals: this.normals.offset, uniforms: this.uniformIndex };
  }

  private uniform(): number {
    // one Philox block per uniform, addressed by index: independent of the normal stream
    return uniformAt(this.uniforms.seed, this.uniformIndex++);
  }

  npChoice(p: readonly number[]): number {
    const u = this.uniform();
    let acc = 0;
    for (let i = 0; i < p.length; i++) {
      acc += p[i]!;
      if (u < acc) return i;
    }
    return p.length - 1;
  }
  npRandint(lo: number, hi: number): number {
    checkRange('np.random.randint', lo, hi);
    return lo + Math.floor(this.uniform() * (hi - lo));
  }
  npRand(): number {
    return this.uniform();
  }
  torchRandint(lo: number, hi: number, count: number): Int32Array {
    checkRange('torch.randint', lo, hi);
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) out[i] = lo + Math.floor(this.uniform() * (hi - lo));
    return out;
  }
  torchNormal(mean: number, std: number, count: number): Float32Array {
    return this.normals.randnHost([count]).map((z) => mean + std * z);
  }
  pyRandint(a: number, b: number): number {
    checkRange('random.randint', a, b + 1);
    return a + Math.floor(this.uniform() * (b - a + 1));
  }
  pySample(n: number, k: number): number[] {
    if (k > n || k < 0) throw new Error(`random.sample: sample larger than population (${k} of ${n})`);
    const pool = Array.from({ length: n }, (_, i) => i);
    const out: number[] = [];
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.uniform() * (n - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      out.push(pool[i]!);
    }
    return out;
  }
  pyRandom(): number {
    return this.uniform();
  }
  randn(shape: readonly number[]): Float32Array {
    return this.normals.randnHost(shape);
  }
}

const scratch = new Uint32Array(4);
/** Uniform [0, 1) with 53 bits from Philox block `index` (counter word 2 = 1 keeps it apart from normal blocks). */
function uniformAt(seed: bigint, index: number): number {
  const key = [Number(seed & 0xffffffffn), Number(seed >> 32n)];
  const w = philox4x32([index % 4294967296, Math.floor(index / 4294967296), 1, 0], key, scratch);
  return ((w[0]! >>> 5) * 67108864 + (w[1]! >>> 6)) / 9007199254740992;
}

/** One logged draw, as reference/gen_training.py writes them (`value` holds what the original call returned). */
export interface LoggedDraw {
  src: DrawSource;
  args?: unknown;
  value: unknown;
}

/**
 * Replays logged draws in order; fails naming the draw when the code asks for a different kind or size than the
 * reference made next (so a test catches a draw-order difference, not just a value difference).
 */
export class InjectedRandom implements TrainingRandom {
  private next = 0;
  constructor(private readonly draws: readonly LoggedDraw[]) {}

  get remaining(): number {
    return this.draws.length - this.next;
  }

  private take(src: DrawSource, detail: string): unknown {
    const d = this.draws[this.next];
    if (!d) throw new Error(`InjectedRandom: ${src}(${detail}) requested after all ${this.draws.length} draws`);
    if (d.src !== src) throw new Error(`InjectedRandom: draw #${this.next + 1} is ${d.src}, but ${src}(${detail}) was requested`);
    this.next++;
    return d.value;
  }

  npChoice(p: readonly number[]): number {
    return this.take('np.choice', `p=[${p.join(', ')}]`) as number;
  }
  npRandint(lo: number, hi: number): number {
    return this.take('np.randint', `${lo}, ${hi}`) as number;
  }
  npRand(): number {
    return this.take('np.rand', '') as number;
  }
  torchRandint(lo: number, hi: number, count: number): Int32Array {
    const v = this.take('torch.randint', `${lo}, ${hi}, ${count}`);
    const flat = Int32Array.from((v as unknown[]).flat(Infinity as 1) as number[]);
    if (flat.length !== count) throw new Error(`InjectedRandom: torch.randint gave ${flat.length} values, ${count} requested`);
    return flat;
  }
  torchNormal(mean: number, std: number, count: number): Float32Array {
    const v = Float32Array.from(this.take('torch.normal', `${mean}, ${std}, ${count}`) as number[]);
    if (v.length !== count) throw new Error(`InjectedRandom: torch.normal gave ${v.length} values, ${count} requested`);
    return v;
  }
  pyRandint(a: number, b: number): number {
    return this.take('py.randint', `${a}, ${b}`) as number;
  }
  pySample(n: number, k: number): number[] {
    return (this.take('py.sample', `range(${n}), ${k}`) as number[]).slice();
  }
  pyRandom(): number {
    return this.take('py.random', '') as number;
  }
  randn(shape: readonly number[]): Float32Array {
    const v = this.take('randn', `[${shape.join(', ')}]`);
    const data = v instanceof Float32Array ? v : Float32Array.from(v as number[]);
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`InjectedRandom: randn draw has ${data.length} values, shape [${shape.join(', ')}] requested`);
    return data.slice();
  }
}
