#include "speculation/drafter.h"

namespace longspec {

Status BuildTree(Drafter& drafter, const std::vector<int>& shape, int64_t vocab, DraftTree* tree) {
  for (int width : shape) {
    const int32_t first = tree->level_start[tree->level_start.size() - 2];
    LONGSPEC_ASSIGN_OR_RETURN(const float* logits, drafter.LevelLogits(*tree, first));
    ExpandLevel(tree, logits, vocab, width);
  }
  return Status::OK();
}

}  // namespace longspec
