// AVX-512 helpers shared by the AVX-512 kernels (attention_avx512.h, gemm_avx512.h, norm.h).
#pragma once

#include "cpu.h"

#ifdef COGVIDEOX_X86
#include <immintrin.h>

COGVIDEOX_TARGET_AVX512
namespace {
namespace avx512 {

// e^x for 16 lanes: n = round(x·log2 e), r = x − n·ln2 (two-part), degree-6 Taylor/minimax on |r| ≤ ln2/2, ×2ⁿ via
// scalef. Max relative error ≈ 2 ulp; x ≤ 0 in the softmax (scores minus the running max), −inf → 0.
inline __m512 exp512(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-103.9720840454f);
  x = _mm512_max_ps(x, lo);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

inline __mmask16 tail_mask(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

}  // namespace avx512
}  // namespace
COGVIDEOX_TARGET_END
#endif
