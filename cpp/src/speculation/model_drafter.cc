#include "speculation/model_drafter.h"

#include <sys/stat.h>

#include <algorithm>

#include "util/json.h"

namespace longspec {

bool IsLongSpecDraftCheckpoint(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return true;  // missing: the LongSpec loader says so
  if (!S_ISDIR(st.st_mode)) return false;           // a file: a GGUF model
  auto json = Json::ParseFile(path + "/config.json");
  if (!json.ok()) return true;
  return json->Find("format") != nullptr || json->Find("model_type") == nullptr;
}

StatusOr<std::unique_ptr<ModelDrafter>> ModelDrafter::Load(const std::string& path, const TargetModel& target,
                                                           int64_t max_positions, int32_t prefill_chunk) {
  std::unique_ptr<ModelDrafter> d(new ModelDrafter());
  auto model = TargetModel::Load(path, target.backend(), 1, prefill_chunk);
  if (!model.ok()) return model.status().WithContext("draft model");
  d->model_ = std::move(model).value();
  const ModelConfig& dc = d->model_->config();
  const ModelConfig& tc = target.config();
  if (dc.vocab_size != tc.vocab_size) {
    return InvalidArgumentError("draft model " + path + " has a vocabulary of " + std::to_string(dc.vocab_size) +
                                " tokens, the target " + std::to_string(tc.vocab_size) +
                                ": a draft model must share the target's tokenizer");
  }
  if (dc.max_position < max_positions) {
    return InvalidArgumentError("draft model " + path + " reaches " + std::to_string(dc.max_position) +
                                " positions, short of the engine's context limit of " + std::to_string(max_positions) +
                                " (pass a smaller max_context)");
  }
  d->max_positions_ = max_positions;
  LONGSPEC_ASSIGN_OR_RETURN(d->sequence_, TargetSequence::Create(*d->model_, max_positions));
  return d;
}

Status ModelDrafter::Prefill(const std::vector<int32_t>& prompt) {
  sequence_->Reset();
  run_nodes_ = 0;
  return sequence_->Prefill(prompt, nullptr);
}

StatusOr<const float*> ModelDrafter::LevelLogits(const DraftTree& tree, int32_t first_row) {
  // The levels of one tree come in order; a tree starting over (first_row 0) is a new round.
  if (first_row != 0 && first_row != run_nodes_) {
    return FailedPreconditionError("draft model: level starting at node " + std::to_string(first_row) +
                                   " after nodes [0, " + std::to_string(run_nodes_) + ") ran");
  }
  LONGSPEC_ASSIGN_OR_RETURN(const float* logits, sequence_->Step(tree.tokens, tree.parents, first_row));
  run_nodes_ = tree.size();
  return logits;
}

Status ModelDrafter::Commit(const DraftTree& tree, const std::vector<int32_t>& path) {
  if (path.empty()) return InvalidArgumentError("draft model: empty commit path");
  // The last level grown is never run (its logits are not needed) unless a node of it is
  // accepted: then that one node runs now, as node run_nodes_ of the tree cut to the nodes that
  // ran plus it, so that its K/V sit where a commit moves them from. (A round with no draft
  // level ran nothing: its root is that node.)
  const int32_t last = path.back();
  if (last < run_nodes_) {
    run_nodes_ = 0;
    return sequence_->Commit(path);
  }
  const bool chain = path.size() >= 2 ? path[path.size() - 2] < run_nodes_ : last == 0;
  if (last >= tree.size() || !chain) {
    return InvalidArgumentError("draft model: commit path is not a chain of the last tree");
  }
  std::vector<int32_t> tokens(tree.tokens.begin(), tree.tokens.begin() + run_nodes_);
  std::vector<int32_t> parents(tree.parents.begin(), tree.parents.begin() + run_nodes_);
  tokens.push_back(tree.tokens[last]);
  parents.push_back(tree.parents[last]);
  LONGSPEC_RETURN_IF_ERROR(sequence_->Step(tokens, parents, run_nodes_).status());
  std::vector<int32_t> cut = path;
  cut.back() = run_nodes_;
  run_nodes_ = 0;
  return sequence_->Commit(cut);
}

Status ModelDrafter::CatchUp(const std::vector<int32_t>& tokens) {
  run_nodes_ = 0;
  return sequence_->Prefill(tokens, nullptr);
}

int64_t ModelDrafter::cache_bytes() const { return sequence_->cache().allocated_bytes(); }

Status ModelDrafter::EnqueueTree(const std::vector<int>& shape, int32_t committed, int32_t root) {
  if (committed != sequence_->committed()) {
    return FailedPreconditionError("draft model: a round at " + std::to_string(committed) + " committed tokens, the draft has " +
                                   std::to_string(sequence_->committed()));
  }
  Backend& backend = model_->backend();
  LONGSPEC_ASSIGN_OR_RETURN(const TreeLevelBounds bounds, DeviceTreeBounds(backend, shape, proposal_vocab()));
  LONGSPEC_RETURN_IF_ERROR(EnsureRows(bounds.widest));
  bool moved = false;  // nothing captured holds the round's addresses: expansion runs outside graphs
  LONGSPEC_RETURN_IF_ERROR(round_.Reserve(backend, bounds.most_parents, bounds.widest, &moved));
  round_.BeginRound(backend, committed, root);
  last_tree_captured_ = false;
  const std::vector<int32_t> starts = ShapeLevelStarts(shape);
  const std::vector<int32_t> parents = ShapeParents(shape);
  const int32_t levels = static_cast<int32_t>(shape.size());
  round_levels_ = levels;
  round_root_ = root;
  const DeviceTree tree = round_.tree();
  if (levels == 0) {  // the root alone: it is the leaf, committed as one if accepted
    return Status::OK();
  }
  for (int32_t l = 0; l < levels; ++l) {
    const int32_t begin = starts[l], end = starts[l + 1];
    const std::vector<int32_t> level_parents(parents.begin(), parents.begin() + end);
    LONGSPEC_RETURN_IF_ERROR(sequence_->StepDeviceLevel(level_parents, begin, tree, StepOutput::kLogits));
    last_tree_captured_ = last_tree_captured_ || sequence_->last_step_captured();
    View logits = sequence_->device_logits();
    logits.rows = end - begin;
    backend.TreeExpand(logits, tree, begin, end, shape[l], round_.expand_scratch(), nullptr);
  }
  return Status::OK();
}

void ModelDrafter::EnqueueCommit(const int32_t* path) {
  sequence_->EnqueueCommitPath(path != nullptr ? path : round_.path(), round_.count(), round_.committed(),
                               DeviceRoundState::kMaxPath);
}

Status ModelDrafter::AdvanceCommitted(const std::vector<int32_t>& emitted) {
  const int64_t n = static_cast<int64_t>(emitted.size());
  if (n == 0) return InvalidArgumentError("draft model: a round emits at least its bonus token");
  // The path committed n nodes, the root and n - 1 accepted ones; the last of them is a leaf (its
  // slot never written) when n - 1 reaches the tree's depth: the root itself in a tree of no level.
  if (n - 1 < round_levels_) {
    sequence_->AdvanceCommitted(n);
    return Status::OK();
  }
  sequence_->AdvanceCommitted(n - 1);
  const int32_t leaf = n >= 2 ? emitted[n - 2] : round_root_;
  return sequence_->Prefill({leaf}, nullptr);
}

Status ModelDrafter::EnsureRows(int32_t rows) { return model_->EnsureCapacity(std::max(rows, 1), max_positions_); }

}  // namespace longspec
