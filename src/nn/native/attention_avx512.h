// The fused attention's tile kernels, AVX-512: scores and p·v in 16-lane FMA register tiles, exp512 in the softmax.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "attention_portable.h"
#include "attention_tiles.h"
#include "simd_avx512.h"

#ifdef COGVIDEOX_X86
COGVIDEOX_TARGET_AVX512
namespace {
namespace avx512 {

COGVIDEOX_BY_ROWS

// s[i0 + r, 0:nk] = qs[i0 + r, :]·kT[:, k0 : k0 + nk] for RR rows: 64 keys per step in RR×4 accumulators.
template <int RR>
struct Scores {
  static void run(int i0, const float* qs, int d, const float* kT, int Sk, int k0, int nk, float* s) {
    int j = 0;
    for (; j + 64 <= nk; j += 64) {
      __m512 a[RR][4];
      for (int r = 0; r < RR; r++)
        for (int t = 0; t < 4; t++) a[r][t] = _mm512_setzero_ps();
      for (int c = 0; c < d; c++) {
        const float* kr = kT + (size_t)c * Sk + k0 + j;
        const __m512 k_0 = _mm512_loadu_ps(kr), k_1 = _mm512_loadu_ps(kr + 16), k_2 = _mm512_loadu_ps(kr + 32),
                     k_3 = _mm512_loadu_ps(kr + 48);
        for (int r = 0; r < RR; r++) {
          const __m512 qv = _mm512_set1_ps(qs[(i0 + r) * d + c]);
          a[r][0] = _mm512_fmadd_ps(qv, k_0, a[r][0]);
          a[r][1] = _mm512_fmadd_ps(qv, k_1, a[r][1]);
          a[r][2] = _mm512_fmadd_ps(qv, k_2, a[r][2]);
          a[r][3] = _mm512_fmadd_ps(qv, k_3, a[r][3]);
        }
      }
      for (int r = 0; r < RR; r++)
        for (int t = 0; t < 4; t++) _mm512_storeu_ps(s + (i0 + r) * BK + j + 16 * t, a[r][t]);
    }
    for (; j < nk; j += 16) {
      const __mmask16 mk = tail_mask(nk - j);
      __m512 a[RR];
      for (int r = 0; r < RR; r++) a[r] = _mm512_setzero_ps();
      for (int c = 0; c < d; c++) {
        const __m512 kk = _mm512_maskz_loadu_ps(mk, kT + (size_t)c * Sk + k0 + j);
        for (int r = 0; r < RR; r++) a[r] = _mm512_fmadd_ps(_mm512_set1_ps(qs[(i0 + r) * d + c]), kk, a[r]);
      }
      for (int r = 0; r < RR; r++) _mm512_mask_storeu_ps(s + (i0 + r) * BK + j, mk, a[r]);
    }
  }
};

// acc[i0 + r, 0:64] += Σ_j p[i0 + r, j]·v[k0 + j, 0:64] for RR rows (d = 64: 4 vectors per row, in registers).
template <int RR>
struct PV64 {
  static void run(int i0, const float* s, const float* v, int k0, int nk, float* acc) {
    __m512 a[RR][4];
    for (int r = 0; r < RR; r++)
      for (int t = 0; t < 4; t++) a[r][t] = _mm512_loadu_ps(acc + (i0 + r) * 64 + 16 * t);
    for (int j = 0; j < nk; j++) {
      const float* vr = v + (size_t)(k0 + j) * 64;
      const __m512 v0 = _mm512_loadu_ps(vr), v1 = _mm512_loadu_ps(vr + 16), v2 = _mm512_loadu_ps(vr + 32),
                   v3 = _mm512_loadu_ps(vr + 48);
      for (int r = 0; r < RR; r++) {
        const __m512 p = _mm512_set1_ps(s[(i0 + r) * BK + j]);
        a[r][0] = _mm512_fmadd_ps(p, v0, a[r][0]);
        a[r][1] = _mm512_fmadd_ps(p, v1, a[r][1]);
        a[r][2] = _mm512_fmadd_ps(p, v2, a[r][2]);
        a[r][3] = _mm512_fmadd_ps(p, v3, a[r][3]);
      }
    }
    for (int r = 0; r < RR; r++)
      for (int t = 0; t < 4; t++) _mm512_storeu_ps(acc + (i0 + r) * 64 + 16 * t, a[r][t]);
  }
};

inline void scores(int rows, const float* qs, int d, const float* kT, int Sk, int k0, int nk, float* s) {
  by_rows<Scores>(rows, qs, d, kT, Sk, k0, nk, s);
}

inline float row_max(const float* sr, int nk, float mx) {
  int j = 0;
  __m512 mxv = _mm512_set1_ps(mx);
  for (; j + 16 <= nk; j += 16) mxv = _mm512_max_ps(mxv, _mm512_loadu_ps(sr + j));
  mx = _mm512_reduce_max_ps(mxv);
  for (; j < nk; j++) mx = std::max(mx, sr[j]);
  return mx;
}

inline float exp_sum(float* sr, int nk, float mx) {
  int j = 0;
  const __m512 mv = _mm512_set1_ps(mx);
  __m512 sv = _mm512_setzero_ps();
  for (; j + 16 <= nk; j += 16) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(sr + j), mv));
    _mm512_storeu_ps(sr + j, e);
    sv = _mm512_add_ps(sv, e);
  }
  float sum = _mm512_reduce_add_ps(sv);
  for (; j < nk; j++) {
    sr[j] = std::exp(sr[j] - mx);
    sum += sr[j];
  }
  return sum;
}

inline void pv(int rows, const float* s, const float* v, int k0, int nk, float* acc, int d) {
  if (d == 64) return by_rows<PV64>(rows, s, v, k0, nk, acc);
  portable::pv(rows, s, v, k0, nk, acc, d);
}

#include "attention_tile.inc"

}  // namespace avx512
}  // namespace
COGVIDEOX_TARGET_END
#endif
