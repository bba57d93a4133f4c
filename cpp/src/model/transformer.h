// Runs a Llama/Qwen2-style decoder over one planned step on a backend. Activation buffers are
// sized once (Reserve) for the largest step; Forward allocates nothing.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "model/kv_cache.h"
#include "model/model_config.h"
#include "model/step_plan.h"
#include "model/weights.h"

namespace longspec {

class TransformerRunner {
 public:
  TransformerRunner(const ModelConfig& config, const TransformerWeights& weights, Backend& backend)
      : config_(config), weights_(weights), backend_(backend) {}

  // Buffers for steps of up to `max_rows` rows, `max_logit_rows` of which need logits.
  Status Reserve(int32_t max_rows, int32_t max_logit_rows);

  // Runs all layers over the plan's rows, writing each row's K/V into `cache` at the plan's
  // slots, then the logits of the plan's logit rows into logits() rows [0, num_logit_rows).
  // Returns the final hidden states (pre-norm, [rows, hidden]).
  View Forward(const DevicePlan& plan, KvCache& cache);

  View logits() const { return logits_view_; }  // [max_logit_rows, vocab]
  const ModelConfig& config() const { return config_; }
  int32_t max_rows() const { return max_rows_; }

 private:
  View Alloc(int64_t rows, int64_t cols, std::unique_ptr<DeviceBuffer>* holder, Status* st);

  const ModelConfig& config_;
  const TransformerWeights& weights_;
  Backend& backend_;
  int32_t max_rows_ = 0;
  int32_t max_logit_rows_ = 0;
  std::unique_ptr<DeviceBuffer> h_buf_, xn_buf_, qkv_buf_, attn_p_buf_, attn_t_buf_, lse_buf_, tmp_buf_, gu_buf_,
      act_buf_, head_buf_, logits_buf_;
  View h_, xn_, qkv_, attn_p_, attn_t_, tmp_, gu_, act_, head_, logits_view_;
  float* lse_p_ = nullptr;
  float* lse_t_ = nullptr;
};

}  // namespace longspec
