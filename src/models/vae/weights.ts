// The VAE's weights as the streaming path holds them: convs re-laid out for the conv kernels of src/nn, GroupNorm γ/β
// as host arrays (the scale/shift is computed on the host from merged statistics). Names and shapes come from
// src/weights/vae_names.ts. A `Part` is a group of weights uploaded when a call needs it.
import { causalConv3dFromHost, conv2dFromHost, disposeCausalConv3d, disposeConv2d, type CausalConv3d, type Conv2d } from '../../nn/conv.js';
import type { HostTensor } from '../../weights/host_tensor.js';
import { isSpatialNorm, type ConvNames, type NormNames, type ResampleNames, type ResnetNames, type SpatialNormNames } from '../../weights/vae_names.js';

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

export interface ResnetW {
  cin: number;
  cout: number;
  norm1: NormW | SpatialNormW;
  conv1: CausalConv3d;
  norm2: NormW | SpatialNormW;
  conv2: CausalConv3d;
  shortcut: CausalConv3d | null;
}

export interface ResampleW {
  conv: Conv2d;
  compressTime: boolean;
}

export type WeightGetter = (name: string) => HostTensor;

export function loadCausalConv(n: ConvNames, get: WeightGetter): CausalConv3d {
  return causalConv3dFromHost(get(n.weight), get(n.bias));
}

function loadNorm(n: NormNames | SpatialNormNames, get: WeightGetter, groups: number, eps: number): NormW | SpatialNormW {
  if (isSpatialNorm(n)) {
    // CogVideoXSpatialNorm3D builds its GroupNorm with eps=1e-6, whatever norm_eps says (autoencoder_magvit.py:171)
    return { norm: loadNorm(n.norm, get, groups, 1e-6) as NormW, convY: loadCausalConv(n.convY, get), convB: loadCausalConv(n.convB, get) };
  }
  return { groups, eps, gamma: get(n.weight).toFloat32(), beta: get(n.bias).toFloat32() };
}

export function loadGroupNorm(n: NormNames, get: WeightGetter, groups: number, eps: number): NormW {
  return loadNorm(n, get, groups, eps) as NormW;
}

export function loadSpatialNorm(n: SpatialNormNames, get: WeightGetter, groups: number, eps: number): SpatialNormW {
  return loadNorm(n, get, groups, eps) as SpatialNormW;
}

export function loadResnet(n: ResnetNames, get: WeightGetter, groups: number, eps: number): ResnetW {
  return {
    cin: n.cin,
    cout: n.cout,
    norm1: loadNorm(n.norm1, get, groups, eps),
    conv1: loadCausalConv(n.conv1, get),
    norm2: loadNorm(n.norm2, get, groups, eps),
    conv2: loadCausalConv(n.conv2, get),
    shortcut: n.shortcut ? loadCausalConv(n.shortcut, get) : null,
  };
}

export function loadResample(n: ResampleNames, get: WeightGetter): ResampleW {
  return { conv: conv2dFromHost(get(n.conv.weight), get(n.conv.bias)), compressTime: n.compressTime };
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

export function disposeResnet(r: ResnetW): void {
  disposeNorm(r.norm1);
  disposeNorm(r.norm2);
  disposeCausalConv3d(r.conv1);
  disposeCausalConv3d(r.conv2);
  if (r.shortcut) disposeCausalConv3d(r.shortcut);
}

export function disposeResample(r: ResampleW): void {
  disposeConv2d(r.conv);
}

/**
 * A part of the weights, uploaded when a call needs it. Resident parts stay on the backend after their first use;
 * per-block parts are uploaded for each use and freed right after (so a wasm heap holds one block's weights — and
 * XNNPACK's packed copy of them — at a time).
 */
export interface Part<T> {
  use<R>(fn: (w: T) => R): R;
  release(): void;
}

export function part<T>(load: () => T, dispose: (w: T) => void, resident: boolean): Part<T> {
  let kept: T | null = null;
  return {
    use<R>(fn: (w: T) => R): R {
      if (resident) {
        kept ??= load();
        return fn(kept);
      }
      const w = load();
      try {
        return fn(w);
      } finally {
        dispose(w);
      }
    },
    release() {
      if (kept !== null) dispose(kept);
      kept = null;
    },
  };
}
