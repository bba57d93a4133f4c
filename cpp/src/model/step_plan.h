// Host-side planning of one forward step: which rows, at which positions and cache slots, and
// which keys each row's attention sees. Planned once per step; every layer reuses it.
//
// Rows are nodes: node i has parent[i] < i, or -1 when it follows the committed prefix directly.
// depth(i) = 0 for parent -1, else depth(parent) + 1; position = committed + depth; the node's
// K/V go to slot step_base + i. A chain (parent[i] = i - 1) is a prefill chunk or a plain decode
// step; a tree is a verification (or a draft level).
//
// Target attention (window == 0) is Hybrid Tree Attention with a split point that depends only
// on the query's position t:  S(t) = max(0, floor((t - kMaxTreeDepth) / kAttnChunk) * kAttnChunk).
// The prefix op reads positions [0, S(t)), the tree op the committed band [S(t), committed) then
// the node's ancestors-or-self with position >= S(t). A token at position t therefore reduces
// the same key sequence in the same order whether it is decoded alone, verified deep in a tree,
// or prefilled: speculative greedy output equals plain greedy output by construction.
// (S(t) <= committed holds for every tree of depth <= kMaxTreeDepth; chains may have S(t) above
// the committed length because their slots equal their positions.)
//
// Windowed attention (window W > 0, the draft's self-attention): no prefix part; the band is
// [max(0, t - W + 1), committed) read from the ring, plus ancestors within the window.
//
// Everything a step's kernels read per row lives in the uploaded plan (DevicePlan), laid out by
// the row count alone: a graph captured for n rows replays any later n-row step.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "longspec/config.h"
#include "model/model_config.h"

namespace longspec {

// cos/sin tables for RoPE at arbitrary positions (computed per step for the step's rows).
class RopeTables {
 public:
  RopeTables() = default;
  RopeTables(const RopeConfig& rope, int64_t head_dim);
  int64_t half() const { return static_cast<int64_t>(inv_freq_.size()); }
  // Writes half() cos and sin values for `position`.
  void Fill(int64_t position, float* cos, float* sin) const;

 private:
  std::vector<float> inv_freq_;
  float scaling_ = 1.0f;
};

// Captured steps are bucketed by the prefix length their attention launch covers: powers of two
// from 1024, so a sequence crosses at most a handful of buckets.
inline int32_t KvBucket(int64_t needed) {
  int64_t b = 1024;
  while (b < needed) b *= 2;
  return static_cast<int32_t>(b);
}

inline int64_t HybridSplit(int64_t position) {
  if (position < kMaxTreeDepth) return 0;
  return (position - kMaxTreeDepth) / kAttnChunk * kAttnChunk;
}

// Rows are the nodes [first_row, num_nodes) of the step's tree: earlier nodes were run by an
// earlier step (a draft grows its tree one level per step) and are only attended to.
struct StepPlan {
  int32_t committed = 0;
  int32_t step_base = 0;   // slot of node 0 (committed for a linear cache, W for a ring)
  int32_t first_row = 0;   // node index of row 0
  int32_t num_rows = 0;
  bool is_chain = false;
  std::vector<int32_t> node_depths;      // [num_nodes]
  // Per row:
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> slots;
  std::vector<int32_t> prefix_len;       // [rows] (all 0 for a windowed plan)
  std::vector<int32_t> band_start;       // [rows]
  std::vector<int32_t> band_end;         // [rows] (the committed length)
  std::vector<int32_t> visible_offsets;  // [rows + 1]
  std::vector<int32_t> visible_slots;    // cache slots of each row's visible nodes
  std::vector<float> cos, sin;           // [rows, head_dim / 2]
  std::vector<int32_t> logit_rows;       // rows whose logits the step needs
  int32_t max_prefix_len = 0;            // max over rows of prefix_len
};

// window == 0: target (hybrid split); window > 0: windowed ring attention (step_base = window).
// logit_rows: the rows (not nodes) whose logits are wanted. Rows are nodes [first_row, n).
StepPlan PlanStep(int32_t committed, const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents,
                  const RopeTables& rope, int32_t window, std::vector<int32_t> logit_rows, int32_t first_row = 0);

// A chain of n tokens following the committed prefix.
std::vector<int32_t> ChainParents(int32_t n);
// Logit rows 0..n-1: every row of the step.
std::vector<int32_t> AllRows(int32_t n);

// The node parents of a tree of `shape` (widths per level) with every node of a level under the
// first node of the level before: the same depths, hence the same plan counts, as any real tree
// of that shape. Size 1 + sum(shape); the root's parent is -1.
std::vector<int32_t> ShapeParents(const std::vector<int>& shape);
// First node of each level of a tree of `shape`, plus the end: level l = [starts[l], starts[l + 1]).
std::vector<int32_t> ShapeLevelStarts(const std::vector<int>& shape);

// Upper bound of visible_nodes entries per row for any plan (chain or tree).
constexpr int32_t kMaxVisiblePerRow = kMaxTreeDepth + kAttnChunk + 1;

// Device copies of a plan's arrays in one buffer sized once for `max_rows`, uploaded with one
// copy. Array offsets depend only on (num_rows, num_logit_rows), so the pointers of an n-row
// step are the same for every n-row step.
class DevicePlan {
 public:
  Status Reserve(Backend& backend, int32_t max_rows, int32_t head_dim);
  // Copies the plan into device memory. Arrays of the plan that are empty are not copied.
  void Upload(Backend& backend, const StepPlan& plan);
  int32_t max_rows() const { return max_rows_; }
  // After Upload of a plan whose tree was a placeholder of the same shape (only the depths,
  // hence the counts, are right): writes the real tokens and visible slots from the device tree
  // on the backend's stream (backend.h, TreePlanFill).
  void FillFromTree(Backend& backend, DeviceTree tree, int32_t first_row, int32_t step_base);

  const int32_t* tokens = nullptr;
  const int32_t* slots = nullptr;
  const int32_t* prefix_len = nullptr;
  const int32_t* band_start = nullptr;
  const int32_t* band_end = nullptr;
  const int32_t* visible_offsets = nullptr;
  const int32_t* visible_slots = nullptr;
  const int32_t* logit_rows = nullptr;
  const float* cos = nullptr;
  const float* sin = nullptr;
  int32_t num_rows = 0;
  int32_t num_logit_rows = 0;
  int32_t max_prefix_len = 0;

 private:
  int32_t max_rows_ = 0;
  int32_t half_ = 0;
  std::unique_ptr<DeviceBuffer> buf_;
  std::vector<int32_t> staging_;
};

}  // namespace longspec
