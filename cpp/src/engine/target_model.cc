#include "engine/target_model.h"

#include <algorithm>
#include <cassert>

namespace longspec {

StatusOr<std::unique_ptr<TargetModel>> TargetModel::Load(const std::string& path, Backend& backend,
                                                         int32_t max_step_rows, int32_t prefill_chunk) {
  std::unique_ptr<TargetModel> t(new TargetModel());
  t->backend_ = &backend;
  LONGSPEC_ASSIGN_OR_RETURN(t->model_, LoadModel(path, backend));
  const ModelConfig& c = t->model_->config;
  t->max_step_rows_ = max_step_rows;
  t->prefill_chunk_ = prefill_chunk;
  t->runner_ = std::make_unique<TransformerRunner>(c, t->model_->weights, backend);
  const int32_t rows = std::max(max_step_rows, prefill_chunk);
  LONGSPEC_RETURN_IF_ERROR(t->runner_->Reserve(rows, max_step_rows));
  LONGSPEC_RETURN_IF_ERROR(t->device_plan_.Reserve(backend, rows, static_cast<int32_t>(c.head_dim)));
  t->cache_ = KvCache(c.num_layers, static_cast<int32_t>(c.num_kv_heads), static_cast<int32_t>(c.head_dim));
  t->rope_ = RopeTables(c.rope, c.head_dim);
  LONGSPEC_ASSIGN_OR_RETURN(t->move_buf_, backend.Allocate(2 * sizeof(int32_t) * (kMaxTreeDepth + 2)));
  LONGSPEC_ASSIGN_OR_RETURN(t->argmax_buf_, backend.Allocate(sizeof(int32_t) * (kMaxTreeNodes + 1)));
  return t;
}

Status TargetModel::Reset(int64_t positions) {
  cache_.set_committed(0);
  const int64_t rows = std::max(max_step_rows_, prefill_chunk_);
  int64_t want = positions + rows;
  if (want > cache_.capacity()) {
    // Round up so a run of slightly longer requests does not reallocate each time.
    want = (want + 1023) / 1024 * 1024;
  }
  return cache_.Reserve(*backend_, want);
}

Status TargetModel::EnsureStepRows(int32_t rows) {
  if (rows <= max_step_rows_) return Status::OK();
  const int32_t all_rows = std::max(rows, prefill_chunk_);
  LONGSPEC_RETURN_IF_ERROR(runner_->Reserve(all_rows, rows));
  LONGSPEC_RETURN_IF_ERROR(device_plan_.Reserve(*backend_, all_rows, static_cast<int32_t>(config().head_dim)));
  max_step_rows_ = rows;
  return Status::OK();
}

void TargetModel::RunPlan(const StepPlan& plan) {
  device_plan_.Upload(*backend_, plan);
  runner_->Forward(device_plan_, cache_);
}

Status TargetModel::Prefill(const std::vector<int32_t>& tokens, std::vector<float>* last_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (committed() + n + max_step_rows_ > cache_.capacity()) {
    return OutOfRangeError("prefill of " + std::to_string(n) + " tokens does not fit the reserved cache");
  }
  for (int64_t start = 0; start < n; start += prefill_chunk_) {
    const int32_t len = static_cast<int32_t>(std::min<int64_t>(prefill_chunk_, n - start));
    std::vector<int32_t> chunk(tokens.begin() + start, tokens.begin() + start + len);
    const bool last = start + len == n;
    std::vector<int32_t> logit_rows;
    if (last && last_logits != nullptr) logit_rows.push_back(len - 1);
    StepPlan plan = PlanStep(static_cast<int32_t>(committed()), chunk, ChainParents(len), rope_, 0, logit_rows);
    RunPlan(plan);
    cache_.set_committed(committed() + len);
  }
  if (last_logits != nullptr && n > 0) {
    const int64_t vocab = config().vocab_size;
    last_logits->resize(vocab);
    backend_->CopyToHost(last_logits->data(), runner_->logits().data, vocab * sizeof(float));
  }
  return Status::OK();
}

void TargetModel::RunStep(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  assert(n <= max_step_rows_);
  last_plan_ = PlanStep(static_cast<int32_t>(committed()), tokens, parents, rope_, 0, AllRows(n));
  RunPlan(last_plan_);
}

const float* TargetModel::Step(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents) {
  RunStep(tokens, parents);
  const int64_t vocab = config().vocab_size;
  host_logits_.resize(tokens.size() * vocab);
  backend_->CopyToHost(host_logits_.data(), runner_->logits().data, host_logits_.size() * sizeof(float));
  return host_logits_.data();
}

const int32_t* TargetModel::StepArgmax(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents) {
  RunStep(tokens, parents);
  const int32_t n = static_cast<int32_t>(tokens.size());
  int32_t* dev = static_cast<int32_t*>(argmax_buf_->data());
  backend_->Argmax(runner_->logits().Rows(0, n), dev);
  host_argmax_.resize(n);
  backend_->CopyToHost(host_argmax_.data(), dev, n * sizeof(int32_t));
  return host_argmax_.data();
}

void TargetModel::Commit(const std::vector<int32_t>& path) {
  const int32_t base = last_plan_.step_base;
  std::vector<int32_t> src, dst;  // only the entries that actually move
  for (size_t d = 0; d < path.size(); ++d) {
    assert(last_plan_.node_depths[path[d]] == static_cast<int32_t>(d));
    const int32_t from = base + path[d];
    const int32_t to = static_cast<int32_t>(committed() + d);
    if (from != to) {
      src.push_back(from);
      dst.push_back(to);
    }
  }
  if (!src.empty()) {
    int32_t* dev = static_cast<int32_t*>(move_buf_->data());
    const int32_t n = static_cast<int32_t>(src.size());
    backend_->CopyToDevice(dev, src.data(), n * sizeof(int32_t));
    backend_->CopyToDevice(dev + n, dst.data(), n * sizeof(int32_t));
    for (int64_t l = 0; l < config().num_layers; ++l) backend_->KvMove(cache_.layer(l), dev, dev + n, n);
  }
  cache_.set_committed(committed() + static_cast<int64_t>(path.size()));
}

}  // namespace longspec
