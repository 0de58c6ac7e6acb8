// LayerNorm + AdaLN modulation in one pass over each row, for the DiT's norm1/norm2 on the tensorflow backend:
// y = (((x − mean)·rsqrt(var + eps))·w + b)·(1 + scale) + shift, the order src/nn/norm.ts and the transformer use
// on TensorFlow ops (biased variance, two passes). Writes straight into the host array the native GEMM reads, so
// TensorFlow's seven element-wise passes and the concat of the text and video rows are skipped.
// One row kernel per ISA (avx512::norm_row, avx2::norm_row); ada_layer_norm() runs the one of g_isa.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu.h"
#include "parallel.h"
#include "simd_avx2.h"
#include "simd_avx512.h"

#ifdef COGVIDEOX_X86
COGVIDEOX_TARGET_AVX512
namespace {
namespace avx512 {

void norm_row(const float* xr, int D, float eps, const float* w, const float* bias, const float* sc, const float* sh,
              float* yr) {
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

}  // namespace avx512
}  // namespace
COGVIDEOX_TARGET_END

COGVIDEOX_TARGET_AVX2
namespace {
namespace avx2 {

// As avx512::norm_row, 8 lanes, the last D mod 8 elements one at a time (same operation order).
void norm_row(const float* xr, int D, float eps, const float* w, const float* bias, const float* sc, const float* sh,
              float* yr) {
  const int D8 = D & ~7;
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < D8; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(xr + i));
  float sum = hsum(acc);
  for (int i = D8; i < D; i++) sum += xr[i];
  const float mean = sum / (float)D;
  const __m256 m = _mm256_set1_ps(mean);
  acc = _mm256_setzero_ps();
  for (int i = 0; i < D8; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + i), m);
    acc = _mm256_add_ps(acc, _mm256_mul_ps(d, d));
  }
  float sq = hsum(acc);
  for (int i = D8; i < D; i++) sq += (xr[i] - mean) * (xr[i] - mean);
  const float rstd_s = 1.f / std::sqrt(sq / (float)D + eps);
  const __m256 rstd = _mm256_set1_ps(rstd_s);
  const __m256 one = _mm256_set1_ps(1.f);
  for (int i = 0; i < D8; i += 8) {
    __m256 y = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), m), rstd);
    if (w) y = _mm256_mul_ps(y, _mm256_loadu_ps(w + i));
    if (bias) y = _mm256_add_ps(y, _mm256_loadu_ps(bias + i));
    y = _mm256_mul_ps(y, _mm256_add_ps(_mm256_loadu_ps(sc + i), one));
    y = _mm256_add_ps(y, _mm256_loadu_ps(sh + i));
    _mm256_storeu_ps(yr + i, y);
  }
  for (int i = D8; i < D; i++) {
    float y = (xr[i] - mean) * rstd_s;
    if (w) y = y * w[i];
    if (bias) y = y + bias[i];
    yr[i] = y * (sc[i] + 1.f) + sh[i];
  }
}

}  // namespace avx2
}  // namespace
COGVIDEOX_TARGET_END
#endif

namespace {

// For b < B, r < R: out[(b·out_rows + out_offset + r)·D …] = the modulated LayerNorm of x[(b·R + r)·D …], with
// scale/shift rows b of [B, D]; w, bias may be null. Needs g_isa avx2 or avx512 (has_linear()).
void ada_layer_norm(const float* x, int64_t B, int64_t R, int D, float eps, const float* w, const float* bias,
                    const float* scale, const float* shift, float* out, int64_t out_rows, int64_t out_offset,
                    int threads) {
#ifdef COGVIDEOX_X86
  auto row_fn = g_isa == Isa::avx512 ? avx512::norm_row : avx2::norm_row;
  constexpr int64_t ROWS = 32;  // rows per work item
  const int64_t rows = B * R, items = (rows + ROWS - 1) / ROWS;
  parallel_for(items, (int)std::min<int64_t>(threads, items), [&](int64_t t, int) {
    for (int64_t row = t * ROWS; row < std::min(rows, (t + 1) * ROWS); row++) {
      const int64_t b = row / R, r = row % R;
      row_fn(x + row * D, D, eps, w, bias, scale + b * D, shift + b * D, out + (b * out_rows + out_offset + r) * D);
    }
  });
#endif
}

}  // namespace
