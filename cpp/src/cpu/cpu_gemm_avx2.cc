// AVX2 GEMM over packed panels: y[r][n] = fma chain over k ascending from 0, then + bias.
//
// Invariant: every tile shape runs the whole k loop in order on zeroed accumulators and adds
// the bias once at the end, so an output element's bits do not depend on the tile it fell in,
// on the number of rows in the call, or on the thread that computed it.
#if !defined(LONGSPEC_SKIP_AVX2)
#include <immintrin.h>

#include "cpu/cpu_kernels.h"
#include "cpu/cpu_simd_avx2.h"

namespace longspec::cpu {
namespace {

// Panels per tile for MR rows: enough independent accumulators (8 to 12) to cover the FMA
// latency, few enough to stay in the 16 ymm registers.
constexpr int PanelsFor(int mr) { return mr == 1 ? 4 : mr <= 3 ? 2 : 1; }

// Rows [r0, r0 + MR) x panels [p0, p0 + NP).
template <int MR, int NP>
static void Tile(const GemmArgs& a, int64_t r0, int64_t p0) {
  const int64_t k_len = a.k;
  const float* x[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) x[r] = a.x + (r0 + r) * a.x_stride;
  const float* w[NP];
#pragma GCC unroll 4
  for (int j = 0; j < NP; ++j) w[j] = a.packed + (p0 + j) * k_len * kPanel;

  __m256 c[MR][NP][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) c[r][j][0] = c[r][j][1] = _mm256_setzero_ps();

  for (int64_t k = 0; k < k_len; ++k) {
    __m256 w0[NP], w1[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      w0[j] = _mm256_load_ps(w[j] + k * kPanel);
      w1[j] = _mm256_load_ps(w[j] + k * kPanel + 8);
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 xb = _mm256_broadcast_ss(x[r] + k);
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) {
        c[r][j][0] = _mm256_fmadd_ps(xb, w0[j], c[r][j][0]);
        c[r][j][1] = _mm256_fmadd_ps(xb, w1[j], c[r][j][1]);
      }
    }
  }

#pragma GCC unroll 4
  for (int j = 0; j < NP; ++j) {
    const int64_t n0 = (p0 + j) * kPanel;
    const int64_t left = a.n - n0;
    const int cols = left < kPanel ? static_cast<int>(left) : kPanel;
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (a.bias != nullptr) {
      b0 = _mm256_load_ps(a.bias + n0);
      b1 = _mm256_load_ps(a.bias + n0 + 8);
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      __m256 y0 = c[r][j][0], y1 = c[r][j][1];
      if (a.bias != nullptr) {
        y0 = _mm256_add_ps(y0, b0);
        y1 = _mm256_add_ps(y1, b1);
      }
      float* y = a.y + (r0 + r) * a.y_stride + n0;
      if (cols == kPanel) {
        _mm256_storeu_ps(y, y0);
        _mm256_storeu_ps(y + 8, y1);
      } else {
        _mm256_maskstore_ps(y, TailMask(cols < 8 ? cols : 8), y0);
        _mm256_maskstore_ps(y + 8, TailMask(cols > 8 ? cols - 8 : 0), y1);
      }
    }
  }
}

// MR rows across panels [p0, p_end).
template <int MR>
static void RowTiles(const GemmArgs& a, int64_t r0, int64_t p0, int64_t p_end) {
  constexpr int kNp = PanelsFor(MR);
  int64_t p = p0;
  for (; p + kNp <= p_end; p += kNp) Tile<MR, kNp>(a, r0, p);
  for (; p < p_end; ++p) Tile<MR, 1>(a, r0, p);
}

static void RowTilesAny(int mr, const GemmArgs& a, int64_t r0, int64_t p0, int64_t p_end) {
  switch (mr) {
    case 1: RowTiles<1>(a, r0, p0, p_end); break;
    case 2: RowTiles<2>(a, r0, p0, p_end); break;
    case 3: RowTiles<3>(a, r0, p0, p_end); break;
    case 4: RowTiles<4>(a, r0, p0, p_end); break;
    case 5: RowTiles<5>(a, r0, p0, p_end); break;
    default: RowTiles<6>(a, r0, p0, p_end); break;
  }
}

}  // namespace

void GemmAvx2(const GemmArgs& a, int64_t row0, int64_t rows, int64_t panel0, int64_t panels) {
  constexpr int kMaxRows = 6;
  // Panels per L2-resident group: the group is reused by every row tile while the row tile's
  // slice of x stays in L1.
  constexpr int64_t kGroupBytes = 192 * 1024;
  int64_t group = kGroupBytes / ((a.k > 0 ? a.k : 1) * kPanel * static_cast<int64_t>(sizeof(float)));
  group = group < 1 ? 1 : group;
  if (rows <= kMaxRows) group = panels;  // one row tile: nothing to reuse, keep panel tiles whole
  const int64_t row_end = row0 + rows, panel_end = panel0 + panels;
  for (int64_t pg = panel0; pg < panel_end; pg += group) {
    const int64_t pe = pg + group < panel_end ? pg + group : panel_end;
    for (int64_t r = row0; r < row_end; r += kMaxRows) {
      const int64_t left = row_end - r;
      RowTilesAny(left < kMaxRows ? static_cast<int>(left) : kMaxRows, a, r, pg, pe);
    }
  }
}

}  // namespace longspec::cpu
#endif
