// The linear-layer GEMM of g_isa (cpu.h): gemm_avx512.h (6×64 micro-kernel) or gemm_avx2.h (6×16), one loop nest
// (gemm_loop.inc). No portable kernel: without AVX2 the library uses TensorFlow's matMul (faster than plain C++).
#pragma once

#include <cstdint>

#include "cpu.h"
#include "gemm_avx2.h"
#include "gemm_avx512.h"

namespace {

inline bool has_linear(Isa isa) { return isa == Isa::avx512 || isa == Isa::avx2; }

// y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), then GELU (tanh form) when `gelu`; W rows `ldw` floats apart.
void linear_forward(const float* x, int64_t M, int64_t K, const float* w, int64_t ldw, int64_t N, const float* bias,
                    float* y, int threads, bool gelu = false) {
#ifdef COGVIDEOX_X86
  if (g_isa == Isa::avx512) return avx512::gemm::linear_forward(x, M, K, w, ldw, N, bias, y, threads, gelu);
  if (g_isa == Isa::avx2) return avx2::gemm::linear_forward(x, M, K, w, ldw, N, bias, y, threads, gelu);
#endif
}

}  // namespace
