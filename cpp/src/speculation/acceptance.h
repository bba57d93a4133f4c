// Deciding which part of a verified draft tree to keep.
//
// `logits` holds one row of target logits per tree node (node order); the row of node i is the
// target's next-token distribution after the path root..i.
//
// Greedy: `argmax[i]` is the target's argmax at node i. A child is accepted when its token
// equals the argmax at its parent; the
// deepest fully accepted path is kept and the bonus is the argmax after its last node. The
// emitted tokens are exactly what plain greedy decoding produces.
//
// Sampling (lossless, DESIGN.md section 4): the draft's children are deterministic (top-k), i.e.
// point-mass proposals. At a node with processed target distribution p, try its children in
// order: accept child c with probability p(c); on rejection set p(c) = 0 and renormalise. If all
// children are rejected (or the node is a leaf) the bonus token is drawn from what is left of p.
// Each emitted token is then distributed exactly as the target's own sampling would draw it.
#pragma once

#include <cstdint>
#include <vector>

#include "sampling/sampling.h"
#include "longspec/config.h"
#include "speculation/token_tree.h"

namespace longspec {

struct AcceptResult {
  std::vector<int32_t> path;  // accepted node indices, root first (the root is always kept)
  int32_t bonus = -1;         // the token the target adds after the last accepted node
};

AcceptResult AcceptGreedy(const DraftTree& tree, const int32_t* argmax);

// For tree-size studies (EAGLE-2 style reranking): per count N of `best`, the tokens (accepted +
// bonus) a greedy round would have emitted had only its N best nodes, root included, been
// verified (SubtreeRanks' order: what verify_nodes = N - 1 verifies). `tokens`,
// `parents` (-1 for the root) and `scores` describe `nodes` nodes in tree order, `argmax` the
// target's choice per node.
std::vector<int32_t> GreedyTokensWithinBest(const int32_t* tokens, const int32_t* parents, const float* scores,
                                            int32_t nodes, const int32_t* argmax, const std::vector<int32_t>& best);

AcceptResult AcceptSampling(const DraftTree& tree, const float* logits, int64_t vocab, const SamplingParams& params,
                            Rng& rng);

// One node's step of the sampling rule, exposed for tests: given the processed distribution p
// and the children's tokens in trial order, returns the index of the accepted child in
// `child_tokens`, or -1 with *bonus set to a token drawn from the residual distribution.
int32_t AcceptAtNode(const TokenDistribution& p, const std::vector<int32_t>& child_tokens, Rng& rng, int32_t* bonus);

}  // namespace longspec
