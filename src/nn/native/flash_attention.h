// Fused ("flash") scaled dot-product attention for CPU (part of the optional addon, addon.cc).
//
// Why it exists: TensorFlow 2.21's CPU ops, which the tensorflow backend calls, have no fused attention, and the
// unfused softmax(q·kᵀ)·v writes and re-reads a [B·H, n, S] score tensor several times: at 10⁴ tokens it is
// memory-bound and about 2× slower than PyTorch's fused CPU kernel (bench/attention.ts). Here each thread keeps a
// [192, 64] score tile in cache and uses the online softmax (running max m, running sum l), so the scores never go
// to memory. Same math as softmax(scale·q·kᵀ)·v; the only difference is summation order (≈1e-7 relative).
//
// flash_attention(q, k, v, out, BH, Sq, Sk, d, scale, threads) with arrays laid out [BH, S, d]; fills `out`
// [BH, Sq, d]. Tiles of 192 queries × 64 keys (64–288 × 64–256 measured within noise of each other). The tile
// kernel is the one of g_isa (cpu.h): attention_avx512.h, attention_avx2.h or attention_portable.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "attention_avx2.h"
#include "attention_avx512.h"
#include "attention_portable.h"
#include "cpu.h"
#include "parallel.h"

namespace {

using TileFn = void (*)(const float*, const float*, const float*, float*, int, int, int, float, float*, float*, float*);

inline TileFn attention_tile_for(Isa isa) {
#ifdef COGVIDEOX_X86
  if (isa == Isa::avx512) return avx512::attend_tile;
  if (isa == Isa::avx2) return avx2::attend_tile;
#endif
  (void)isa;
  return portable::attend_tile;
}

void flash_attention(const float* q, const float* k, const float* v, float* out, int64_t BH, int64_t Sq, int64_t Sk,
                     int d, float scale, int threads) {
  const TileFn tile = attention_tile_for(g_isa);
  // kᵀ per head, [BH, d, Sk]: the score micro-kernel then reads consecutive keys per d.
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
    tile(q + ((size_t)h * Sq + q0) * d, kT.data() + (size_t)h * d * Sk, v + (size_t)h * Sk * d,
         out + ((size_t)h * Sq + q0) * d, rows, (int)Sk, d, scale, s, s + BQ * BK, s + BQ * BK + BQ * d);
  });
}

}  // namespace
