// The draft tree of one speculation round, grown level by level by beam selection.
//
// Node 0 is the root (the last emitted token, not yet in the target cache). Level 1 holds the
// top shape[0] tokens of the root's draft distribution; level l > 1 the best shape[l-1]
// (parent, token) pairs over all parents of level l - 1, ranked by cumulative draft log-prob.
// Nodes are stored level by level (BFS); inside a level, grouped by parent in parent order and,
// per parent, in descending score. children[i] lists i's children in that order, which is the
// order lossless sampling tries them in.
#pragma once

#include <cstdint>
#include <vector>

namespace longspec {

struct DraftTree {
  std::vector<int32_t> tokens;
  std::vector<int32_t> parents;   // -1 for the root
  std::vector<int32_t> depths;
  std::vector<double> scores;     // cumulative draft log-probability (root: 0)
  std::vector<std::vector<int32_t>> children;
  std::vector<int32_t> level_start;  // level l = nodes [level_start[l], level_start[l + 1])

  void Reset(int32_t root_token);
  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_levels() const { return static_cast<int32_t>(level_start.size()) - 1; }  // root level included
  int32_t AddNode(int32_t parent, int32_t token, double score);
};

// Appends one level of `width` nodes under the current last level. `logits` holds one row of
// `vocab` draft logits per node of the last level, in node order. Each row is turned into
// log-probabilities (log-softmax in double); candidates are each parent's top `width` tokens;
// the level keeps the best `width` by cumulative score (ties: lower parent, then lower token).
void ExpandLevel(DraftTree* tree, const float* logits, int64_t vocab, int32_t width);

// The order in which a tree's nodes join its best subtrees (verify_nodes, and the best-N probe):
// rank[0] = 0 for the root, then repeatedly the node of highest cumulative score among those whose
// parent has joined (equal scores: the lower node; NaN after every number). A node never scores
// above its parent, so this is the nodes sorted by score; the rule keeps every prefix a subtree
// whatever the scores. `parents[i] < i` (node order), -1 for the root.
std::vector<int32_t> SubtreeRanks(const std::vector<int32_t>& parents, const std::vector<double>& scores);

// The root and the `keep` best other nodes (SubtreeRanks up to keep), in node order. Every node
// when keep >= size - 1.
std::vector<int32_t> BestSubtree(const std::vector<int32_t>& parents, const std::vector<double>& scores, int32_t keep);

// The parents of the subtree `kept` (root first, in node order, closed under parents:
// BestSubtree's result) in its own numbering, where node i is node kept[i] of the tree.
std::vector<int32_t> SubtreeParents(const std::vector<int32_t>& parents, const std::vector<int32_t>& kept);

// The nodes `kept` of `tree` as a tree of their own: node i is tree's node kept[i]; children keep
// their order.
DraftTree Subtree(const DraftTree& tree, const std::vector<int32_t>& kept);

// Tree shape truncated to at most `max_depth` levels (at least one level when max_depth >= 1).
std::vector<int> TruncateShape(const std::vector<int>& shape, int64_t max_depth);

}  // namespace longspec
