// The VAE's weights as the streaming strategy holds them: convs re-laid out for the conv kernels of src/nn/conv.ts,
// GroupNorm γ/β as host arrays (the scale/shift is computed on the host from merged statistics).
import { disposeCausalConv3d, disposeConv2d, type CausalConv3d, type Conv2d } from '../conv.js';

export interface NormW {
  groups: number;
  eps: number;
  gamma: Float32Array;
  beta: Float32Array;
}

export interface SpatialNormW {
  norm: NormW;
  convY: CausalConv3d;
  convB: CausalConv3d;
}

export interface ResampleW {
  conv: Conv2d;
  compressTime: boolean;
}

export interface StreamW {
  conv: CausalConv3d;
  norm: NormW;
  snorm: SpatialNormW;
  resample: ResampleW;
}

export function isSpatial(n: NormW | SpatialNormW): n is SpatialNormW {
  return 'convY' in n;
}

export function disposeNorm(n: NormW | SpatialNormW): void {
  if (isSpatial(n)) {
    disposeCausalConv3d(n.convY);
    disposeCausalConv3d(n.convB);
  }
}

export function disposeResample(r: ResampleW): void {
  disposeConv2d(r.conv);
}
