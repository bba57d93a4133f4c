#include "model/kv_cache.h"

#include <string>

namespace longspec {

Status KvCache::Allocate(Backend& backend, int64_t capacity) {
  if (storage_ != nullptr) {
    if (capacity <= capacity_) return Status::OK();
    return FailedPreconditionError("KV cache of " + std::to_string(capacity_) + " slots cannot grow to " +
                                   std::to_string(capacity));
  }
  dtype_ = backend.activation_dtype();
  element_size_ = static_cast<int64_t>(DTypeSize(dtype_));
  const int64_t bytes = capacity * bytes_per_slot();
  auto buf = backend.Allocate(static_cast<size_t>(bytes));
  if (!buf.ok()) {
    return buf.status().WithContext("KV cache of " + std::to_string(capacity) + " positions (" +
                                    std::to_string(bytes >> 20) + " MiB)");
  }
  storage_ = std::move(buf).value();
  capacity_ = capacity;
  committed_ = 0;
  return Status::OK();
}

KvLayerView KvCache::layer(int64_t l) const {
  const size_t half = static_cast<size_t>(num_kv_heads_) * capacity_ * head_dim_ * element_size_;
  char* base = static_cast<char*>(storage_->data()) + 2 * half * static_cast<size_t>(l);
  KvLayerView view;
  view.k = base;
  view.v = base + half;
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
