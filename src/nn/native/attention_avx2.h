// The fused attention's tile kernels, AVX2 + FMA: scores and p·v in 6×16 register tiles (12 accumulators, as the
// AVX2 GEMM's micro-kernel), exp256 (the same polynomial as exp512) in the softmax.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "attention_portable.h"
#include "attention_tiles.h"
#include "simd_avx2.h"

#ifdef COGVIDEOX_X86
COGVIDEOX_TARGET_AVX2
namespace {
namespace avx2 {

COGVIDEOX_BY_ROWS

// s[i0 + r, 0:nk] = qs[i0 + r, :]·kT[:, k0 : k0 + nk] for RR rows: 16 keys per step in RR×2 accumulators, then 8,
// then one key at a time.
template <int RR>
struct Scores {
  static void run(int i0, const float* qs, int d, const float* kT, int Sk, int k0, int nk, float* s) {
    const float* q = qs + i0 * d;
    float* out = s + i0 * BK;
    int j = 0;
    for (; j + 16 <= nk; j += 16) {
      __m256 a0[RR], a1[RR];
      for (int r = 0; r < RR; r++) a0[r] = a1[r] = _mm256_setzero_ps();
      const float* kr = kT + k0 + j;
      for (int c = 0; c < d; c++, kr += Sk) {
        const __m256 k_0 = _mm256_loadu_ps(kr), k_1 = _mm256_loadu_ps(kr + 8);
        for (int r = 0; r < RR; r++) {
          const __m256 qv = _mm256_broadcast_ss(q + r * d + c);
          a0[r] = _mm256_fmadd_ps(qv, k_0, a0[r]);
          a1[r] = _mm256_fmadd_ps(qv, k_1, a1[r]);
        }
      }
      for (int r = 0; r < RR; r++) {
        _mm256_storeu_ps(out + r * BK + j, a0[r]);
        _mm256_storeu_ps(out + r * BK + j + 8, a1[r]);
      }
    }
    for (; j + 8 <= nk; j += 8) {
      __m256 a0[RR];
      for (int r = 0; r < RR; r++) a0[r] = _mm256_setzero_ps();
      const float* kr = kT + k0 + j;
      for (int c = 0; c < d; c++, kr += Sk) {
        const __m256 kk = _mm256_loadu_ps(kr);
        for (int r = 0; r < RR; r++) a0[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + r * d + c), kk, a0[r]);
      }
      for (int r = 0; r < RR; r++) _mm256_storeu_ps(out + r * BK + j, a0[r]);
    }
    for (; j < nk; j++)
      for (int r = 0; r < RR; r++) {
        float acc = 0.f;
        for (int c = 0; c < d; c++) acc = std::fma(q[r * d + c], kT[(size_t)c * Sk + k0 + j], acc);
        out[r * BK + j] = acc;
      }
  }
};

// acc[i0 + r, c0 : c0+16] += Σ_j p[i0 + r, j]·v[k0 + j, c0 : c0+16] for RR rows, every 16-column block of d.
template <int RR>
struct PV16 {
  static void run(int i0, const float* s, const float* v, int k0, int nk, float* acc, int d) {
    for (int c0 = 0; c0 < d; c0 += 16) {
      __m256 a0[RR], a1[RR];
      for (int r = 0; r < RR; r++) {
        a0[r] = _mm256_loadu_ps(acc + (i0 + r) * d + c0);
        a1[r] = _mm256_loadu_ps(acc + (i0 + r) * d + c0 + 8);
      }
      const float* vr = v + (size_t)k0 * d + c0;
      for (int j = 0; j < nk; j++, vr += d) {
        const __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8);
        for (int r = 0; r < RR; r++) {
          const __m256 p = _mm256_broadcast_ss(s + (i0 + r) * BK + j);
          a0[r] = _mm256_fmadd_ps(p, v0, a0[r]);
          a1[r] = _mm256_fmadd_ps(p, v1, a1[r]);
        }
      }
      for (int r = 0; r < RR; r++) {
        _mm256_storeu_ps(acc + (i0 + r) * d + c0, a0[r]);
        _mm256_storeu_ps(acc + (i0 + r) * d + c0 + 8, a1[r]);
      }
    }
  }
};

inline void scores(int rows, const float* qs, int d, const float* kT, int Sk, int k0, int nk, float* s) {
  by_rows<Scores>(rows, qs, d, kT, Sk, k0, nk, s);
}

inline float row_max(const float* sr, int nk, float mx) {
  int j = 0;
  __m256 mxv = _mm256_set1_ps(mx);
  for (; j + 8 <= nk; j += 8) mxv = _mm256_max_ps(mxv, _mm256_loadu_ps(sr + j));
  mx = hmax(mxv);
  for (; j < nk; j++) mx = std::max(mx, sr[j]);
  return mx;
}

inline float exp_sum(float* sr, int nk, float mx) {
  int j = 0;
  const __m256 mv = _mm256_set1_ps(mx);
  __m256 sv = _mm256_setzero_ps();
  for (; j + 8 <= nk; j += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(sr + j), mv));
    _mm256_storeu_ps(sr + j, e);
    sv = _mm256_add_ps(sv, e);
  }
  float sum = hsum(sv);
  for (; j < nk; j++) {
    sr[j] = std::exp(sr[j] - mx);
    sum += sr[j];
  }
  return sum;
}

inline void pv(int rows, const float* s, const float* v, int k0, int nk, float* acc, int d) {
  if (d % 16 == 0) return by_rows<PV16>(rows, s, v, k0, nk, acc, d);
  portable::pv(rows, s, v, k0, nk, acc, d);
}

#include "attention_tile.inc"

}  // namespace avx2
}  // namespace
COGVIDEOX_TARGET_END
#endif
