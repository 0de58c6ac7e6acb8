// Head layout changes around the fused attention, on host rows, for the DiT on the tensorflow backend:
//   split_heads: [B·S, H·hd] rows (a projection's GEMM output) → [B, H, S, hd], with the per-head LayerNorm
//     (q/k norm: (x − mean)·rsqrt(var + eps)·w + b, biased variance) and the rotary embedding on rows s ≥ Lt
//     (diffusers apply_rotary_emb, pairs (2k, 2k+1): x·cos + swap(x)·(∓sin)), in the operation order of
//     src/nn/norm.ts and src/nn/rope.ts;
//   merge_heads: [B, H, S, hd] → [B·S, H·hd] rows for the output projection.
// They replace TensorFlow's transposes, slices, concats and element-wise passes (and the copies between them).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel.h"

namespace {

void split_heads(const float* src, int64_t B, int64_t S, int H, int hd, bool norm, const float* nw, const float* nb,
                 float eps, int64_t Lt, const float* cos, const float* sin, float* dst, int threads) {
  constexpr int64_t ROWS = 16;
  const int64_t rows = B * S, items = (rows + ROWS - 1) / ROWS;
  parallel_for(items, (int)std::min<int64_t>(threads, items), [&](int64_t t, int) {
    std::vector<float> v(hd);
    for (int64_t row = t * ROWS; row < std::min(rows, (t + 1) * ROWS); row++) {
      const int64_t b = row / S, s = row % S;
      const float* c = cos && s >= Lt ? cos + (s - Lt) * hd : nullptr;
      const float* sn = c ? sin + (s - Lt) * hd : nullptr;
      for (int h = 0; h < H; h++) {
        const float* x = src + (row * H + h) * hd;
        float* y = dst + ((b * H + h) * S + s) * hd;
        for (int i = 0; i < hd; i++) v[i] = x[i];
        if (norm) {
          float sum = 0.f;
          for (int i = 0; i < hd; i++) sum += v[i];
          const float mean = sum / (float)hd;
          float sq = 0.f;
          for (int i = 0; i < hd; i++) sq += (v[i] - mean) * (v[i] - mean);
          const float rstd = 1.f / std::sqrt(sq / (float)hd + eps);
          for (int i = 0; i < hd; i++) {
            float u = (v[i] - mean) * rstd;
            if (nw) u = u * nw[i];
            if (nb) u = u + nb[i];
            v[i] = u;
          }
        }
        if (c) {
          for (int i = 0; i < hd; i += 2) {
            const float a0 = v[i] * c[i], a1 = v[i + 1] * c[i + 1];
            const float r0 = v[i + 1] * -sn[i], r1 = v[i] * sn[i + 1];
            y[i] = a0 + r0;
            y[i + 1] = a1 + r1;
          }
        } else {
          for (int i = 0; i < hd; i++) y[i] = v[i];
        }
      }
    }
  });
}

void merge_heads(const float* src, int64_t B, int64_t S, int H, int hd, float* dst, int threads) {
  const int64_t rows = B * S;
  parallel_for((rows + 63) / 64, (int)std::min<int64_t>(threads, (rows + 63) / 64), [&](int64_t t, int) {
    for (int64_t row = t * 64; row < std::min(rows, (t + 1) * 64); row++) {
      const int64_t b = row / S, s = row % S;
      for (int h = 0; h < H; h++) {
        const float* x = src + ((b * H + h) * S + s) * hd;
        std::copy(x, x + hd, dst + (row * H + h) * hd);
      }
    }
  });
}

}  // namespace
