// Spatial tiling, literally as the reference does it (diffusers/.../autoencoder_kl_cogvideox.py `tiled_encode` /
// `tiled_decode`, kept by CogVideoX-Fun): overlapping tiles each run through the whole chunk loop, then every tile
// is blended with the tile above and the tile on its left and cropped. Tiling changes the numbers.
import type * as tf from '@tensorflow/tfjs-core';
import type { RunContext } from './causal_conv.js';
import type { DecodeChunking } from './chunking.js';
import type { DecoderW } from './decoder.js';
import type { EncoderW } from './encoder.js';
import { decodeCrop, encodeCrop, type HostVideo } from './stream.js';

/** The tiling parameters, named as in the reference. */
export interface TileParams {
  tileSampleMinHeight: number;
  tileSampleMinWidth: number;
  tileLatentMinHeight: number;
  tileLatentMinWidth: number;
  tileOverlapFactorHeight: number;
  tileOverlapFactorWidth: number;
}

export function* tiledEncode(ctx: RunContext, w: EncoderW, x: tf.Tensor5D, b: number, p: TileParams): Generator<void, HostVideo> {
  const [, , , H, W] = x.shape;
  const overlapH = Math.trunc(p.tileSampleMinHeight * (1 - p.tileOverlapFactorHeight));
  const overlapW = Math.trunc(p.tileSampleMinWidth * (1 - p.tileOverlapFactorWidth));
  const blendH = Math.trunc(p.tileLatentMinHeight * p.tileOverlapFactorHeight);
  const blendW = Math.trunc(p.tileLatentMinWidth * p.tileOverlapFactorWidth);
  if (overlapH < 1 || overlapW < 1) throw new Error(`tiled encode: a tile of ${p.tileSampleMinHeight}×${p.tileSampleMinWidth} leaves no stride`);
  const rows: HostVideo[][] = [];
  for (let i = 0; i < H; i += overlapH) {
    const row: HostVideo[] = [];
    for (let j = 0; j < W; j += overlapW) {
      const crop = { b, i, j, h: Math.min(p.tileSampleMinHeight, H - i), w: Math.min(p.tileSampleMinWidth, W - j) };
      row.push(yield* encodeCrop(ctx, w, x, crop));
    }
    rows.push(row);
  }
  return blendTiles(rows, blendH, blendW, p.tileLatentMinHeight - blendH, p.tileLatentMinWidth - blendW);
}

export function* tiledDecode(ctx: RunContext, w: DecoderW, z: tf.Tensor5D, b: number, chunking: DecodeChunking, p: TileParams): Generator<void, HostVideo> {
  const [, , , h, wd] = z.shape;
  const overlapH = Math.trunc(p.tileLatentMinHeight * (1 - p.tileOverlapFactorHeight));
  const overlapW = Math.trunc(p.tileLatentMinWidth * (1 - p.tileOverlapFactorWidth));
  const blendH = Math.trunc(p.tileSampleMinHeight * p.tileOverlapFactorHeight);
  const blendW = Math.trunc(p.tileSampleMinWidth * p.tileOverlapFactorWidth);
  if (overlapH < 1 || overlapW < 1) throw new Error(`tiled decode: a latent tile of ${p.tileLatentMinHeight}×${p.tileLatentMinWidth} leaves no stride`);
  const rows: HostVideo[][] = [];
  for (let i = 0; i < h; i += overlapH) {
    const row: HostVideo[] = [];
    for (let j = 0; j < wd; j += overlapW) {
      const crop = { b, i, j, h: Math.min(p.tileLatentMinHeight, h - i), w: Math.min(p.tileLatentMinWidth, wd - j) };
      row.push(yield* decodeCrop(ctx, w, z, crop, chunking));
    }
    rows.push(row);
  }
  return blendTiles(rows, blendH, blendW, p.tileSampleMinHeight - blendH, p.tileSampleMinWidth - blendW);
}

/**
 * The reference's blend-and-crop of a grid of tiles, literally: in row-major order, each tile is blended in place
 * with the (already blended) tile above, over `blendH` rows, and with the (already blended) tile on its left, over
 * `blendW` columns — b = a·(1 − y/E) + b·(y/E) in float32 — then cropped to limitH × limitW and concatenated.
 */
function blendTiles(rows: HostVideo[][], blendH: number, blendW: number, limitH: number, limitW: number): HostVideo {
  const f = Math.fround;
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < rows[i]!.length; j++) {
      const tile = rows[i]![j]!;
      if (i > 0) {
        const a = rows[i - 1]![j]!;
        const E = Math.min(a.h, tile.h, blendH);
        for (let y = 0; y < E; y++) {
          const w0 = f(1 - y / E);
          const w1 = f(y / E);
          for (let ct = 0; ct < tile.c * tile.t; ct++) {
            const ra = (ct * a.h + a.h - E + y) * a.w;
            const rb = (ct * tile.h + y) * tile.w;
            for (let x = 0; x < tile.w; x++) tile.data[rb + x] = f(f(a.data[ra + x]! * w0) + f(tile.data[rb + x]! * w1));
          }
        }
      }
      if (j > 0) {
        const a = rows[i]![j - 1]!;
        const E = Math.min(a.w, tile.w, blendW);
        for (let x = 0; x < E; x++) {
          const w0 = f(1 - x / E);
          const w1 = f(x / E);
          for (let r = 0; r < tile.c * tile.t * tile.h; r++) {
            const ia = r * a.w + a.w - E + x;
            const ib = r * tile.w + x;
            tile.data[ib] = f(f(a.data[ia]! * w0) + f(tile.data[ib]! * w1));
          }
        }
      }
    }
  }
  // crop and concatenate
  const first = rows[0]![0]!;
  const { c, t } = first;
  const rowH = rows.map((row) => Math.min(row[0]!.h, limitH));
  const colW = rows[0]!.map((tile) => Math.min(tile.w, limitW));
  const H = rowH.reduce((a, b) => a + b, 0);
  const W = colW.reduce((a, b) => a + b, 0);
  const data = new Float32Array(c * t * H * W);
  let y0 = 0;
  rows.forEach((row, i) => {
    let x0 = 0;
    row.forEach((tile, j) => {
      if (tile.t !== t || tile.c !== c) throw new Error('tiles differ in frame count');
      for (let ct = 0; ct < c * t; ct++) {
        for (let y = 0; y < rowH[i]!; y++) {
          const src = (ct * tile.h + y) * tile.w;
          data.set(tile.data.subarray(src, src + colW[j]!), (ct * H + y0 + y) * W + x0);
        }
      }
      x0 += colW[j]!;
    });
    y0 += rowH[i]!;
  });
  return { data, c, t, h: H, w: W };
}
