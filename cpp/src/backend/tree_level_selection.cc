#include "backend/tree_level_selection.h"

#include <algorithm>
#include <cmath>

namespace longspec {

namespace {

bool Better(const TreeCandidate& a, const TreeCandidate& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.parent != b.parent) return a.parent < b.parent;
  return a.token < b.token;
}

}  // namespace

TreeCandidate* AppendTopCandidates(const float* row, int64_t vocab, int32_t k, int32_t parent, double parent_score,
                                   TreeCandidate* out) {
  double max_l = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i)
    if (row[i] == row[i]) max_l = std::max(max_l, static_cast<double>(row[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i)
    if (row[i] == row[i]) sum += std::exp(static_cast<double>(row[i]) - max_l);
  const double lse = max_l + std::log(sum);
  // A sorted buffer of at most k (logit, token): a new logit goes after the equal ones already
  // there (lower tokens first), and a full buffer admits only a strictly larger logit.
  int32_t n = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    const float v = row[i];
    if (v != v || (n == k && !(v > out[n - 1].score))) continue;
    int32_t pos = n < k ? n : k - 1;
    while (pos > 0 && v > out[pos - 1].score) {
      out[pos] = out[pos - 1];
      --pos;
    }
    out[pos] = {static_cast<double>(v), parent, static_cast<int32_t>(i)};
    n = std::min(n + 1, k);
  }
  for (int32_t j = 0; j < n; ++j) out[j].score = parent_score + (out[j].score - lse);
  return out + n;
}

int64_t SelectLevel(TreeCandidate* begin, TreeCandidate* end, int32_t width) {
  const int64_t keep = std::min<int64_t>(end - begin, width);
  std::partial_sort(begin, begin + keep, end, Better);
  std::sort(begin, begin + keep, [](const TreeCandidate& a, const TreeCandidate& b) {
    return a.parent != b.parent ? a.parent < b.parent : Better(a, b);
  });
  return keep;
}

}  // namespace longspec
