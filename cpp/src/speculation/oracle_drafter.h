// A test drafter whose proposals come from the target itself: each level runs the target over
// the tree grown so far (no commit) and uses its logits as the draft distribution. With a chain
// shape every proposal is the target's own greedy choice, so greedy verification must accept
// the full depth every round: it exercises verify, accept and commit at full length.
#pragma once

#include "model/target_model.h"
#include "speculation/drafter.h"

namespace longspec {

class OracleDrafter final : public Drafter {
 public:
  explicit OracleDrafter(TargetSequence& target) : target_(target) {}
  Status Prefill(const std::vector<int32_t>&) override { return Status::OK(); }
  StatusOr<const float*> LevelLogits(const DraftTree& tree, int32_t first_row) override {
    LONGSPEC_ASSIGN_OR_RETURN(const float* logits, target_.Step(tree.tokens, tree.parents));
    return logits + static_cast<int64_t>(first_row) * target_.model().config().vocab_size;
  }
  Status Commit(const DraftTree&, const std::vector<int32_t>&) override { return Status::OK(); }
  Status CatchUp(const std::vector<int32_t>&) override { return Status::OK(); }
  int64_t cache_bytes() const override { return 0; }
  Status EnsureRows(int32_t) override { return Status::OK(); }

 private:
  TargetSequence& target_;
};

}  // namespace longspec
