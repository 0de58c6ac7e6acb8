// Checks of encode / decode inputs, made before any compute (and before any weight is read).
import * as tf from '@tensorflow/tfjs-core';
import type { VaeConfig } from '../../weights/vae_names.js';
import type { DecodeChunking } from './chunking.js';

export function checkPixels(c: VaeConfig, x: tf.Tensor5D): void {
  const [, C, F, H, W] = checkRank5(x, 'encode: x');
  const s = 2 ** (c.block_out_channels.length - 1);
  if (C !== c.in_channels) throw new Error(`encode: x has ${C} channels, the VAE takes ${c.in_channels} ([B, C, F, H, W])`);
  if (F < 1) throw new Error('encode: x has 0 frames');
  if (H < 1 || W < 1) throw new Error(`encode: x has an empty ${H}×${W} frame`);
  if (H % s !== 0 || W % s !== 0) throw new Error(`encode: H and W must be multiples of ${s}, got ${H}×${W}`);
  checkFinite(x, 'encode: x');
}

export function checkLatents(c: VaeConfig, z: tf.Tensor5D, chunking: DecodeChunking = 'fun'): DecodeChunking {
  const [, C, T, h, w] = checkRank5(z, 'decode: z');
  if (C !== c.latent_channels) throw new Error(`decode: z has ${C} channels, the VAE's latents have ${c.latent_channels} ([B, C, T, h, w])`);
  if (T < 1) throw new Error('decode: z has 0 latent frames');
  if (h < 1 || w < 1) throw new Error(`decode: z has an empty ${h}×${w} latent frame`);
  if (chunking !== 'fun' && chunking !== 'diffusers') throw new Error(`decode: unknown chunking "${chunking as string}" (fun | diffusers)`);
  checkFinite(z, 'decode: z');
  return chunking;
}

function checkRank5(x: tf.Tensor, what: string): [number, number, number, number, number] {
  if (!(x instanceof tf.Tensor)) throw new Error(`${what} must be a tf.Tensor`);
  if (x.rank !== 5) throw new Error(`${what} must be rank 5 [B, C, T, H, W], got shape [${x.shape.join(', ')}]`);
  if (x.shape[0] === 0) throw new Error(`${what} has an empty batch`);
  return x.shape as [number, number, number, number, number];
}

function checkFinite(x: tf.Tensor, what: string): void {
  const v = x.dataSync();
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) throw new Error(`${what} holds a non-finite value (${v[i]}) at flat index ${i}`);
  }
}
