// The memory plan: before any compute, the peak process memory (RSS) and, on wasm, the peak wasm heap of a request,
// stage by stage — text (T5), conditioning (VAE encodes), denoise (transformer), decode (VAE) — with the models
// loaded and released per stage as the pipelines do. Each term follows the code that allocates it; the
// coefficients marked "measured" come from bench/pipeline.ts runs on this project's machine (2-core x86, TF 2.21
// via tfjs-node, tfjs-backend-wasm 4.22) and are what a different allocator or BLAS would change.
import { OFFLOAD_CHUNK_BYTES, transformerOffloaded } from '../nn/capabilities.js';
import * as os from 'node:os';
import type { T5Config } from '../weights/t5_names.js';
import type { TransformerConfig } from '../weights/transformer_names.js';
import type { VaeConfig } from '../weights/vae_names.js';
import type { Residency } from '../weights/residency.js';

export interface ComponentSize {
  /** bytes of the safetensors data as stored (bf16 = 2 per value) and as float32 */
  storedBytes: number;
  fp32Bytes: number;
}

export interface MemoryInputs {
  backend: 'tensorflow' | 'wasm' | string;
  /** the native fused attention kernel is used (tensorflow backend, src/nn/native.ts built) */
  fusedAttention?: boolean;
  t5: ComponentSize & { config: T5Config; residency: Residency };
  transformer: ComponentSize & { config: TransformerConfig; residency: Residency };
  vae: ComponentSize & { config: VaeConfig; weights: 'resident' | 'block'; tiling: boolean };
}

export interface MemoryRequest {
  height: number;
  width: number;
  numFrames: number;
  guidanceScale?: number;
  batch?: number;
  maxSequenceLength?: number;
  /** A start / end image or source video is VAE-encoded (Fun: also the masked video). */
  image?: boolean;
  sourceVideo?: boolean;
}

export interface StagePlan {
  stage: 'text' | 'conditioning' | 'denoise' | 'decode';
  /** peak process RSS during the stage, bytes */
  rssBytes: number;
  /** peak wasm heap during the stage (0 on other backends) */
  heapBytes: number;
  /** the terms, bytes */
  terms: Record<string, number>;
}

export interface MemoryPlan {
  stages: StagePlan[];
  peakRssBytes: number;
  peakHeapBytes: number;
  limits: { ramBytes: number; heapBytes: number };
  fits: boolean;
  /** why it does not fit, and what to change */
  problems: string[];
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;
export const WASM_HEAP_LIMIT = 4 * GiB;
// The offloaded transformer's wasm heap beyond its named terms (heap growth steps, fragmentation from per-head and
// per-chunk tensors of many sizes). measured (bench/transformer.ts, 2026-11-22): Fun-5b block at 384×672×49, CFG 2,
// peak heap 1.62 GiB against 1.02 GiB of weights + chunk + attention terms
const WASM_OFFLOAD_SLACK = 0.6 * GiB;

// Runtime before any model: Node + tfjs (+ libtensorflow / the wasm module). measured
const BASE_RSS = { tensorflow: 420 * MiB, wasm: 260 * MiB } as const;

export function planMemory(inputs: MemoryInputs, req: MemoryRequest, limits = { ramBytes: os.totalmem(), heapBytes: WASM_HEAP_LIMIT }): MemoryPlan {
  const wasm = inputs.backend === 'wasm';
  const tc = inputs.transformer.config;
  const vc = inputs.vae.config;
  const B = req.batch ?? 1;
  const B2 = (req.guidanceScale ?? 6) > 1 ? 2 * B : B;
  const spatial = 2 ** (vc.block_out_channels.length - 1);
  const h = req.height / spatial;
  const w = req.width / spatial;
  const T = Math.floor((req.numFrames - 1) / vc.temporal_compression_ratio) + 1;
  const f4 = 4;

  // -- text: T5 (the embedding table is gathered on the host; blocks are uploaded one at a time unless resident)
  const t5 = inputs.t5;
  const L = req.maxSequenceLength ?? 226;
  const t5Blocks = t5.config.num_layers;
  const t5Block = t5.fp32Bytes / (t5Blocks + 1); // the embedding is about one block's worth
  const text = {
    weightsDevice: t5.residency === 'resident' ? t5.fp32Bytes : t5Block,
    weightsHost: t5.residency === 'host' ? t5.storedBytes : (t5.storedBytes / (t5Blocks + 1)) * 2, // disk: embedding + one block read
    activations: B2 * L * (8 * t5.config.d_model + 4 * t5.config.d_ff) * f4,
  };

  // -- denoise: transformer (one block's weights materialised at a time unless resident)
  const tr = inputs.transformer;
  const D = tc.num_attention_heads * tc.attention_head_dim;
  const pt = tc.patch_size_t ?? 1;
  const N = Math.ceil(T / pt) * (h / tc.patch_size) * (w / tc.patch_size);
  const S = N + (tc.max_text_seq_length ?? L);
  const H = tc.num_attention_heads;
  const trBlock = tr.fp32Bytes / tc.num_layers;
  const seqBytes = B2 * S * D * f4; // one [2B, S, D] activation
  const attnBound = wasm ? 256 * MiB : GiB;
  const ffBound = wasm ? 256 * MiB : 2 * GiB;
  // scores + probabilities per query block (tensorflow: all heads at once; wasm: one head)
  // fused native kernel: host copies of q, k, v, its kᵀ and the output, no scores
  const attnScratch =
    !wasm && inputs.fusedAttention ? 5 * seqBytes : Math.min(attnBound, 2 * S * S * f4 * (wasm ? 1 : B2 * H)) * 1.5; // softmax's exp temp: measured
  const ffRows = Math.max(1, Math.floor(ffBound / (2 * 4 * 4 * D)));
  const ffScratch = Math.min(B2 * S, ffRows) * 4 * D * f4 * 2; // ff1 output + GELU
  // [2B, S, D]-sized tensors alive at a block's peak, allocator slack included. tensorflow keeps normed, q, k, v and
  // their transposes, attention out (+ transpose), projection, hidden/encoder in and out (transformer.ts); wasm works
  // per head. measured (bench/transformer.ts, bench/pipeline.ts): ≈ 22 on tensorflow (3 250 and 13 330 tokens,
  // within 10 %), ≈ 10 on wasm (13 330 tokens)
  const seqLive = wasm ? 10 : 22;
  // sizes whose activations would not fit (wasm heap / half the RAM) run offloaded (src/nn/dit/offload_ops.ts): on the
  // device a row chunk, one head's q/k/v/out [S, hd] and its attention scratch; on the host the residual stream,
  // q/k/v/out of one sequence and the position table
  const offload = transformerOffloaded(B2, S, D, wasm ? 'wasm' : 'tensorflow', limits.ramBytes);
  const hd = tc.attention_head_dim;
  const headAttn = !wasm && inputs.fusedAttention ? 5 * S * hd * f4 : Math.min(attnBound, 2 * S * S * f4) * 1.5;
  const denoise = {
    weightsDevice: tr.residency === 'resident' ? tr.fp32Bytes : trBlock,
    weightsHost:
      (tr.residency === 'host' ? tr.storedBytes : 2 * (tr.storedBytes / tc.num_layers)) +
      (offload ? seqBytes + 4 * (seqBytes / B2) + (tc.use_rotary_positional_embeddings ? 0 : (S * D * f4)) : 0),
    activations: offload
      ? OFFLOAD_CHUNK_BYTES + headAttn + 8 * S * hd * f4 + (wasm ? WASM_OFFLOAD_SLACK : 0)
      : seqLive * seqBytes + attnScratch + ffScratch,
  };

  // -- VAE: weights per block (stored bytes on the host) or resident; frames stream through the causal convs
  const v = inputs.vae;
  const c0 = vc.block_out_channels[0]!;
  const Hp = req.height;
  const Wp = req.width;
  const F = req.numFrames;
  const vaeWeightsDevice = v.weights === 'resident' ? v.fp32Bytes : 0.25 * v.fp32Bytes; // largest up/down block
  const vaeWeightsHost = v.weights === 'resident' ? 0 : v.storedBytes;
  // full-resolution frame features [c0, H, W]: the convs' cached frames, GroupNorm / SpatialNorm temporaries and
  // conv im2col buffers. measured at 384×672 (bench/vae.ts): ≈ 36 such planes at the peak of a tensorflow decode,
  // ≈ 21 on wasm (frame streaming moves kept frames to the host beyond 256 MiB there); encodes about two thirds
  // with tiling the decoder sees one tile at a time: (sample size / 2) pixels, as diffusers' tile_sample_min
  const tileH = v.tiling ? Math.min(Hp, Math.floor(vc.sample_height / 2)) : Hp;
  const tileW = v.tiling ? Math.min(Wp, Math.floor(vc.sample_width / 2)) : Wp;
  const plane = c0 * tileH * tileW * f4;
  const decodeAct = (wasm ? 21 : 36) * plane;
  const encodeAct = (wasm ? 14 : 24) * plane;
  const videoOut = B * 3 * (F + 3) * Hp * Wp * f4 * 2; // decoded video (host) + [0, 1] copy
  const frames = B * F * Hp * Wp * 3;
  const conditioning = {
    weightsDevice: req.image || req.sourceVideo ? vaeWeightsDevice : 0,
    weightsHost: req.image || req.sourceVideo ? vaeWeightsHost : 0,
    activations: req.image || req.sourceVideo ? encodeAct + 3 * B * 3 * F * Hp * Wp * f4 : 0,
  };
  const decode = { weightsDevice: vaeWeightsDevice, weightsHost: vaeWeightsHost, activations: decodeAct + videoOut + frames };

  const base = wasm ? BASE_RSS.wasm : BASE_RSS.tensorflow;
  const stages: StagePlan[] = [];
  // Both memories are high-water marks. The wasm heap never shrinks, and TensorFlow's CPU allocator keeps what it
  // has pooled (measured: 2 GB of disposed op outputs stay in RSS). Host memory freed at a stage end (the pipelines
  // collect garbage when they release a model) is reused by later host allocations but mostly not returned to the
  // OS (malloc arenas; measured: a released host-resident Fun-2b left 2 of its 3.2 GB in RSS).
  let poolHigh = 0;
  let hostHigh = 0;
  const add = (stage: StagePlan['stage'], s: { weightsDevice: number; weightsHost: number; activations: number }) => {
    poolHigh = Math.max(poolHigh, s.weightsDevice + s.activations);
    hostHigh = Math.max(hostHigh, s.weightsHost);
    stages.push({ stage, rssBytes: base + hostHigh + poolHigh, heapBytes: wasm ? poolHigh : 0, terms: { base, ...s, backendPool: poolHigh, hostHigh } });
  };
  add('text', text);
  if (conditioning.activations > 0) add('conditioning', conditioning);
  add('denoise', denoise);
  add('decode', decode);
  const peakRssBytes = Math.max(...stages.map((s) => s.rssBytes));
  const peakHeapBytes = Math.max(...stages.map((s) => s.heapBytes));
  const problems: string[] = [];
  const gb = (x: number) => `${(x / GiB).toFixed(1)} GiB`;
  if (peakRssBytes > limits.ramBytes) {
    const worst = stages.reduce((a, b) => (b.rssBytes > a.rssBytes ? b : a));
    problems.push(
      `needs about ${gb(peakRssBytes)} of RAM (${worst.stage} stage), this machine has ${gb(limits.ramBytes)}: ` +
        suggestion(worst.stage, inputs),
    );
  }
  if (wasm && peakHeapBytes > limits.heapBytes) {
    const worst = stages.reduce((a, b) => (b.heapBytes > a.heapBytes ? b : a));
    problems.push(`needs about ${gb(peakHeapBytes)} of wasm heap (${worst.stage} stage), the limit is ${gb(limits.heapBytes)}: ` + suggestion(worst.stage, inputs));
  }
  return { stages, peakRssBytes, peakHeapBytes, limits, fits: problems.length === 0, problems };
}

function suggestion(stage: StagePlan['stage'], inputs: MemoryInputs): string {
  if (stage === 'decode' || stage === 'conditioning') {
    return inputs.vae.tiling ? 'lower the resolution' : 'enable VAE tiling (--tiling) or lower the resolution';
  }
  if (stage === 'text') return 'use residency "disk" for the text encoder';
  return 'lower the resolution or the frame count' + (inputs.transformer.residency === 'resident' ? ', or use residency "host"/"disk"' : '');
}
