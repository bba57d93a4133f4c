// Where draft proposals come from. A drafter runs one tree level at a time; the beam logic that
// turns its logits into a tree (spec/token_tree.h) is shared by every drafter.
#pragma once

#include <cstdint>
#include <vector>

#include "longspec/status.h"
#include "speculation/token_tree.h"

namespace longspec {

class Drafter {
 public:
  virtual ~Drafter() = default;
  // After the target prefilled `prompt` (all of it committed in the target).
  virtual Status Prefill(const std::vector<int32_t>& prompt) = 0;
  // Runs nodes [first_row, tree.size()) of the current round's tree (root at the committed end)
  // and returns their next-token logits, [tree.size() - first_row, vocab] in host memory.
  virtual StatusOr<const float*> LevelLogits(const DraftTree& tree, int32_t first_row) = 0;
  // Keeps `path` (root first, each the child of the previous) of the last tree as committed.
  virtual Status Commit(const DraftTree& tree, const std::vector<int32_t>& path) = 0;
  // Keeps `tokens`, committed by the target without a draft round (plain steps), as committed.
  virtual Status CatchUp(const std::vector<int32_t>& tokens) = 0;
  // Bytes of draft state for this sequence (constant in the context length for LongSpec).
  virtual int64_t cache_bytes() const = 0;
  // Largest number of rows LevelLogits may be asked for at once.
  virtual Status EnsureRows(int32_t rows) = 0;
};

// Grows `tree` (already Reset to the root) to `shape` using `drafter`.
Status BuildTree(Drafter& drafter, const std::vector<int>& shape, int64_t vocab, DraftTree* tree);

}  // namespace longspec
