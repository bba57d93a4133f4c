#include "model/target_model.h"

#include <algorithm>
#include <cassert>
#include <vector>

#include "longspec/config.h"

namespace longspec {

namespace {

// Steps of at most this many rows are captured (decode and verification; not prefill chunks).
constexpr int32_t kMaxGraphRows = kMaxTreeNodes + 1;

// Layer boundaries of a verification's graphs: pieces of 2, 4, 8, ... layers (the last takes
// what is left once less than twice its size remains). The device starts no kernel of a graph
// before its launch returns, and a launch takes the host longer the more kernels it holds; in
// pieces the device starts after the first layers' launch and each next piece is launched
// while the previous ones run. Measured on an H200: 1-5% less per token for SmolLM2's trees, at
// ~12 us more device time a verification (no programmatic overlap across a piece boundary;
// bench/results/gpu_round_pieces_2026-12-01.md).
std::vector<int64_t> PieceBounds(int64_t num_layers, bool pieces) {
  std::vector<int64_t> bounds{0};
  int64_t size = 2;
  while (bounds.back() < num_layers) {
    const int64_t left = num_layers - bounds.back();
    bounds.push_back(!pieces || left < 2 * size ? num_layers : bounds.back() + size);
    size *= 2;
  }
  return bounds;
}

}  // namespace

StatusOr<std::unique_ptr<TargetModel>> TargetModel::Load(const std::string& path, Backend& backend,
                                                         int32_t max_step_rows, int32_t prefill_chunk) {
  std::unique_ptr<TargetModel> t(new TargetModel());
  t->backend_ = &backend;
  t->path_ = path;
  LONGSPEC_ASSIGN_OR_RETURN(t->model_, LoadModel(path, backend));
  const ModelConfig& c = t->model_->config;
  t->prefill_chunk_ = prefill_chunk;
  t->runner_ = std::make_unique<TransformerRunner>(c, t->model_->weights, backend);
  t->rope_ = RopeTables(c.rope, c.head_dim);
  t->whole_bounds_ = PieceBounds(c.num_layers, false);
  t->piece_bounds_ = PieceBounds(c.num_layers, t->verify_pieces_);
  LONGSPEC_RETURN_IF_ERROR(t->EnsureCapacity(max_step_rows, 0));
  return t;
}

Status TargetModel::EnsureCapacity(int32_t rows, int64_t max_context) {
  if (rows <= max_step_rows_ && max_context <= max_context_) return Status::OK();
  rows = std::max(rows, max_step_rows_);
  max_context = std::max(max_context, max_context_);
  const int32_t all_rows = std::max(rows, prefill_chunk_);
  bool moved = false;
  LONGSPEC_RETURN_IF_ERROR(runner_->Reserve(all_rows, rows, max_context + kMaxTreeNodes + 1, &moved));
  // Every captured graph holds the runner's activation and workspace addresses: once they move,
  // replaying one would read and write freed memory (a request with a larger tree than the
  // engine's earlier requests did exactly that, on the GPU).
  if (moved) graphs_.clear();
  max_step_rows_ = rows;
  max_context_ = max_context;
  return Status::OK();
}

Status TargetModel::Execute(TargetSequence& seq, const StepPlan& plan, StepOutput output, bool graphable,
                            const DeviceTree* fill) {
  Backend& be = *backend_;
  seq.device_plan_.Upload(be, plan);
  if (fill != nullptr) seq.device_plan_.FillFromTree(be, *fill, plan.first_row, plan.step_base);
  seq.last_step_captured_ = false;
  if (!graphable || !be.SupportsGraphs() || plan.num_rows > kMaxGraphRows) {
    runner_->Forward(seq.device_plan_, seq.cache_, output, plan.max_prefix_len);
    return Status::OK();
  }
  // The bucket bounds the attention launch; never past the cache (the workspace is sized for it).
  const int32_t bucket = static_cast<int32_t>(
      std::min<int64_t>(KvBucket(static_cast<int64_t>(plan.committed) + plan.num_rows), seq.cache_.capacity()));
  // Plain decode steps are one graph: the host launches the next step while this one runs.
  const std::vector<int64_t>& bounds = fill != nullptr ? piece_bounds_ : whole_bounds_;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    const auto key = std::make_tuple(static_cast<const TargetSequence*>(&seq), plan.num_rows, static_cast<int>(output),
                                     bucket, bounds[i], bounds[i + 1]);
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      LONGSPEC_RETURN_IF_ERROR(be.BeginCapture());
      runner_->Forward(seq.device_plan_, seq.cache_, output, bucket, bounds[i], bounds[i + 1]);
      LONGSPEC_ASSIGN_OR_RETURN(auto graph, be.EndCapture());
      it = graphs_.emplace(key, std::move(graph)).first;
      seq.last_step_captured_ = true;
    }
    be.Replay(*it->second);
  }
  return Status::OK();
}

TargetSequence::TargetSequence(TargetModel& model)
    : model_(model),
      cache_(model.config().num_layers, static_cast<int32_t>(model.config().num_kv_heads),
             static_cast<int32_t>(model.config().head_dim)) {}

TargetSequence::~TargetSequence() {
  // Graphs captured over this sequence's buffers die with it.
  for (auto it = model_.graphs_.begin(); it != model_.graphs_.end();) {
    it = std::get<0>(it->first) == this ? model_.graphs_.erase(it) : std::next(it);
  }
}

StatusOr<std::unique_ptr<TargetSequence>> TargetSequence::Create(TargetModel& model, int64_t max_positions) {
  std::unique_ptr<TargetSequence> s(new TargetSequence(model));
  Backend& be = model.backend();
  s->max_positions_ = max_positions;
  LONGSPEC_RETURN_IF_ERROR(model.EnsureCapacity(model.max_step_rows(), max_positions));
  // Tree rows sit past the committed end: room for the largest tree a request may ask for.
  LONGSPEC_RETURN_IF_ERROR(s->cache_.Allocate(be, max_positions + kMaxTreeNodes + 1));
  const int32_t rows = std::max(kMaxTreeNodes + 1, model.prefill_chunk());
  LONGSPEC_RETURN_IF_ERROR(s->device_plan_.Reserve(be, rows, static_cast<int32_t>(model.config().head_dim)));
  LONGSPEC_ASSIGN_OR_RETURN(s->move_buf_, be.Allocate(2 * sizeof(int32_t) * (kMaxTreeDepth + 2)));
  return s;
}

Status TargetSequence::Prefill(const std::vector<int32_t>& tokens, std::vector<float>* last_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (committed() + n > max_positions_) {
    return OutOfRangeError("prefill of " + std::to_string(n) + " tokens after " + std::to_string(committed()) +
                           " does not fit the cache of " + std::to_string(max_positions_) + " positions");
  }
  const int32_t chunk_rows = model_.prefill_chunk();
  for (int64_t start = 0; start < n; start += chunk_rows) {
    const int32_t len = static_cast<int32_t>(std::min<int64_t>(chunk_rows, n - start));
    std::vector<int32_t> chunk(tokens.begin() + start, tokens.begin() + start + len);
    const bool last = start + len == n;
    std::vector<int32_t> logit_rows;
    if (last && last_logits != nullptr) logit_rows.push_back(len - 1);
    StepPlan plan = PlanStep(static_cast<int32_t>(committed()), chunk, ChainParents(len), model_.rope(), 0, logit_rows);
    LONGSPEC_RETURN_IF_ERROR(
        model_.Execute(*this, plan, logit_rows.empty() ? StepOutput::kNone : StepOutput::kLogits, false));
    cache_.set_committed(committed() + len);
  }
  Backend& be = model_.backend();
  if (last_logits != nullptr && n > 0) {
    const int64_t vocab = model_.config().vocab_size;
    last_logits->resize(vocab);
    be.CopyToHost(last_logits->data(), model_.runner_->logits().data, vocab * sizeof(float));
  }
  return be.LastError();
}

Status TargetSequence::RunStep(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents,
                               StepOutput output, int32_t first_row) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  if (first_row < 0 || first_row >= n || parents.size() != tokens.size()) {
    return InvalidArgumentError("a step runs nodes [first_row, n) of a tree of n >= 1 nodes with one parent each");
  }
  const int32_t rows = n - first_row;
  if (rows > model_.max_step_rows()) {
    return FailedPreconditionError("a step of " + std::to_string(rows) + " rows exceeds the reserved " +
                                   std::to_string(model_.max_step_rows()));
  }
  if (committed() + n > cache_.capacity()) return OutOfRangeError("step does not fit the KV cache");
  last_plan_ = PlanStep(static_cast<int32_t>(committed()), tokens, parents, model_.rope(), 0, AllRows(rows), first_row);
  return model_.Execute(*this, last_plan_, output, true);
}

StatusOr<const float*> TargetSequence::Step(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents,
                                            int32_t first_row) {
  LONGSPEC_RETURN_IF_ERROR(RunStep(tokens, parents, StepOutput::kLogits, first_row));
  const int64_t vocab = model_.config().vocab_size;
  host_logits_.resize((tokens.size() - first_row) * vocab);
  Backend& be = model_.backend();
  be.CopyToHost(host_logits_.data(), model_.runner_->logits().data, host_logits_.size() * sizeof(float));
  LONGSPEC_RETURN_IF_ERROR(be.LastError());
  return static_cast<const float*>(host_logits_.data());
}

StatusOr<const int32_t*> TargetSequence::StepArgmax(const std::vector<int32_t>& tokens,
                                                    const std::vector<int32_t>& parents) {
  LONGSPEC_RETURN_IF_ERROR(RunStep(tokens, parents, StepOutput::kArgmax));
  const int32_t n = static_cast<int32_t>(tokens.size());
  host_argmax_.resize(n);
  Backend& be = model_.backend();
  be.CopyToHost(host_argmax_.data(), model_.runner_->argmax(), n * sizeof(int32_t));
  LONGSPEC_RETURN_IF_ERROR(be.LastError());
  return static_cast<const int32_t*>(host_argmax_.data());
}

Status TargetSequence::Commit(const std::vector<int32_t>& path) {
  const int32_t base = last_plan_.step_base;
  std::vector<int32_t> moves;  // src..., then dst...: only the entries that actually move
  std::vector<int32_t> dst;
  for (size_t d = 0; d < path.size(); ++d) {
    if (path[d] < 0 || path[d] >= static_cast<int32_t>(last_plan_.node_depths.size()) ||
        last_plan_.node_depths[path[d]] != static_cast<int32_t>(d)) {
      return InvalidArgumentError("commit path is not a root-first chain of the last step");
    }
    const int32_t from = base + path[d];
    const int32_t to = static_cast<int32_t>(committed() + d);
    if (from != to) {
      moves.push_back(from);
      dst.push_back(to);
    }
  }
  if (!moves.empty()) {
    const int32_t n = static_cast<int32_t>(moves.size());
    moves.insert(moves.end(), dst.begin(), dst.end());
    Backend& be = model_.backend();
    int32_t* dev = static_cast<int32_t*>(move_buf_->data());
    be.CopyToDevice(dev, moves.data(), moves.size() * sizeof(int32_t));
    for (int64_t l = 0; l < model_.config().num_layers; ++l) be.KvMove(cache_.layer(l), dev, dev + n, n);
  }
  cache_.set_committed(committed() + static_cast<int64_t>(path.size()));
  return Status::OK();
}

Status TargetSequence::StepDeviceTree(const std::vector<int>& shape, DeviceTree tree, StepOutput output) {
  return StepDeviceTreeOfParents(ShapeParents(shape), tree, output);
}

Status TargetSequence::StepDeviceTreeOfParents(const std::vector<int32_t>& parents, DeviceTree tree, StepOutput output) {
  const int32_t n = static_cast<int32_t>(parents.size());
  if (n > model_.max_step_rows()) {
    return FailedPreconditionError("a step of " + std::to_string(n) + " rows exceeds the reserved " +
                                   std::to_string(model_.max_step_rows()));
  }
  if (committed() + n > cache_.capacity()) return OutOfRangeError("step does not fit the KV cache");
  last_plan_ = PlanStep(static_cast<int32_t>(committed()), std::vector<int32_t>(n, 0), parents, model_.rope(), 0,
                        AllRows(n));
  return model_.Execute(*this, last_plan_, output, true, &tree);
}

Status TargetSequence::StepDeviceLevel(const std::vector<int32_t>& parents, int32_t first_row, DeviceTree tree,
                                       StepOutput output) {
  const int32_t n = static_cast<int32_t>(parents.size());
  if (first_row < 0 || first_row >= n) {
    return InvalidArgumentError("tree level from node " + std::to_string(first_row) + " of a tree of " +
                                std::to_string(n) + " nodes");
  }
  const int32_t rows = n - first_row;
  if (rows > model_.max_step_rows()) {
    return FailedPreconditionError("a step of " + std::to_string(rows) + " rows exceeds the reserved " +
                                   std::to_string(model_.max_step_rows()));
  }
  if (committed() + n > cache_.capacity()) return OutOfRangeError("tree does not fit the KV cache");
  last_plan_ = PlanStep(static_cast<int32_t>(committed()), std::vector<int32_t>(n, 0), parents, model_.rope(), 0,
                        AllRows(rows), first_row);
  return model_.Execute(*this, last_plan_, output, true, &tree);
}

const int32_t* TargetSequence::device_argmax() const { return model_.runner_->argmax(); }
View TargetSequence::device_logits() const { return model_.runner_->logits(); }

void TargetSequence::EnqueueCommitPath(const int32_t* path, const int32_t* count, const int32_t* committed,
                                       int32_t max_count) {
  model_.backend().KvCommitPath(cache_.layer(0), static_cast<int32_t>(model_.config().num_layers),
                                cache_.layer_stride_bytes(), path, count, committed, max_count);
}

}  // namespace longspec
