// The classic two-model draft: a smaller language model of the same tokenizer (e.g.
// Qwen2.5-Coder-0.5B for Qwen2.5-Coder-1.5B) with its own KV cache, drafting a tree level by
// level from its own logits. The baseline a user would otherwise pick, verified by the same
// lossless rule as the LongSpec draft. Unlike the LongSpec draft its memory grows with the
// context (a full KV cache of the draft model) and it prefills the whole prompt itself.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/target_model.h"
#include "speculation/drafter.h"

namespace longspec {

class ModelDrafter final : public DeviceDrafter {
 public:
  // Loads `path` (anything TargetModel::Load accepts) on `target`'s backend with a KV cache for
  // `max_positions` positions. InvalidArgument when its vocabulary is not the target's or its
  // context length is shorter than max_positions.
  static StatusOr<std::unique_ptr<ModelDrafter>> Load(const std::string& path, const TargetModel& target,
                                                      int64_t max_positions, int32_t prefill_chunk);

  const ModelInfo& info() const { return model_->info(); }

  Status Prefill(const std::vector<int32_t>& prompt) override;
  StatusOr<const float*> LevelLogits(const DraftTree& tree, int32_t first_row) override;
  Status Commit(const DraftTree& tree, const std::vector<int32_t>& path) override;
  Status CatchUp(const std::vector<int32_t>& tokens) override;
  int64_t cache_bytes() const override;
  Status EnsureRows(int32_t rows) override;

  // ---- the round on the device (DeviceDrafter) ------------------------------------------------
  // Each level but the leaves runs through the draft model as a step of the tree's plan
  // (TargetSequence::StepDeviceLevel: its K/V land in the draft cache's tree slots, its logits
  // stay on the device), then Backend::TreeExpand over the whole vocabulary adds the next level.
  // The leaves never run (a whole forward of the draft model each): when the round accepts one,
  // the commit moves its empty slot and AdvanceCommitted computes that one token's K/V in place,
  // as the host loop's commit does.
  DeviceRoundState& round() override { return round_; }
  Status EnqueueTree(const std::vector<int>& shape, int32_t committed, int32_t root) override;
  void EnqueueCommit(const int32_t* path) override;
  Status AdvanceCommitted(const std::vector<int32_t>& emitted) override;
  bool last_tree_captured() const override { return last_tree_captured_; }
  int64_t proposal_vocab() const override { return model_->config().vocab_size; }

 private:
  ModelDrafter() = default;

  std::unique_ptr<TargetModel> model_;
  std::unique_ptr<TargetSequence> sequence_;
  int64_t max_positions_ = 0;
  // Nodes [0, run_nodes_) of the current tree have been run (their K/V sit in the tree slots).
  int32_t run_nodes_ = 0;
  DeviceRoundState round_;
  int32_t round_levels_ = 0;  // levels of the last EnqueueTree's shape (its leaves' depth)
  int32_t round_root_ = 0;    // and its root token
  bool last_tree_captured_ = false;
};

// Whether `path` names a LongSpec draft checkpoint (a directory whose config.json says
// "format": "longspec-draft", or one whose config.json cannot be read, so that the LongSpec
// loader reports why) rather than a language model to draft with.
bool IsLongSpecDraftCheckpoint(const std::string& path);

}  // namespace longspec
