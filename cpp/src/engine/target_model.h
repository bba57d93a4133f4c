// The target model of one sequence: weights, runner, KV cache and the step planner.
//
//   Reset(capacity)  -> empty sequence with room for `capacity` positions (plus a step's rows)
//   Prefill(tokens)  -> runs and commits a prompt chunk by chunk; logits of the last token
//   Step(tokens, parents) -> runs a chain or tree at the committed end without committing;
//                           logits of every row
//   Commit(path)     -> keeps the listed rows of the last Step (root first, each the child of
//                       the one before) by moving their K/V into contiguous slots
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/kv_cache.h"
#include "model/model_loader.h"
#include "model/step_plan.h"
#include "model/transformer.h"

namespace longspec {

class TargetModel {
 public:
  static StatusOr<std::unique_ptr<TargetModel>> Load(const std::string& path, Backend& backend, int32_t max_step_rows,
                                                     int32_t prefill_chunk);

  const ModelConfig& config() const { return model_->config; }
  const ModelInfo& info() const { return model_->info; }
  const TransformerWeights& weights() const { return model_->weights; }
  KvCache& cache() { return cache_; }
  const RopeTables& rope() const { return rope_; }
  int64_t committed() const { return cache_.committed(); }
  int32_t max_step_rows() const { return max_step_rows_; }

  // Empties the sequence and makes room for `positions` committed positions plus one step.
  Status Reset(int64_t positions);
  // Makes steps of up to `rows` rows possible (grows buffers; keeps the sequence).
  Status EnsureStepRows(int32_t rows);
  // Runs `tokens` as chunks of at most prefill_chunk rows and commits them. When `last_logits`
  // is given, it receives the logits of the last token.
  Status Prefill(const std::vector<int32_t>& tokens, std::vector<float>* last_logits);
  // Runs one step (<= max_step_rows rows) without committing. Returns host logits [rows, vocab].
  const float* Step(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents);
  // The same step for greedy decoding: returns each row's argmax token (host, [rows]) and moves
  // only those ids off the device, not the logits.
  const int32_t* StepArgmax(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents);
  void Commit(const std::vector<int32_t>& path);

 private:
  TargetModel() = default;
  void RunPlan(const StepPlan& plan);
  void RunStep(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents);

  Backend* backend_ = nullptr;
  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<TransformerRunner> runner_;
  KvCache cache_{0, 0, 0};
  DevicePlan device_plan_;
  RopeTables rope_;
  StepPlan last_plan_;
  int32_t max_step_rows_ = 0;
  int32_t prefill_chunk_ = 0;
  std::vector<float> host_logits_;
  std::vector<int32_t> host_argmax_;
  std::unique_ptr<DeviceBuffer> argmax_buf_;
  std::unique_ptr<DeviceBuffer> move_buf_;
};

}  // namespace longspec
