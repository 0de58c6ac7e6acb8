// LayerNorm + AdaLN modulation in one pass over each row, for the DiT's norm1/norm2 on the tensorflow backend:
// y = (((x − mean)·rsqrt(var + eps))·w + b)·(1 + scale) + shift, the order src/nn/norm.ts and the transformer use
// on TensorFlow ops (biased variance, two passes). Writes straight into the host array the native GEMM reads, so
// TensorFlow's seven element-wise passes and the concat of the text and video rows are skipped.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "parallel.h"

#ifdef __AVX512F__
#include <immintrin.h>

namespace {

inline __mmask16 tail_mask(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

// For b < B, r < R: out[(b·out_rows + out_offset + r)·D …] = the modulated LayerNorm of x[(b·R + r)·D …], with
// scale/shift rows b of [B, D]; w, bias may be null.
void ada_layer_norm(const float* x, int64_t B, int64_t R, int D, float eps, const float* w, const float* bias,
                    const float* scale, const float* shift, float* out, int64_t out_rows, int64_t out_offset,
                    int threads) {
  constexpr int64_t ROWS = 32;  // rows per work item
  const int64_t rows = B * R, items = (rows + ROWS - 1) / ROWS;
  parallel_for(items, (int)std::min<int64_t>(threads, items), [&](int64_t t, int) {
    for (int64_t row = t * ROWS; row < std::min(rows, (t + 1) * ROWS); row++) {
      const int64_t b = row / R, r = row % R;
      const float* xr = x + row * D;
      float* yr = out + (b * out_rows + out_offset + r) * D;
      const float* sc = scale + b * D;
      const float* sh = shift + b * D;
      __m512 acc = _mm512_setzero_ps();
      for (int i = 0; i < D; i += 16) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail_mask(D - i), xr + i));
      const float mean = _mm512_reduce_add_ps(acc) / (float)D;
      const __m512 m = _mm512_set1_ps(mean);
      acc = _mm512_setzero_ps();
      for (int i = 0; i < D; i += 16) {
        const __mmask16 k = tail_mask(D - i);
        const __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, xr + i), m);
        acc = _mm512_add_ps(acc, _mm512_mul_ps(d, d));
      }
      const float var = _mm512_reduce_add_ps(acc) / (float)D;
      const __m512 rstd = _mm512_set1_ps(1.f / std::sqrt(var + eps));
      const __m512 one = _mm512_set1_ps(1.f);
      for (int i = 0; i < D; i += 16) {
        const __mmask16 k = tail_mask(D - i);
        __m512 y = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + i), m), rstd);
        if (w) y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(k, w + i));
        if (bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(k, bias + i));
        y = _mm512_mul_ps(y, _mm512_add_ps(_mm512_maskz_loadu_ps(k, sc + i), one));
        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(k, sh + i));
        _mm512_mask_storeu_ps(yr + i, k, y);
      }
    }
  });
}

}  // namespace
#endif  // __AVX512F__
