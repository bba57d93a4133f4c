#include "speculation/token_tree.h"

#include <algorithm>
#include <cassert>
#include <cmath>

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

namespace {

struct Candidate {
  double score;
  int32_t parent;
  int32_t token;
};

bool Better(const Candidate& a, const Candidate& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.parent != b.parent) return a.parent < b.parent;
  return a.token < b.token;
}

// Top `k` tokens of one logits row as (log-prob, token), best first.
void TopTokens(const float* row, int64_t vocab, int32_t k, int32_t parent, double parent_score,
               std::vector<Candidate>* out) {
  double max_l = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) max_l = std::max(max_l, static_cast<double>(row[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - max_l);
  const double lse = max_l + std::log(sum);
  // Partial selection over the vocabulary with a small sorted buffer (k is at most a few dozen).
  std::vector<std::pair<float, int32_t>> best;
  best.reserve(k + 1);
  for (int64_t i = 0; i < vocab; ++i) {
    const float v = row[i];
    if (static_cast<int32_t>(best.size()) == k && !(v > best.back().first)) continue;
    auto pos = std::upper_bound(best.begin(), best.end(), v,
                                [](float x, const std::pair<float, int32_t>& e) { return x > e.first; });
    best.insert(pos, {v, static_cast<int32_t>(i)});
    if (static_cast<int32_t>(best.size()) > k) best.pop_back();
  }
  for (const auto& [v, tok] : best) out->push_back({parent_score + (static_cast<double>(v) - lse), parent, tok});
}

}  // namespace

void ExpandLevel(DraftTree* tree, const float* logits, int64_t vocab, int32_t width) {
  assert(tree->num_levels() >= 1 && width >= 1);
  const int32_t first = tree->level_start[tree->level_start.size() - 2];
  const int32_t last = tree->level_start.back();
  const int32_t k = static_cast<int32_t>(std::min<int64_t>(width, vocab));
  std::vector<Candidate> cands;
  cands.reserve(static_cast<size_t>(last - first) * k);
  for (int32_t node = first; node < last; ++node) {
    TopTokens(logits + static_cast<int64_t>(node - first) * vocab, vocab, k, node, tree->scores[node], &cands);
  }
  const size_t keep = std::min<size_t>(cands.size(), static_cast<size_t>(width));
  std::partial_sort(cands.begin(), cands.begin() + keep, cands.end(), Better);
  cands.resize(keep);
  // Store grouped by parent (ascending), best first within a parent.
  std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) { return a.parent < b.parent; });
  for (const Candidate& c : cands) tree->AddNode(c.parent, c.token, c.score);
  tree->level_start.push_back(tree->size());
}

std::vector<int> TruncateShape(const std::vector<int>& shape, int64_t max_depth) {
  if (max_depth < 1) return {};
  const size_t n = std::min<size_t>(shape.size(), static_cast<size_t>(max_depth));
  return std::vector<int>(shape.begin(), shape.begin() + n);
}

}  // namespace longspec
