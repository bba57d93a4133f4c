// Where draft proposals come from. A drafter runs one tree level at a time; the beam logic that
// turns its logits into a tree (spec/token_tree.h) is shared by every drafter.
#pragma once

#include <cstdint>
#include <vector>

#include "longspec/status.h"
#include "speculation/device_round.h"
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

// A drafter that also grows its tree in backend memory: the round on the device
// (speculation/device_round.h, engine/speculative.cc), no host copy of any level's logits.
class DeviceDrafter : public Drafter {
 public:
  // The round's device state (tree, path, emitted tokens) of this sequence.
  virtual DeviceRoundState& round() = 0;
  // Enqueues the round's start (committed length `committed`, the target's too, and the root
  // token) and the growth of a tree of `shape` from that root: each level's nodes run through the
  // draft, then Backend::TreeExpand adds the next level.
  virtual Status EnqueueTree(const std::vector<int>& shape, int32_t committed, int32_t root) = 0;
  // Enqueues the move of the accepted path (round().path(), count(), committed()) into the
  // draft's cache; the host then calls AdvanceCommitted with the tokens it read back. A pruned
  // round passes its path as grown nodes (round().grown_path()); null: round().path().
  virtual void EnqueueCommit(const int32_t* path) = 0;
  // The round's emitted tokens (its accepted draft tokens, then the bonus): all but the bonus are
  // now committed, the root before them too.
  virtual Status AdvanceCommitted(const std::vector<int32_t>& emitted) = 0;
  // Whether the last EnqueueTree captured a new graph (its time is not a steady-state round's).
  virtual bool last_tree_captured() const = 0;
  // Tokens a tree level can propose (no level is wider).
  virtual int64_t proposal_vocab() const = 0;
};

// Grows `tree` (already Reset to the root) to `shape` using `drafter`.
Status BuildTree(Drafter& drafter, const std::vector<int>& shape, int64_t vocab, DraftTree* tree);

}  // namespace longspec
