// fp32 matrix product for linear layers: y[M, N] = x[M, K] · W[N, K]ᵀ (+ b[N]), W in torch's [out, in] layout.
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

#include "flash_attention.h"  // exp512
#include "parallel.h"

#ifdef __AVX512F__
#include <immintrin.h>

namespace {
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

// Rows [i0, i1) × panels [p0, p1) of y for one packed (pc, jc) block; `gelu` on the last K slice.
inline void row_block(const float* x, int64_t K, const float* panels, const float* bias, float* y, int64_t N, int i0,
                      int i1, int p0, int p1, int pc, int kc, int jc, int nc, bool gelu) {
  alignas(64) float edge[MR * NR];
  alignas(64) float ebias[NR];
  std::vector<float> pad;  // a copy of the last rows, padded with zero rows
  for (int jr = p0 * NR; jr < std::min(nc, p1 * NR); jr += NR) {
    const int vc = std::min(NR, nc - jr);
    const float* panel = panels + (int64_t)(jr / NR) * kc * NR;
    const float* b = nullptr;
    if (bias && pc == 0) {
      if (vc == NR) b = bias + jc + jr;
      else {
        for (int j = 0; j < NR; j++) ebias[j] = j < vc ? bias[jc + jr + j] : 0.f;
        b = ebias;
      }
    }
    for (int ir = i0; ir < i1; ir += MR) {
      const int vr = std::min(MR, i1 - ir);
      float* c = y + (int64_t)ir * N + jc + jr;
      const float* a = x + (int64_t)ir * K + pc;
      int64_t lda = K;
      if (vr < MR) {
        if (pad.empty()) {
          pad.assign((size_t)MR * kc, 0.f);
          for (int r = 0; r < vr; r++) std::memcpy(pad.data() + (size_t)r * kc, a + r * K, sizeof(float) * kc);
        }
        a = pad.data();
        lda = kc;
      }
      if (vr == MR && vc == NR) {
        micro(kc, a, lda, panel, c, N, pc == 0, b);
        if (gelu)
          for (int r = 0; r < MR; r++) gelu_tanh(c + r * N, NR);
        continue;
      }
      if (pc != 0)
        for (int r = 0; r < vr; r++) std::memcpy(edge + r * NR, c + r * N, sizeof(float) * vc);
      micro(kc, a, lda, panel, edge, NR, pc == 0, b);
      if (gelu) gelu_tanh(edge, vr * NR);
      for (int r = 0; r < vr; r++) std::memcpy(c + r * N, edge + r * NR, sizeof(float) * vc);
    }
  }
}

}  // namespace gemm

// y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), then GELU (tanh form) when `gelu`. W rows are `ldw` floats apart (≥ K:
// a column slice of a wider weight).
void linear_forward(const float* x, int64_t M, int64_t K, const float* w, int64_t ldw, int64_t N, const float* bias,
                    float* y, int threads, bool gelu = false) {
  using namespace gemm;
  // Row block height: MC, lowered (in MR steps) until the blocks split evenly over the threads when there are few.
  int mc = MC;
  for (int h = MC; h >= MR && threads > 1; h -= MR) {
    const int64_t blocks = (M + h - 1) / h;
    if (blocks >= 8 * threads) break;
    if (blocks % threads == 0) { mc = h; break; }
  }
  std::vector<float> packed;
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int nc = (int)std::min<int64_t>(NC, N - jc), npanels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int kc = (int)std::min<int64_t>(KC, K - pc);
      packed.resize((size_t)npanels * kc * NR + 16);
      float* panels = (float*)(((uintptr_t)packed.data() + 63) & ~(uintptr_t)63);  // aligned loads in the micro-kernel
      parallel_for(npanels, std::min(threads, npanels), [&](int64_t p, int) {
        pack_panel(w, ldw, (int)N, (int)pc, kc, (int)(jc + p * NR), panels + p * kc * NR);
      });
      // Work items: mc-row blocks, split into panel groups until there are ≥ 16 per thread: with small items the
      // threads finish the slice together even when the machine is shared (measured +10–15 % over 2 per thread).
      const int64_t blocks = (M + mc - 1) / mc;
      const int groups = blocks >= 16 * threads ? 1 : (int)std::min<int64_t>(npanels, (16 * threads + blocks - 1) / blocks);
      parallel_for(blocks * groups, (int)std::min<int64_t>(threads, blocks * groups), [&](int64_t t, int) {
        const int64_t blk = t / groups, g = t % groups;
        const int i0 = (int)(blk * mc), i1 = (int)std::min<int64_t>(M, i0 + mc);
        row_block(x, K, panels, bias, y, N, i0, i1, (int)(g * npanels / groups), (int)((g + 1) * npanels / groups),
                  (int)pc, kc, (int)jc, nc, gelu && pc + kc == K);
      });
    }
  }
}

}  // namespace
#endif  // __AVX512F__
