// The fused attention's tile kernels in plain C++ (any CPU; the compiler's baseline vectorisation).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "attention_tiles.h"

namespace {
namespace portable {

inline void scores(int rows, const float* qs, int d, const float* kT, int Sk, int k0, int nk, float* s) {
  for (int i = 0; i < rows; i++) {
    float* sr = s + i * BK;
    for (int j = 0; j < nk; j++) sr[j] = 0.f;
    for (int c = 0; c < d; c++) {
      const float qv = qs[i * d + c];
      const float* kr = kT + (size_t)c * Sk + k0;
      for (int j = 0; j < nk; j++) sr[j] += qv * kr[j];
    }
  }
}

inline float row_max(const float* sr, int nk, float mx) {
  for (int j = 0; j < nk; j++) mx = std::max(mx, sr[j]);
  return mx;
}

inline float exp_sum(float* sr, int nk, float mx) {
  float sum = 0.f;
  for (int j = 0; j < nk; j++) {
    sr[j] = std::exp(sr[j] - mx);
    sum += sr[j];
  }
  return sum;
}

inline void pv(int rows, const float* s, const float* v, int k0, int nk, float* acc, int d) {
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

#include "attention_tile.inc"

}  // namespace portable
}  // namespace
