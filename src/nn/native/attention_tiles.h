// Tile sizes of the fused attention (flash_attention.h), shared by every ISA's kernels.
#pragma once

namespace {

#ifndef FA_BQ
#define FA_BQ 192
#endif
constexpr int BQ = FA_BQ;  // query rows per tile
#ifndef FA_BK
#define FA_BK 64
#endif
constexpr int BK = FA_BK;  // keys per tile

// Each ISA runs its row kernels K<6>, <4>, <2>, <1> over a tile's rows (as many rows per pass as registers allow).
#define COGVIDEOX_BY_ROWS                                     \
  template <template <int> class K, typename... A>            \
  inline void by_rows(int rows, A... args) {                  \
    int i0 = 0;                                               \
    for (; i0 + 6 <= rows; i0 += 6) K<6>::run(i0, args...);   \
    for (; i0 + 4 <= rows; i0 += 4) K<4>::run(i0, args...);   \
    for (; i0 + 2 <= rows; i0 += 2) K<2>::run(i0, args...);   \
    for (; i0 < rows; i0++) K<1>::run(i0, args...);           \
  }

}  // namespace
