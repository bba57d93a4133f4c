#include "speculation/token_tree.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <queue>
#include <vector>

#include "backend/tree_level_selection.h"

namespace longspec {

void DraftTree::Reset(int32_t root_token) {
  tokens.assign(1, root_token);
  parents.assign(1, -1);
  depths.assign(1, 0);
  scores.assign(1, 0.0);
  children.assign(1, {});
  level_start = {0, 1};
}

int32_t DraftTree::AddNode(int32_t parent, int32_t token, double score) {
  const int32_t id = size();
  tokens.push_back(token);
  parents.push_back(parent);
  depths.push_back(depths[parent] + 1);
  scores.push_back(score);
  children.emplace_back();
  children[parent].push_back(id);
  return id;
}

void ExpandLevel(DraftTree* tree, const float* logits, int64_t vocab, int32_t width) {
  assert(tree->num_levels() >= 1 && width >= 1);
  const int32_t first = tree->level_start[tree->level_start.size() - 2];
  const int32_t last = tree->level_start.back();
  const int32_t k = static_cast<int32_t>(std::min<int64_t>(width, vocab));
  std::vector<TreeCandidate> cands(static_cast<size_t>(last - first) * k);
  TreeCandidate* end = cands.data();
  for (int32_t node = first; node < last; ++node) {
    end = AppendTopCandidates(logits + static_cast<int64_t>(node - first) * vocab, vocab, k, node, tree->scores[node], end);
  }
  const int64_t keep = SelectLevel(cands.data(), end, width);
  for (int64_t j = 0; j < keep; ++j) tree->AddNode(cands[j].parent, cands[j].token, cands[j].score);
  tree->level_start.push_back(tree->size());
}

std::vector<int32_t> SubtreeRanks(const std::vector<int32_t>& parents, const std::vector<double>& scores) {
  const int32_t n = static_cast<int32_t>(parents.size());
  std::vector<std::vector<int32_t>> children(n);
  for (int32_t i = 1; i < n; ++i) children[parents[i]].push_back(i);
  auto key = [&](int32_t i) { return std::isnan(scores[i]) ? -std::numeric_limits<double>::infinity() : scores[i]; };
  // The frontier's best on top: higher key, then lower node.
  auto after = [&](int32_t a, int32_t b) { return key(a) != key(b) ? key(a) < key(b) : a > b; };
  std::priority_queue<int32_t, std::vector<int32_t>, decltype(after)> frontier(after);
  std::vector<int32_t> rank(n, -1);
  if (n > 0) frontier.push(0);
  for (int32_t r = 0; !frontier.empty(); ++r) {
    const int32_t node = frontier.top();
    frontier.pop();
    rank[node] = r;
    for (int32_t c : children[node]) frontier.push(c);
  }
  return rank;
}

std::vector<int32_t> BestSubtree(const std::vector<int32_t>& parents, const std::vector<double>& scores, int32_t keep) {
  const std::vector<int32_t> rank = SubtreeRanks(parents, scores);
  std::vector<int32_t> kept;
  for (int32_t i = 0; i < static_cast<int32_t>(rank.size()); ++i) {
    if (rank[i] <= keep) kept.push_back(i);
  }
  return kept;
}

std::vector<int32_t> SubtreeParents(const std::vector<int32_t>& parents, const std::vector<int32_t>& kept) {
  std::vector<int32_t> renumbered(parents.size(), -1), out(kept.size(), -1);
  for (size_t i = 0; i < kept.size(); ++i) {
    renumbered[kept[i]] = static_cast<int32_t>(i);
    if (i > 0) {
      out[i] = renumbered[parents[kept[i]]];
      assert(out[i] >= 0 && "a kept node's parent is kept before it");
    }
  }
  return out;
}

DraftTree Subtree(const DraftTree& tree, const std::vector<int32_t>& kept) {
  const std::vector<int32_t> parents = SubtreeParents(tree.parents, kept);
  DraftTree out;
  out.Reset(tree.tokens[0]);
  for (size_t i = 1; i < kept.size(); ++i) out.AddNode(parents[i], tree.tokens[kept[i]], tree.scores[kept[i]]);
  // Levels: the nodes are in node order, hence in depth order.
  out.level_start = {0};
  for (int32_t i = 1; i < out.size(); ++i) {
    if (out.depths[i] != out.depths[i - 1]) out.level_start.push_back(i);
  }
  out.level_start.push_back(out.size());
  return out;
}

std::vector<int> TruncateShape(const std::vector<int>& shape, int64_t max_depth) {
  if (max_depth < 1) return {};
  const size_t n = std::min<size_t>(shape.size(), static_cast<size_t>(max_depth));
  return std::vector<int>(shape.begin(), shape.begin() + n);
}

}  // namespace longspec
