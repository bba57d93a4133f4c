// Linear: weight packing, the thread split, and the portable GEMM kernel.
//
// Threads split the output into tiles of rows x panels, never k. Each output element is one fma
// chain over k whatever the split, so the split only decides who computes it.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "cpu/cpu_ops.h"

namespace longspec::cpu {

std::unique_ptr<CpuLinearWeight> PackLinear(const float* w, int64_t out_features, int64_t in_features,
                                            const float* bias) {
  auto lw = std::make_unique<CpuLinearWeight>();
  lw->out_features = out_features;
  lw->in_features = in_features;
  lw->has_bias = bias != nullptr;
  lw->num_panels = (out_features + kPanel - 1) / kPanel;
  const int64_t k_len = in_features;
  lw->packed = AlignedBuffer(static_cast<size_t>(lw->num_panels * k_len * kPanel) * sizeof(float));
  float* packed = lw->packed.as<float>();
  for (int64_t p = 0; p < lw->num_panels; ++p) {
    float* panel = packed + p * k_len * kPanel;
    for (int c = 0; c < kPanel; ++c) {
      const int64_t n = p * kPanel + c;
      if (n < out_features) {
        const float* src = w + n * k_len;
        for (int64_t k = 0; k < k_len; ++k) panel[k * kPanel + c] = src[k];
      } else {
        for (int64_t k = 0; k < k_len; ++k) panel[k * kPanel + c] = 0.0f;
      }
    }
  }
  if (bias != nullptr) {
    lw->bias = AlignedBuffer(static_cast<size_t>(lw->num_panels * kPanel) * sizeof(float));
    float* b = lw->bias.as<float>();
    std::fill(b, b + lw->num_panels * kPanel, 0.0f);
    std::memcpy(b, bias, static_cast<size_t>(out_features) * sizeof(float));
  }
  return lw;
}

void GemmPortable(const GemmArgs& a, int64_t row0, int64_t rows, int64_t panel0, int64_t panels) {
  for (int64_t r = row0; r < row0 + rows; ++r) {
    const float* x = a.x + r * a.x_stride;
    float* y = a.y + r * a.y_stride;
    for (int64_t p = panel0; p < panel0 + panels; ++p) {
      const float* panel = a.packed + p * a.k * kPanel;
      float acc[kPanel] = {};
      for (int64_t k = 0; k < a.k; ++k)
        for (int c = 0; c < kPanel; ++c) acc[c] = std::fma(x[k], panel[k * kPanel + c], acc[c]);
      const int64_t n0 = p * kPanel;
      const int cols = static_cast<int>(std::min<int64_t>(kPanel, a.n - n0));
      for (int c = 0; c < cols; ++c) y[n0 + c] = a.bias != nullptr ? acc[c] + a.bias[n0 + c] : acc[c];
    }
  }
}

void Linear(const CpuKernels& kern, int threads, View x, const CpuLinearWeight& w, View out) {
  assert(x.dtype == DType::kF32 && out.dtype == DType::kF32);
  assert(x.cols == w.in_features && out.cols == w.out_features && x.rows == out.rows);
  GemmArgs a;
  a.x = x.ptr<const float>();
  a.x_stride = x.stride;
  a.packed = w.packed.as<float>();
  a.bias = w.has_bias ? w.bias.as<float>() : nullptr;
  a.k = w.in_features;
  a.n = w.out_features;
  a.y = out.ptr<float>();
  a.y_stride = out.stride;
  const int64_t m = x.rows, panels = w.num_panels;
  if (m == 0 || panels == 0) return;
  // Below this many multiply-adds a parallel region costs more than it saves.
  constexpr int64_t kSerialWork = 1 << 15;
  if (threads <= 1 || m * panels * kPanel * std::max<int64_t>(a.k, 1) < kSerialWork) {
    kern.gemm(a, 0, m, 0, panels);
    return;
  }
  // Tiles of up to 96 rows x 4 panels handed out dynamically, so a thread that runs slower (a
  // busy machine) simply takes fewer of them. A tile's 4 panels of W stay in L2 while its rows
  // stream past them.
  constexpr int64_t kTileRows = 96, kTilePanels = 4;
  const int64_t row_tiles = (m + kTileRows - 1) / kTileRows;
  const int64_t panel_tiles = (panels + kTilePanels - 1) / kTilePanels;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < row_tiles * panel_tiles; ++t) {
    const int64_t r0 = (t / panel_tiles) * kTileRows, p0 = (t % panel_tiles) * kTilePanels;
    kern.gemm(a, r0, std::min(kTileRows, m - r0), p0, std::min(kTilePanels, panels - p0));
  }
}

}  // namespace longspec::cpu
