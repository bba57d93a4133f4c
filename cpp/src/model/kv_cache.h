// Per-layer K/V storage of one sequence, allocated once (no growth by reallocation: a captured
// graph holds its addresses).
//
// Target cache (ring == 0): slot p holds position p for p < committed; slots from `committed` on
// hold the current step's rows (a prefill chunk or a draft tree, node i at slot committed + i)
// until commit moves the accepted ones into place. Its capacity is the engine's context limit
// plus the largest tree.
// Ring cache (ring == W, the draft's sliding window): slots [0, W) hold the last W committed
// positions (p at p % W); slots [W, W + tree capacity) hold the current tree. Its size never
// depends on the context length.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"

namespace longspec {

class KvCache {
 public:
  KvCache(int64_t num_layers, int32_t num_kv_heads, int32_t head_dim, int32_t ring = 0)
      : num_layers_(num_layers), num_kv_heads_(num_kv_heads), head_dim_(head_dim), ring_(ring) {}

  // Allocates `capacity` slots of every layer in the backend's activation dtype, once. The
  // error of a failed allocation names the bytes asked for (and free, on a device).
  Status Allocate(Backend& backend, int64_t capacity);

  KvLayerView layer(int64_t l) const;
  int64_t capacity() const { return capacity_; }
  int32_t ring() const { return ring_; }
  int64_t committed() const { return committed_; }
  void set_committed(int64_t n) { committed_ = n; }
  // Slot of the first row of the current step (tree / chunk base).
  int64_t step_base_slot() const { return ring_ > 0 ? ring_ : committed_; }
  // Bytes allocated for K and V of all layers.
  int64_t allocated_bytes() const;
  // Bytes of K/V that the committed tokens occupy (the ring's size for a ring cache).
  int64_t committed_bytes() const;
  // Bytes from one layer's K (and V) to the next layer's: layers lie in one allocation.
  int64_t layer_stride_bytes() const { return 2 * static_cast<int64_t>(num_kv_heads_) * capacity_ * head_dim_ * element_size_; }
  int64_t bytes_per_slot() const { return 2 * num_layers_ * num_kv_heads_ * head_dim_ * element_size_; }

 private:
  int64_t num_layers_;
  int32_t num_kv_heads_;
  int32_t head_dim_;
  int32_t ring_;
  int64_t element_size_ = sizeof(float);
  DType dtype_ = DType::kF32;
  int64_t capacity_ = 0;
  int64_t committed_ = 0;
  std::unique_ptr<DeviceBuffer> storage_;  // [layer][K, V][kv head][capacity][head_dim]
};

}  // namespace longspec
