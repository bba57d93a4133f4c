#include "speculation/acceptance.h"

#include <algorithm>

namespace longspec {

AcceptResult AcceptGreedy(const DraftTree& tree, const int32_t* argmax) {
  AcceptResult r;
  int32_t node = 0;
  r.path.push_back(0);
  for (;;) {
    const int32_t want = argmax[node];
    int32_t next = -1;
    for (int32_t c : tree.children[node]) {
      if (tree.tokens[c] == want) {
        next = c;
        break;
      }
    }
    if (next < 0) {
      r.bonus = want;
      return r;
    }
    r.path.push_back(next);
    node = next;
  }
}

std::vector<int32_t> GreedyTokensWithinBest(const int32_t* tokens, const int32_t* parents, const float* scores,
                                            int32_t nodes, const int32_t* argmax, const std::vector<int32_t>& best) {
  // The root counts among the N: the best N nodes are the root and BestSubtree's N - 1.
  const std::vector<int32_t> rank =
      SubtreeRanks(std::vector<int32_t>(parents, parents + nodes), std::vector<double>(scores, scores + nodes));
  std::vector<int32_t> emitted;
  for (const int32_t n : best) {
    int32_t node = 0, count = 1;  // the bonus
    for (;;) {
      int32_t next = -1;
      for (int32_t c = node + 1; c < nodes && next < 0; ++c) {
        if (rank[c] < n && parents[c] == node && tokens[c] == argmax[node]) next = c;
      }
      if (next < 0) break;
      ++count;
      node = next;
    }
    emitted.push_back(count);
  }
  return emitted;
}

int32_t AcceptAtNode(const TokenDistribution& p, const std::vector<int32_t>& child_tokens, Rng& rng, int32_t* bonus) {
  // residual[i] is the unnormalised remaining mass of p.tokens[i]; `mass` its total.
  std::vector<double> residual = p.probs;
  double mass = 0.0;
  for (double x : residual) mass += x;
  for (size_t c = 0; c < child_tokens.size(); ++c) {
    const auto it = std::find(p.tokens.begin(), p.tokens.end(), child_tokens[c]);
    const size_t idx = static_cast<size_t>(it - p.tokens.begin());
    const double pc = it == p.tokens.end() || mass <= 0.0 ? 0.0 : residual[idx] / mass;
    // Always draw, so the stream of uniforms consumed does not depend on the probabilities.
    const double u = rng.Uniform();
    if (u < pc) return static_cast<int32_t>(c);
    if (it != p.tokens.end()) {
      mass -= residual[idx];
      residual[idx] = 0.0;
    }
  }
  TokenDistribution rest;
  rest.tokens = p.tokens;
  rest.probs = std::move(residual);
  *bonus = SampleFrom(rest, rng);
  return -1;
}

AcceptResult AcceptSampling(const DraftTree& tree, const float* logits, int64_t vocab, const SamplingParams& params,
                            Rng& rng) {
  AcceptResult r;
  int32_t node = 0;
  r.path.push_back(0);
  std::vector<int32_t> child_tokens;
  for (;;) {
    const TokenDistribution p = ProcessLogits(logits + static_cast<int64_t>(node) * vocab, vocab, params);
    child_tokens.clear();
    for (int32_t c : tree.children[node]) child_tokens.push_back(tree.tokens[c]);
    int32_t bonus = -1;
    const int32_t picked = AcceptAtNode(p, child_tokens, rng, &bonus);
    if (picked < 0) {
      r.bonus = bonus;
      return r;
    }
    node = tree.children[node][picked];
    r.path.push_back(node);
  }
}

}  // namespace longspec
