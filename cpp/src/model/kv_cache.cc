#include "model/kv_cache.h"

#include <algorithm>

namespace longspec {

Status KvCache::Reserve(Backend& backend, int64_t capacity) {
  if (capacity <= capacity_) return Status::OK();
  dtype_ = backend.activation_dtype();
  element_size_ = static_cast<int64_t>(DTypeSize(dtype_));
  const int64_t row_bytes = head_dim_ * element_size_;
  const size_t bytes = static_cast<size_t>(num_kv_heads_) * capacity * row_bytes;
  std::vector<std::unique_ptr<DeviceBuffer>> k(num_layers_), v(num_layers_);
  for (int64_t l = 0; l < num_layers_; ++l) {
    LONGSPEC_ASSIGN_OR_RETURN(k[l], backend.Allocate(bytes));
    LONGSPEC_ASSIGN_OR_RETURN(v[l], backend.Allocate(bytes));
  }
  // Keep what is committed (for a ring cache: the whole ring).
  const int64_t keep = ring_ > 0 ? std::min<int64_t>(capacity_, ring_) : committed_;
  if (keep > 0) {
    for (int64_t l = 0; l < num_layers_; ++l) {
      for (int32_t h = 0; h < num_kv_heads_; ++h) {
        const size_t src_off = static_cast<size_t>(h) * capacity_ * row_bytes;
        const size_t dst_off = static_cast<size_t>(h) * capacity * row_bytes;
        backend.CopyDeviceToDevice(static_cast<char*>(k[l]->data()) + dst_off,
                                   static_cast<char*>(k_[l]->data()) + src_off, keep * row_bytes);
        backend.CopyDeviceToDevice(static_cast<char*>(v[l]->data()) + dst_off,
                                   static_cast<char*>(v_[l]->data()) + src_off, keep * row_bytes);
      }
    }
  }
  k_ = std::move(k);
  v_ = std::move(v);
  capacity_ = capacity;
  return Status::OK();
}

KvLayerView KvCache::layer(int64_t l) const {
  KvLayerView view;
  view.k = k_[l]->data();
  view.v = v_[l]->data();
  view.dtype = dtype_;
  view.capacity = capacity_;
  view.ring = ring_;
  view.num_kv_heads = num_kv_heads_;
  view.head_dim = head_dim_;
  return view;
}

int64_t KvCache::allocated_bytes() const { return capacity_ * bytes_per_slot(); }

int64_t KvCache::committed_bytes() const {
  if (ring_ > 0) return allocated_bytes();
  return committed_ * bytes_per_slot();
}

}  // namespace longspec
