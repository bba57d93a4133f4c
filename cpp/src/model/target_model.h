// The target model, split into what is per model (weights, runner, captured graphs) and what is
// per sequence (KV cache, uploaded plan, read-back buffers), so that serving several sequences
// is an addition, not a rewrite.
//
//   TargetModel::Load(path)              -> weights on the backend, runner scratch
//   TargetSequence::Create(model, limit) -> a KV cache for `limit` positions, allocated once
//   seq.Reset()                          -> empty sequence (nothing allocated)
//   seq.Prefill(tokens)                  -> runs and commits a prompt chunk by chunk
//   seq.Step(tokens, parents)            -> runs a chain or tree at the committed end without
//                                           committing; logits (or argmax ids) of every row
//   seq.Commit(path)                     -> keeps the listed rows of the last Step (root first,
//                                           each the child of the one before) by moving their
//                                           K/V into contiguous slots
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "model/kv_cache.h"
#include "model/model_loader.h"
#include "model/step_plan.h"
#include "model/transformer.h"
#include "util/env.h"

namespace longspec {

class TargetSequence;

class TargetModel {
 public:
  // max_step_rows: rows of the largest Step; prefill_chunk: rows per prefill forward pass;
  // max_context: the longest sequence (sizes the attention workspace).
  static StatusOr<std::unique_ptr<TargetModel>> Load(const std::string& path, Backend& backend, int32_t max_step_rows,
                                                     int32_t prefill_chunk);

  const ModelConfig& config() const { return model_->config; }
  const ModelInfo& info() const { return model_->info; }
  const TransformerWeights& weights() const { return model_->weights; }
  const RopeTables& rope() const { return rope_; }
  Backend& backend() const { return *backend_; }
  // The checkpoint it was loaded from (a draft reads rows of its LM head from there).
  const std::string& path() const { return path_; }
  int32_t max_step_rows() const { return max_step_rows_; }
  int32_t prefill_chunk() const { return prefill_chunk_; }

  // Makes steps of up to `rows` rows over sequences of up to `max_context` positions possible
  // (grows scratch; keeps every sequence).
  Status EnsureCapacity(int32_t rows, int64_t max_context);

 private:
  friend class TargetSequence;
  TargetModel() = default;
  // Runs the uploaded plan of `seq`; steps (not prefill chunks) replay a captured graph when the
  // backend has them.
  // `fill`: the plan's tree is a placeholder of the right shape; its tokens and visible slots
  // come from this device tree once uploaded.
  Status Execute(TargetSequence& seq, const StepPlan& plan, StepOutput output, bool graphable,
                 const DeviceTree* fill = nullptr);

  Backend* backend_ = nullptr;
  std::string path_;
  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<TransformerRunner> runner_;
  RopeTables rope_;
  int32_t max_step_rows_ = 0;
  int32_t prefill_chunk_ = 0;
  int64_t max_context_ = 0;
  // LONGSPEC_VERIFY_GRAPH_PIECES=0: a device tree's verification as one graph instead of pieces.
  bool verify_pieces_ = EnvFlag("LONGSPEC_VERIFY_GRAPH_PIECES", true);
  // Layer bounds of a step's graphs: one graph, or a verification's pieces (set at load).
  std::vector<int64_t> whole_bounds_, piece_bounds_;
  // Graphs by (sequence, rows, output, kv bucket, layers [begin, end) of the piece). A graph holds the
  // sequence's cache and plan addresses, which never move (both are allocated once), and the
  // runner's buffers, which move when EnsureCapacity grows them (it then drops every graph).
  std::map<std::tuple<const TargetSequence*, int32_t, int, int32_t, int64_t, int64_t>, std::unique_ptr<CapturedGraph>>
      graphs_;
};

class TargetSequence {
 public:
  // A KV cache for up to `max_positions` committed positions plus the largest tree.
  static StatusOr<std::unique_ptr<TargetSequence>> Create(TargetModel& model, int64_t max_positions);
  ~TargetSequence();

  TargetModel& model() const { return model_; }
  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }
  int64_t committed() const { return cache_.committed(); }
  int64_t max_positions() const { return max_positions_; }

  void Reset() { cache_.set_committed(0); }
  // Runs `tokens` as chunks of at most prefill_chunk rows and commits them. When `last_logits`
  // is given, it receives the logits of the last token.
  Status Prefill(const std::vector<int32_t>& tokens, std::vector<float>* last_logits);
  // Runs one step (<= max_step_rows rows) without committing. Host logits [rows, vocab].
  // first_row > 0 runs only nodes [first_row, tokens.size()) of the tree: the earlier nodes were
  // run by an earlier Step of the same tree (their K/V are in place) and are only attended to;
  // the logits are then those of the rows run. A tree grown level by level (a draft model)
  // runs each node once.
  StatusOr<const float*> Step(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents,
                              int32_t first_row = 0);
  // The same step for greedy decoding: each row's argmax token (host, [rows]); only those ids
  // leave the device, not the logits.
  StatusOr<const int32_t*> StepArgmax(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents);
  Status Commit(const std::vector<int32_t>& path);

  // The device round (speculation/device_round.h): runs the tree of `shape` held in backend
  // memory at the committed end, without committing; the rows' argmax ids (kArgmax) or logits
  // (kLogits) stay in backend memory (device_argmax(), device_logits()).
  Status StepDeviceTree(const std::vector<int>& shape, DeviceTree tree, StepOutput output);
  // The same for a tree whose node parents the host knows (a pruned round's verify tree): the
  // plan follows `parents` (node order, root first with -1).
  Status StepDeviceTreeOfParents(const std::vector<int32_t>& parents, DeviceTree tree, StepOutput output);
  // One level of a tree grown in backend memory (a draft model's device round): runs nodes
  // [first_row, parents.size()) of the tree whose node parents are `parents` (root first with
  // -1; the earlier nodes ran in earlier calls for the same tree and are only attended to). Their
  // logits (kLogits) stay in device_logits(), rows in node order; kNone writes only their K/V.
  Status StepDeviceLevel(const std::vector<int32_t>& parents, int32_t first_row, DeviceTree tree, StepOutput output);
  const int32_t* device_argmax() const;
  View device_logits() const;
  // Enqueues the commit of the last step's nodes path[0..*count) at committed length *committed
  // (all in backend memory); the host then calls AdvanceCommitted(*count) once it knows it.
  void EnqueueCommitPath(const int32_t* path, const int32_t* count, const int32_t* committed, int32_t max_count);
  void AdvanceCommitted(int64_t n) { cache_.set_committed(committed() + n); }
  // Whether the last step captured a new graph (its time is not a steady-state step's).
  bool last_step_captured() const { return last_step_captured_; }

 private:
  friend class TargetModel;
  explicit TargetSequence(TargetModel& model);
  Status RunStep(const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents, StepOutput output,
                 int32_t first_row = 0);

  TargetModel& model_;
  KvCache cache_;
  DevicePlan device_plan_;
  StepPlan last_plan_;
  int64_t max_positions_ = 0;
  std::vector<float> host_logits_;
  std::vector<int32_t> host_argmax_;
  std::unique_ptr<DeviceBuffer> move_buf_;
  bool last_step_captured_ = false;
};

}  // namespace longspec
