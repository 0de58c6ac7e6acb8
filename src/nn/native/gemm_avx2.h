// fp32 matrix product for linear layers, AVX2 + FMA: y[M, N] = x[M, K] · W[N, K]ᵀ (+ b[N]), W in torch's [out, in]
// layout. Same loop nest as the AVX-512 kernel (gemm_loop.inc) with the classic 6×16 micro-kernel of 256-bit
// registers: 12 accumulators, 2 panel vectors and 1 broadcast, 15 of the 16 ymm registers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "parallel.h"
#include "simd_avx2.h"

#ifdef COGVIDEOX_X86
COGVIDEOX_TARGET_AVX2
namespace {
namespace avx2 {
namespace gemm {

#ifndef GEMM2_KC
#define GEMM2_KC 512
#endif
#ifndef GEMM2_MC
#define GEMM2_MC 144
#endif
constexpr int MR = 6, NR = 16;
// The AVX-512 kernel's blocking: a 32 KiB panel streams from L1/L2 while x's MR×KC rows stay in L1, MC rows of x in
// L2. Measured with the AVX2 path forced on an AVX-512 EPYC (2 threads, CPU time, shared machine): KC 512 / MC 144
// and 216 ≥ 384 / 144 ≥ 256 / 72 by 5–20 % on the DiT's shapes (fewer passes over y), and the same fp32 chains.
constexpr int KC = GEMM2_KC, MC = GEMM2_MC, NC = 4096;

// In-register transpose of an 8×8 float block (r[i] = row i → r[j] = column j).
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; h++) {
    u[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; j++) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// Packs Wᵀ[k0 : k0+kc, n0 : n0+NR] into one panel p[k·NR + j] (zero columns past N), 8×8 blocks at a time.
inline void pack_panel(const float* w, int64_t ldw, int N, int k0, int kc, int n0, float* dst) {
  __m256 r[8];
  for (int q = 0; q < NR / 8; q++) {
    const int n = n0 + q * 8;
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
      for (int i = 0; i < 8; i++)
        r[i] = n + i < N ? _mm256_loadu_ps(w + (int64_t)(n + i) * ldw + k0 + k) : _mm256_setzero_ps();
      transpose8(r);
      for (int j = 0; j < 8; j++) _mm256_store_ps(dst + (int64_t)(k + j) * NR + q * 8, r[j]);
    }
    for (; k < kc; k++)
      for (int i = 0; i < 8; i++) dst[(int64_t)k * NR + q * 8 + i] = n + i < N ? w[(int64_t)(n + i) * ldw + k0 + k] : 0.f;
  }
}

// c[6, 16] (ldc) = (first ? bias or 0 : c) + a[6, kc] (lda) · panel[kc, 16].
inline void micro(int kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* c, int64_t ldc,
                  bool first, const float* bias) {
  __m256 c0[MR], c1[MR];
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int r = 0; r < MR; r++) _mm_prefetch((const char*)(c + r * ldc), _MM_HINT_T0);
  const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
#pragma GCC unroll 4
  for (int k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a0 + k);
    c0[0] = _mm256_fmadd_ps(av, b0, c0[0]);
    c1[0] = _mm256_fmadd_ps(av, b1, c1[0]);
    av = _mm256_broadcast_ss(a1 + k);
    c0[1] = _mm256_fmadd_ps(av, b0, c0[1]);
    c1[1] = _mm256_fmadd_ps(av, b1, c1[1]);
    av = _mm256_broadcast_ss(a2 + k);
    c0[2] = _mm256_fmadd_ps(av, b0, c0[2]);
    c1[2] = _mm256_fmadd_ps(av, b1, c1[2]);
    av = _mm256_broadcast_ss(a3 + k);
    c0[3] = _mm256_fmadd_ps(av, b0, c0[3]);
    c1[3] = _mm256_fmadd_ps(av, b1, c1[3]);
    av = _mm256_broadcast_ss(a4 + k);
    c0[4] = _mm256_fmadd_ps(av, b0, c0[4]);
    c1[4] = _mm256_fmadd_ps(av, b1, c1[4]);
    av = _mm256_broadcast_ss(a5 + k);
    c0[5] = _mm256_fmadd_ps(av, b0, c0[5]);
    c1[5] = _mm256_fmadd_ps(av, b1, c1[5]);
    b += NR;
  }
  for (int r = 0; r < MR; r++) {
    float* cr = c + r * ldc;
    const float* base = first ? bias : cr;
    if (!base) {
      _mm256_storeu_ps(cr, c0[r]);
      _mm256_storeu_ps(cr + 8, c1[r]);
      continue;
    }
    _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(base), c0[r]));
    _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(base + 8), c1[r]));
  }
}

// GELU, tanh form, in place on n floats: x·sigmoid(x·(a + b·x²)), as avx512::gemm::gelu_tanh.
inline void gelu_tanh(float* v, int n) {
  const __m256 a = _mm256_set1_ps(1.5957691216057308f), b = _mm256_set1_ps(0.0713548162726009f);
  const __m256 one = _mm256_set1_ps(1.f);
  alignas(32) float tail[8];
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    float* p = v + i;
    if (m < 8) {
      std::fill(tail, tail + 8, 0.f);
      std::copy(p, p + m, tail);
      p = tail;
    }
    const __m256 x = _mm256_loadu_ps(p);
    const __m256 u = _mm256_mul_ps(x, _mm256_fmadd_ps(b, _mm256_mul_ps(x, x), a));
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), u));
    _mm256_storeu_ps(p, _mm256_div_ps(x, _mm256_add_ps(one, e)));
    if (m < 8) std::copy(tail, tail + m, v + i);
  }
}

#include "gemm_loop.inc"

}  // namespace gemm
}  // namespace avx2
}  // namespace
COGVIDEOX_TARGET_END
#endif
