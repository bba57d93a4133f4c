// A dense tensor in host memory, row-major (last dimension fastest), of one element type. What
// the loaders hand to the model builder: a checkpoint's bf16/f16 data arrives as it is stored,
// anything else (GGUF quantised blocks, f32 asked as bf16) is converted once, tensor by tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/dtype.h"

namespace longspec {

struct HostTensor {
  std::vector<int64_t> shape;  // row-major; a Linear weight is [out_features, in_features]
  DType dtype = DType::kF32;
  AlignedBuffer storage;       // numel() elements of dtype

  HostTensor() = default;
  // Uninitialised storage. Throws std::bad_alloc when out of memory.
  explicit HostTensor(std::vector<int64_t> s, DType t = DType::kF32)
      : shape(std::move(s)), dtype(t), storage(static_cast<size_t>(NumelOf(shape)) * DTypeSize(t)) {}

  static int64_t NumelOf(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
  int64_t numel() const { return NumelOf(shape); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  size_t element_size() const { return DTypeSize(dtype); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  void* raw() { return storage.data(); }
  const void* raw() const { return storage.data(); }
  // fp32 access; only for dtype == kF32.
  float* data() { return storage.as<float>(); }
  const float* data() const { return storage.as<float>(); }
  std::string ShapeString() const;  // "[49152, 576]"
  // A copy converted to `to` (the same tensor when already of that type).
  HostTensor ConvertedTo(DType to) const;
};

}  // namespace longspec
