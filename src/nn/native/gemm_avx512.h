// fp32 matrix product for linear layers, AVX-512: y[M, N] = x[M, K] · W[N, K]ᵀ (+ b[N]), W in torch's [out, in]
// layout; the loop nest is gemm_loop.inc, shared with the AVX2 kernel (gemm_avx2.h).
//
// Why it exists: TensorFlow 2.21's CPU matMul (oneDNN) reaches 120–220 GFLOP/s on this machine's transformer shapes
// where PyTorch's MKL sgemm reaches 190–290 (bench/linear.ts), and the DiT is mostly matMul. This is the usual
// BLIS loop nest on AVX-512: a KC×NC block of Wᵀ is packed into 64-column panels (shared by the threads), the
// threads take MC-row blocks of x (read in place), and a 6×64 register micro-kernel (24 accumulators) does
// the products. Each KC slice of the sum starts from zero and is then added to y: shorter fp32 accumulation chains,
// errors like MKL's (max |error| vs float64 1.0–1.6× MKL's on the block shapes; 2048-long chains: 3×).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "parallel.h"
#include "simd_avx512.h"

#ifdef COGVIDEOX_X86
COGVIDEOX_TARGET_AVX512
namespace {
namespace avx512 {
namespace gemm {

constexpr int MR = 6, NR = 64;
// KC·NR floats (128 KiB) of a panel stay in L2 while x's MR×KC rows stream from L1. Measured on the Fun-2b/5b
// shapes (same process, interleaved with MKL): KC 512 ≥ 128–384 (≥ 640 is a little faster but its longer fp32
// chains double the error); MC 144 ≈ 288 ≥ 96 by 0–10 %; NC 4096 ≥ 1024.
constexpr int KC = 512, MC = 144, NC = 4096;

// In-register transpose of a 16×16 float block (r[i] = row i → r[j] = column j).
inline void transpose16(__m512 r[16]) {
  __m512 a[16], b[16];
  for (int i = 0; i < 8; i++) {
    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    const __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
    b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++) {
      a[8 * i + j] = _mm512_shuffle_f32x4(b[8 * i + j], b[8 * i + 4 + j], 0x88);
      a[8 * i + 4 + j] = _mm512_shuffle_f32x4(b[8 * i + j], b[8 * i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; j++) {
    r[j] = _mm512_shuffle_f32x4(a[j], a[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(a[j], a[8 + j], 0xdd);
  }
}

// Packs Wᵀ[k0 : k0+kc, n0 : n0+NR] into one panel p[k·NR + j] (zero columns past N), 16×16 blocks at a time.
inline void pack_panel(const float* w, int64_t ldw, int N, int k0, int kc, int n0, float* dst) {
  __m512 r[16];
  for (int q = 0; q < NR / 16; q++) {
    const int n = n0 + q * 16;
    for (int k = 0; k < kc; k += 16) {
      const int vk = std::min(16, kc - k);
      const __mmask16 km = vk == 16 ? (__mmask16)0xffff : (__mmask16)((1u << vk) - 1);
      for (int i = 0; i < 16; i++)
        r[i] = n + i < N ? _mm512_maskz_loadu_ps(km, w + (int64_t)(n + i) * ldw + k0 + k) : _mm512_setzero_ps();
      transpose16(r);
      for (int j = 0; j < vk; j++) _mm512_store_ps(dst + (int64_t)(k + j) * NR + q * 16, r[j]);
    }
  }
}

// c[6, 64] (ldc) = (first ? bias or 0 : c) + a[6, kc] (lda) · panel[kc, 64].
inline void micro(int kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* c, int64_t ldc,
                  bool first, const float* bias) {
  __m512 c0[MR], c1[MR], c2[MR], c3[MR];
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = c2[r] = c3[r] = _mm512_setzero_ps();
  // The 6×64 tile of c is read (or written) after the k loop: fetch it now (measured +3–15 % on the DiT's shapes).
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < NR; j += 16) _mm_prefetch((const char*)(c + r * ldc + j), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32), b3 = _mm512_load_ps(b + 48);
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
      c2[r] = _mm512_fmadd_ps(av, b2, c2[r]);
      c3[r] = _mm512_fmadd_ps(av, b3, c3[r]);
    }
    b += NR;
  }
  for (int r = 0; r < MR; r++) {
    float* cr = c + r * ldc;
    const float* base = first ? bias : cr;
    if (!base) {
      _mm512_storeu_ps(cr, c0[r]); _mm512_storeu_ps(cr + 16, c1[r]);
      _mm512_storeu_ps(cr + 32, c2[r]); _mm512_storeu_ps(cr + 48, c3[r]);
      continue;
    }
    _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(base), c0[r]));
    _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(base + 16), c1[r]));
    _mm512_storeu_ps(cr + 32, _mm512_add_ps(_mm512_loadu_ps(base + 32), c2[r]));
    _mm512_storeu_ps(cr + 48, _mm512_add_ps(_mm512_loadu_ps(base + 48), c3[r]));
  }
}

// GELU, tanh form, in place on n floats: x·sigmoid(x·(a + b·x²)) with a = 2√(2/π), b = 0.044715·a — the same
// function as 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) and the same form as src/nn/activations.ts.
inline void gelu_tanh(float* v, int n) {
  const __m512 a = _mm512_set1_ps(1.5957691216057308f), b = _mm512_set1_ps(0.0713548162726009f);
  const __m512 one = _mm512_set1_ps(1.f);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, v + i);
    const __m512 u = _mm512_mul_ps(x, _mm512_fmadd_ps(b, _mm512_mul_ps(x, x), a));
    // exp512 clamps below (−104 → 0); above, e^−u for u < −88.7 is +inf and x / inf = −0, as the formula gives.
    const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), u));
    _mm512_mask_storeu_ps(v + i, m, _mm512_div_ps(x, _mm512_add_ps(one, e)));
  }
}

#include "gemm_loop.inc"

}  // namespace gemm
}  // namespace avx512
}  // namespace
COGVIDEOX_TARGET_END
#endif
