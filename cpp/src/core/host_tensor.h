// A dense fp32 tensor in host memory, row-major (last dimension fastest). What the loaders
// hand to the model builder: every on-disk dtype is converted or dequantised to this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"

namespace longspec {

struct HostTensor {
  std::vector<int64_t> shape;  // row-major; a Linear weight is [out_features, in_features]
  AlignedBuffer storage;       // numel() floats

  HostTensor() = default;
  explicit HostTensor(std::vector<int64_t> s) : shape(std::move(s)), storage(NumelOf(shape) * sizeof(float)) {}

  static int64_t NumelOf(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
  int64_t numel() const { return NumelOf(shape); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  float* data() { return storage.as<float>(); }
  const float* data() const { return storage.as<float>(); }
  std::string ShapeString() const;  // "[49152, 576]"
};

}  // namespace longspec
