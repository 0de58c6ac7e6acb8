// Fused ("flash") scaled dot-product attention for CPU (part of the optional addon, addon.cc).
//
// Why it exists: TensorFlow 2.21's CPU ops, which the tensorflow backend calls, have no fused attention, and the
// unfused softmax(q·kᵀ)·v writes and re-reads a [B·H, n, S] score tensor several times: at 10⁴ tokens it is
// memory-bound and about 2× slower than PyTorch's fused CPU kernel (bench/attention.ts). Here each thread keeps a
// [192, 64] score tile in cache and uses the online softmax (running max m, running sum l), so the scores never go
// to memory. Same math as softmax(scale·q·kᵀ)·v; the only difference is summation order (≈1e-7 relative).
//
// flash_attention(q, k, v, out, BH, Sq, Sk, d, scale, threads) with arrays laid out [BH, S, d]; fills `out`
// [BH, Sq, d]. Tiles of 192 queries × 64 keys (64–288 × 64–256 measured within noise of each other). AVX-512 path when
// the CPU has it (scripts/build-native.mjs builds with -march=native), portable loops otherwise.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "parallel.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace {

#ifndef FA_BQ
#define FA_BQ 192
#endif
constexpr int BQ = FA_BQ;  // query rows per tile
#ifndef FA_BK
#define FA_BK 64
#endif
constexpr int BK = FA_BK;  // keys per tile

#ifdef __AVX512F__
// e^x for 16 lanes: n = round(x·log2 e), r = x − n·ln2 (two-part), degree-6 Taylor/minimax on |r| ≤ ln2/2, ×2ⁿ via
// scalef. Max relative error ≈ 2 ulp; x ≤ 0 here (scores minus the running max), −inf → 0.
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
#endif

#ifdef __AVX512F__
// s[i0 + r, 0:nk] = qs[i0 + r, :]·kT[:, k0 : k0 + nk] for RR rows: 64 keys per step in RR×4 accumulators.
template <int RR>
inline void scores_rows(const float* qs, int d, const float* kT, int Sk, int k0, int nk, float* s, int i0) {
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
    const __mmask16 mk = (__mmask16)((nk - j) >= 16 ? 0xFFFF : ((1u << (nk - j)) - 1));
    __m512 a[RR];
    for (int r = 0; r < RR; r++) a[r] = _mm512_setzero_ps();
    for (int c = 0; c < d; c++) {
      const __m512 kk = _mm512_maskz_loadu_ps(mk, kT + (size_t)c * Sk + k0 + j);
      for (int r = 0; r < RR; r++) a[r] = _mm512_fmadd_ps(_mm512_set1_ps(qs[(i0 + r) * d + c]), kk, a[r]);
    }
    for (int r = 0; r < RR; r++) _mm512_mask_storeu_ps(s + (i0 + r) * BK + j, mk, a[r]);
  }
}

// acc[i0 + r, 0:64] += Σ_j p[i0 + r, j]·v[k0 + j, 0:64] for RR rows (d = 64: 4 vectors per row, in registers).
template <int RR>
inline void pv_rows(const float* s, const float* v, int k0, int nk, float* acc, int i0) {
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

// Runs kernel<6>, then <4>, <2>, <1> over rows [0, rows): as many rows per pass as registers allow.
template <template <int> class K, typename... A>
inline void by_rows(int rows, A... args) {
  int i0 = 0;
  for (; i0 + 6 <= rows; i0 += 6) K<6>::run(i0, args...);
  for (; i0 + 4 <= rows; i0 += 4) K<4>::run(i0, args...);
  for (; i0 + 2 <= rows; i0 += 2) K<2>::run(i0, args...);
  for (; i0 < rows; i0++) K<1>::run(i0, args...);
}
template <int RR>
struct Scores {
  static void run(int i0, const float* qs, int d, const float* kT, int Sk, int k0, int nk, float* s) {
    scores_rows<RR>(qs, d, kT, Sk, k0, nk, s, i0);
  }
};
template <int RR>
struct PV {
  static void run(int i0, const float* s, const float* v, int k0, int nk, float* acc) { pv_rows<RR>(s, v, k0, nk, acc, i0); }
};
#endif

// One (head, query tile): out[rows, d] = softmax(scale·q·kᵀ)·v over all Sk keys. kT is this head's kᵀ [d, Sk].
void attend_tile(const float* q, const float* kT, const float* v, float* out, int rows, int Sk, int d, float scale,
                 float* s /* [BQ, BK] */, float* qs /* [BQ, d] */, float* acc /* [BQ, d] */) {
  float m[BQ], l[BQ];
  for (int i = 0; i < rows; i++) {
    m[i] = -INFINITY;
    l[i] = 0.f;
    for (int c = 0; c < d; c++) qs[i * d + c] = q[i * d + c] * scale;
  }
  std::memset(acc, 0, sizeof(float) * rows * d);
  for (int k0 = 0; k0 < Sk; k0 += BK) {
    const int nk = std::min(BK, Sk - k0);
    // scores s[i, j] = Σ_c qs[i, c]·kT[c, k0 + j]
#ifdef __AVX512F__
    by_rows<Scores>(rows, (const float*)qs, d, kT, Sk, k0, nk, s);
#else
    for (int i = 0; i < rows; i++) {
      float* sr = s + i * BK;
      for (int j = 0; j < nk; j++) sr[j] = 0.f;
      for (int c = 0; c < d; c++) {
        const float qv = qs[i * d + c];
        const float* kr = kT + (size_t)c * Sk + k0;
        for (int j = 0; j < nk; j++) sr[j] += qv * kr[j];
      }
    }
#endif
    // online softmax: rescale what was accumulated by e^(m_old − m_new), add this tile's e^(s − m_new)
    for (int i = 0; i < rows; i++) {
      float* sr = s + i * BK;
      float mx = m[i];
      int j = 0;
#ifdef __AVX512F__
      __m512 mxv = _mm512_set1_ps(mx);
      for (; j + 16 <= nk; j += 16) mxv = _mm512_max_ps(mxv, _mm512_loadu_ps(sr + j));
      mx = _mm512_reduce_max_ps(mxv);
#endif
      for (; j < nk; j++) mx = std::max(mx, sr[j]);
      const float corr = std::exp(m[i] - mx);  // m = −inf on the first tile → 0
      float sum = 0.f;
      j = 0;
#ifdef __AVX512F__
      const __m512 mv = _mm512_set1_ps(mx);
      __m512 sv = _mm512_setzero_ps();
      for (; j + 16 <= nk; j += 16) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(sr + j), mv));
        _mm512_storeu_ps(sr + j, e);
        sv = _mm512_add_ps(sv, e);
      }
      sum = _mm512_reduce_add_ps(sv);
#endif
      for (; j < nk; j++) {
        sr[j] = std::exp(sr[j] - mx);
        sum += sr[j];
      }
      l[i] = l[i] * corr + sum;
      m[i] = mx;
      if (corr != 1.f)
        for (int c = 0; c < d; c++) acc[i * d + c] *= corr;
    }
    // acc[i, :] += Σ_j p[i, j]·v[k0 + j, :]
#ifdef __AVX512F__
    if (d == 64) {
      by_rows<PV>(rows, (const float*)s, v, k0, nk, acc);
      continue;
    }
#endif
    for (int i = 0; i < rows; i++) {
      float* ar = acc + i * d;
      const float* pr = s + i * BK;
      for (int j = 0; j < nk; j++) {
        const float p = pr[j];
        const float* vr = v + (size_t)(k0 + j) * d;
        for (int c = 0; c < d; c++) ar[c] += p * vr[c];
      }
    }
  }
  for (int i = 0; i < rows; i++) {
    const float inv = 1.f / l[i];
    for (int c = 0; c < d; c++) out[i * d + c] = acc[i * d + c] * inv;
  }
}

void flash_attention(const float* q, const float* k, const float* v, float* out, int64_t BH, int64_t Sq, int64_t Sk,
                     int d, float scale, int threads) {
  // kᵀ per head, [BH, d, Sk]: the score micro-kernel then reads 64 consecutive keys per d.
  std::vector<float> kT((size_t)BH * d * Sk);
  parallel_for(BH, (int)std::min<int64_t>(threads, BH), [&](int64_t h, int) {
    const float* kh = k + (size_t)h * Sk * d;
    float* th = kT.data() + (size_t)h * d * Sk;
    for (int64_t j = 0; j < Sk; j++)
      for (int c = 0; c < d; c++) th[(size_t)c * Sk + j] = kh[j * d + c];
  });
  const int64_t tiles = (Sq + BQ - 1) / BQ;
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, BH * tiles));
  std::vector<std::vector<float>> scratch(threads, std::vector<float>(BQ * BK + 2 * BQ * d));
  parallel_for(BH * tiles, threads, [&](int64_t t, int worker) {
    float* s = scratch[worker].data();
    const int64_t h = t / tiles, q0 = (t % tiles) * BQ;
    const int rows = (int)std::min<int64_t>(BQ, Sq - q0);
    attend_tile(q + ((size_t)h * Sq + q0) * d, kT.data() + (size_t)h * d * Sk, v + (size_t)h * Sk * d,
                out + ((size_t)h * Sq + q0) * d, rows, (int)Sk, d, scale, s, s + BQ * BK, s + BQ * BK + BQ * d);
  });
}

}  // namespace
