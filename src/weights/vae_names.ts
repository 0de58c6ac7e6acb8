// Checkpoint knowledge of AutoencoderKLCogVideoX (diffusers/.../autoencoder_kl_cogvideox.py module tree): the
// config's checks and defaults, and the module tree it implies with the tensor names and shapes of every parameter.
// Model code reads names from here only.
//   causal convs are wrapped: `<p>.conv.weight` [Cout, Cin, kt, kh, kw]; the 1×1×1 shortcut is a plain Conv3d
//   (`<p>.conv_shortcut.weight` [Cout, Cin, 1, 1, 1]); resamplers are Conv2d (`<p>.conv.weight` [C, C, 3, 3]);
//   decoder norms are SpatialNorm3D (`norm_layer` GroupNorm + `conv_y` / `conv_b` 1×1×1 causal convs from the latent).

export interface VaeConfig {
  in_channels: number;
  out_channels: number;
  latent_channels: number;
  block_out_channels: number[];
  layers_per_block: number;
  norm_num_groups: number;
  norm_eps: number;
  act_fn: string;
  temporal_compression_ratio: number;
  down_block_types: string[];
  up_block_types: string[];
  sample_height: number;
  sample_width: number;
  scaling_factor: number;
  shift_factor?: number | null;
  latents_mean?: number[] | null;
  latents_std?: number[] | null;
  use_quant_conv?: boolean;
  use_post_quant_conv?: boolean;
  invert_scale_latents?: boolean;
  force_upcast?: boolean;
}

export interface ConvNames {
  weight: string;
  bias: string;
  shape: number[];
}

export interface NormNames {
  weight: string;
  bias: string;
  channels: number;
}

export interface SpatialNormNames {
  norm: NormNames;
  convY: ConvNames;
  convB: ConvNames;
}

export interface ResnetNames {
  cin: number;
  cout: number;
  norm1: NormNames | SpatialNormNames;
  conv1: ConvNames;
  norm2: NormNames | SpatialNormNames;
  conv2: ConvNames;
  shortcut: ConvNames | null;
}

export interface ResampleNames {
  conv: ConvNames;
  compressTime: boolean;
}

export interface EncoderLayout {
  convIn: ConvNames;
  down: { resnets: ResnetNames[]; downsample: ResampleNames | null }[];
  mid: ResnetNames[];
  normOut: NormNames;
  convOut: ConvNames;
}

export interface DecoderLayout {
  convIn: ConvNames;
  mid: ResnetNames[];
  up: { resnets: ResnetNames[]; upsample: ResampleNames | null }[];
  normOut: SpatialNormNames;
  convOut: ConvNames;
}

export interface VaeLayout {
  encoder: EncoderLayout;
  decoder: DecoderLayout;
}

const conv = (p: string, cout: number, cin: number, k: number[]): ConvNames => ({
  weight: `${p}.weight`,
  bias: `${p}.bias`,
  shape: [cout, cin, ...k],
});
const causal = (p: string, cout: number, cin: number, k = 3): ConvNames => conv(`${p}.conv`, cout, cin, [k, k, k]);
const norm = (p: string, c: number): NormNames => ({ weight: `${p}.weight`, bias: `${p}.bias`, channels: c });
const spatialNorm = (p: string, c: number, zc: number): SpatialNormNames => ({
  norm: norm(`${p}.norm_layer`, c),
  convY: causal(`${p}.conv_y`, c, zc, 1),
  convB: causal(`${p}.conv_b`, c, zc, 1),
});

function resnet(p: string, cin: number, cout: number, zc: number | null): ResnetNames {
  const n = (q: string, c: number) => (zc === null ? norm(`${p}.${q}`, c) : spatialNorm(`${p}.${q}`, c, zc));
  return {
    cin,
    cout,
    norm1: n('norm1', cin),
    conv1: causal(`${p}.conv1`, cout, cin),
    norm2: n('norm2', cout),
    conv2: causal(`${p}.conv2`, cout, cout),
    shortcut: cin === cout ? null : conv(`${p}.conv_shortcut`, cout, cin, [1, 1, 1]),
  };
}

export function isSpatialNorm(n: NormNames | SpatialNormNames): n is SpatialNormNames {
  return 'norm' in n;
}

/** Number of blocks (counted from the first) that compress / expand time: log2(temporal_compression_ratio). */
export function temporalLevels(c: VaeConfig): number {
  return Math.round(Math.log2(c.temporal_compression_ratio));
}

export function vaeLayout(c: VaeConfig): VaeLayout {
  const boc = c.block_out_channels;
  const n = boc.length;
  const tl = temporalLevels(c);
  const zc = c.latent_channels;

  const down: EncoderLayout['down'] = [];
  let out = boc[0]!;
  for (let i = 0; i < n; i++) {
    const inp = out;
    out = boc[i]!;
    const p = `encoder.down_blocks.${i}`;
    down.push({
      resnets: Array.from({ length: c.layers_per_block }, (_, r) => resnet(`${p}.resnets.${r}`, r === 0 ? inp : out, out, null)),
      downsample: i < n - 1 ? { conv: conv(`${p}.downsamplers.0.conv`, out, out, [3, 3]), compressTime: i < tl } : null,
    });
  }
  const top = boc[n - 1]!;
  const encoder: EncoderLayout = {
    convIn: causal('encoder.conv_in', boc[0]!, c.in_channels),
    down,
    mid: [0, 1].map((r) => resnet(`encoder.mid_block.resnets.${r}`, top, top, null)),
    normOut: norm('encoder.norm_out', top),
    convOut: causal('encoder.conv_out', 2 * zc, top),
  };

  const rev = [...boc].reverse();
  const up: DecoderLayout['up'] = [];
  out = rev[0]!;
  for (let i = 0; i < n; i++) {
    const prev = out;
    out = rev[i]!;
    const p = `decoder.up_blocks.${i}`;
    up.push({
      resnets: Array.from({ length: c.layers_per_block + 1 }, (_, r) => resnet(`${p}.resnets.${r}`, r === 0 ? prev : out, out, zc)),
      upsample: i < n - 1 ? { conv: conv(`${p}.upsamplers.0.conv`, out, out, [3, 3]), compressTime: i < tl } : null,
    });
  }
  const decoder: DecoderLayout = {
    convIn: causal('decoder.conv_in', rev[0]!, zc),
    mid: [0, 1].map((r) => resnet(`decoder.mid_block.resnets.${r}`, rev[0]!, rev[0]!, zc)),
    up,
    normOut: spatialNorm('decoder.norm_out', rev[n - 1]!, zc),
    convOut: causal('decoder.conv_out', c.out_channels, rev[n - 1]!),
  };
  return { encoder, decoder };
}

function addConv(m: Map<string, number[]>, cv: ConvNames): void {
  m.set(cv.weight, cv.shape);
  m.set(cv.bias, [cv.shape[0]!]);
}

function addNorm(m: Map<string, number[]>, n: NormNames | SpatialNormNames): void {
  if (isSpatialNorm(n)) {
    addNorm(m, n.norm);
    addConv(m, n.convY);
    addConv(m, n.convB);
  } else {
    m.set(n.weight, [n.channels]);
    m.set(n.bias, [n.channels]);
  }
}

function addResnet(m: Map<string, number[]>, r: ResnetNames): void {
  addNorm(m, r.norm1);
  addConv(m, r.conv1);
  addNorm(m, r.norm2);
  addConv(m, r.conv2);
  if (r.shortcut) addConv(m, r.shortcut);
}

/** Tensor names and shapes of one half ('encoder' / 'decoder') or both, in module order. */
export function vaeExpectedShapes(c: VaeConfig, part: 'encoder' | 'decoder' | 'both' = 'both'): Map<string, number[]> {
  const { encoder: e, decoder: d } = vaeLayout(c);
  const m = new Map<string, number[]>();
  if (part !== 'decoder') {
    addConv(m, e.convIn);
    for (const b of e.down) {
      b.resnets.forEach((r) => addResnet(m, r));
      if (b.downsample) addConv(m, b.downsample.conv);
    }
    e.mid.forEach((r) => addResnet(m, r));
    addNorm(m, e.normOut);
    addConv(m, e.convOut);
  }
  if (part !== 'encoder') {
    addConv(m, d.convIn);
    d.mid.forEach((r) => addResnet(m, r));
    for (const b of d.up) {
      b.resnets.forEach((r) => addResnet(m, r));
      if (b.upsample) addConv(m, b.upsample.conv);
    }
    addNorm(m, d.normOut);
    addConv(m, d.convOut);
  }
  return m;
}

/** Checks a VAE config.json (named `file` in errors) and fills the class defaults of the original. */
export function validateVaeConfig(c: VaeConfig, file: string): void {
  const posInt = (k: keyof VaeConfig) => {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) <= 0) throw new Error(`${file}: "${k}" must be a positive integer, got ${JSON.stringify(v)}`);
  };
  (['in_channels', 'out_channels', 'latent_channels', 'layers_per_block', 'norm_num_groups', 'sample_height', 'sample_width'] as const).forEach(posInt);
  if (!Array.isArray(c.block_out_channels) || c.block_out_channels.length < 1 || c.block_out_channels.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new Error(`${file}: "block_out_channels" must be a non-empty list of positive integers`);
  }
  const n = c.block_out_channels.length;
  for (const ch of c.block_out_channels) {
    if (ch % c.norm_num_groups !== 0) throw new Error(`${file}: block_out_channels ${ch} is not divisible by norm_num_groups ${c.norm_num_groups}`);
  }
  c.norm_eps ??= 1e-6;
  c.act_fn ??= 'silu';
  c.temporal_compression_ratio ??= 4;
  c.scaling_factor ??= 1.15258426;
  c.down_block_types ??= new Array<string>(n).fill('CogVideoXDownBlock3D');
  c.up_block_types ??= new Array<string>(n).fill('CogVideoXUpBlock3D');
  if (c.act_fn !== 'silu' && c.act_fn !== 'swish') throw new Error(`${file}: act_fn "${c.act_fn}" is not supported (only silu, as CogVideoX)`);
  if (c.down_block_types.length !== n || c.down_block_types.some((t) => t !== 'CogVideoXDownBlock3D')) {
    throw new Error(`${file}: down_block_types must be ${n} × "CogVideoXDownBlock3D"`);
  }
  if (c.up_block_types.length !== n || c.up_block_types.some((t) => t !== 'CogVideoXUpBlock3D')) {
    throw new Error(`${file}: up_block_types must be ${n} × "CogVideoXUpBlock3D"`);
  }
  const tl = Math.log2(c.temporal_compression_ratio);
  if (!Number.isInteger(tl) || tl < 0 || tl > n - 1) {
    throw new Error(`${file}: temporal_compression_ratio ${c.temporal_compression_ratio} must be a power of 2 up to 2^${n - 1}`);
  }
  if (c.use_quant_conv || c.use_post_quant_conv) throw new Error(`${file}: use_quant_conv / use_post_quant_conv are not supported (CogVideoX has neither)`);
}
