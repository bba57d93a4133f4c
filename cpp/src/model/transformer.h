// Runs a Llama/Qwen2-style decoder over one planned step on a backend. Scratch buffers are
// sized once (Reserve) for the largest step; Forward allocates nothing, so a backend may capture
// it as a graph.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "model/kv_cache.h"
#include "model/model_config.h"
#include "model/step_plan.h"
#include "model/weights.h"

namespace longspec {

// What a step leaves for the caller: the logits of the plan's logit rows (fp32), only their
// argmax ids, or nothing (a prefill chunk that is not the last).
enum class StepOutput { kNone, kLogits, kArgmax };

class TransformerRunner {
 public:
  TransformerRunner(const ModelConfig& config, const TransformerWeights& weights, Backend& backend)
      : config_(config), weights_(weights), backend_(backend) {}

  // Buffers for steps of up to `max_rows` rows, `max_logit_rows` of which need logits, over a
  // cache of up to `max_kv_len` positions. *moved says whether the buffers were reallocated
  // (graphs captured over the old ones must not replay).
  Status Reserve(int32_t max_rows, int32_t max_logit_rows, int64_t max_kv_len, bool* moved);

  // Runs all layers over the plan's rows, writing each row's K/V into `cache` at the plan's
  // slots, then the output of the plan's logit rows. kv_bound >= plan.max_prefix_len sizes the
  // attention launch (a captured graph passes its bucket's bound). A piece of the step, layers
  // [layer_begin, layer_end): the embedding comes with layer 0 and the output with the last
  // layer; pieces run in order give the whole step's work, kernel for kernel.
  void Forward(const DevicePlan& plan, KvCache& cache, StepOutput output, int32_t kv_bound, int64_t layer_begin = 0,
               int64_t layer_end = -1);

  View logits() const { return logits_; }          // [max_logit_rows, vocab] fp32
  const int32_t* argmax() const { return ids_; }   // [max_logit_rows], backend memory
  View hidden() const { return h_; }               // [max_rows, hidden] fp32 residual (pre final norm)
  const ModelConfig& config() const { return config_; }
  int32_t max_rows() const { return max_rows_; }
  int32_t max_logit_rows() const { return max_logit_rows_; }

 private:
  const ModelConfig& config_;
  const TransformerWeights& weights_;
  Backend& backend_;
  int32_t max_rows_ = 0;
  int32_t max_logit_rows_ = 0;
  int64_t max_kv_len_ = 0;
  std::unique_ptr<DeviceBuffer> act_buf_, f32_buf_, ws_buf_;
  View h_, xn_, qkv_, attn_p_, attn_t_, tmp_, gu_, act_, head_, head_n_, logits_;
  float* lse_p_ = nullptr;
  float* lse_t_ = nullptr;
  int32_t* ids_ = nullptr;
  size_t ws_bytes_ = 0;
};

// Carves 2-D views out of one allocation (64-byte aligned each).
class ViewArena {
 public:
  // Adds a [rows, cols] view of `dtype`; returns its index.
  size_t Add(int64_t rows, int64_t cols, DType dtype);
  size_t bytes() const { return bytes_; }
  // The views, once `base` (bytes() long) exists.
  View Get(size_t index, void* base) const;

 private:
  struct Entry {
    size_t offset;
    int64_t rows, cols;
    DType dtype;
  };
  std::vector<Entry> entries_;
  size_t bytes_ = 0;
};

}  // namespace longspec
