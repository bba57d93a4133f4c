// Backend memory of one sequence's speculation rounds, laid out so that a round needs one
// upload (the committed length and the root token, adjacent) and one read-back (the emitted
// count and tokens, adjacent):
//
//   [committed | tree tokens ... | tree parents | tree scores | path | count | emitted | drawn |
//    verify tree tokens | parents | scores | node map | grown path | scratch]
//
// The round on the device (engine/speculative.cc): the draft grows the tree level by level
// into `tree()` (Backend::TreeExpand), the target verifies it (TargetSequence::StepDeviceTree),
// Backend::TreeAcceptGreedy writes the path and the emitted tokens (from the target's argmax per
// node, or, sampling, from a token drawn per node by Backend::SampleRows), and KvCommitPath moves the
// accepted K/V in the target cache and the draft ring. Addresses never change after Reserve
// grows the buffer, so captured graphs stay valid until then.
//
// A pruned round (SamplingParams::verify_nodes) reads the grown tree back once, keeps its root and
// best nodes (BestSubtree) as `verify_tree()`, numbered anew, with `node_map()` from those numbers
// to the grown tree's: the target verifies, accepts and commits in verify-tree numbers, and the
// draft's commit takes the path mapped back (`grown_path()`), since its ring holds every grown node.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "longspec/config.h"
#include "speculation/token_tree.h"

namespace longspec {

// What a tree of `shape` asks of a round's buffers: its widest level (1 without levels) and the
// most parents one level expands (every level's width but the last's).
struct TreeLevelBounds {
  int32_t widest = 1, most_parents = 1;
};
// InvalidArgument where a level is empty, or wider than `backend` grows on the device or than the
// `proposable` tokens the draft can propose.
StatusOr<TreeLevelBounds> DeviceTreeBounds(const Backend& backend, const std::vector<int>& shape, int64_t proposable);

class DeviceRoundState {
 public:
  static constexpr int32_t kMaxNodes = kMaxTreeNodes + 1;
  static constexpr int32_t kMaxPath = kMaxTreeDepth + 2;

  // Room for levels of up to `max_parents` parents x `max_width` children in the tree-growth
  // scratch. Returns true in *moved when the buffer was reallocated (graphs must be recaptured).
  Status Reserve(Backend& backend, int32_t max_parents, int32_t max_width, bool* moved);

  DeviceTree tree() const { return tree_; }
  const int32_t* committed() const { return words_; }
  int32_t* path() const { return path_; }
  int32_t* count() const { return count_; }
  int32_t* emitted() const { return count_ + 1; }
  int32_t* drawn() const { return drawn_; }  // [kMaxNodes]: a token drawn at each node (sampling)
  void* expand_scratch() const { return scratch_; }
  DeviceTree verify_tree() const { return verify_tree_; }
  const int32_t* node_map() const { return node_map_; }
  int32_t* grown_path() const { return grown_path_; }  // [kMaxPath]

  // After the growth of a tree of `nodes` nodes was enqueued: waits for it, keeps the root and its
  // `keep` best nodes, writes them as verify_tree() and node_map() and returns the verify tree's
  // parents (for the target's plan) in *parents.
  Status Prune(Backend& backend, int32_t nodes, int32_t keep, std::vector<int32_t>* parents);

  // Enqueues the upload of the round's committed length and root token.
  void BeginRound(Backend& backend, int32_t committed, int32_t root);
  // Waits for the round and reads the emitted tokens (accepted draft tokens, then the bonus).
  Status ReadEmitted(Backend& backend, std::vector<int32_t>* emitted);

 private:
  std::unique_ptr<DeviceBuffer> buf_;
  int32_t* words_ = nullptr;
  DeviceTree tree_;
  int32_t* path_ = nullptr;
  int32_t* count_ = nullptr;
  int32_t* drawn_ = nullptr;
  DeviceTree verify_tree_;
  int32_t* node_map_ = nullptr;
  int32_t* grown_path_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  std::vector<int32_t> staging_;
  // Host staging of Prune, kept between rounds.
  std::vector<int32_t> prune_staging_, prune_parents_, prune_out_;
  std::vector<double> prune_scores_;
};

}  // namespace longspec
