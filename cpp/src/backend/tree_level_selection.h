// The reference semantics of growing one draft-tree level (Backend::TreeExpand): each parent's
// top-k tokens by logit (equal logits: the lower token first), scored by cumulative log-softmax
// in double, then the level's best `width` candidates (higher score, then lower parent, then
// lower token) stored grouped by parent ascending, best first within a parent. The host tree
// growth (speculation/token_tree.cc) and the CPU backend's op both use these, so the two can
// never drift apart; the CUDA kernels are tested against them.
#pragma once

#include <cstdint>

namespace longspec {

struct TreeCandidate {
  double score;
  int32_t parent;
  int32_t token;
};

// Writes `row`'s top min(k, non-NaN entries) tokens as candidates under `parent` (scores
// parent_score + log_softmax) to out[0..), best first; returns the end of what it wrote. NaN
// logits take no part.
TreeCandidate* AppendTopCandidates(const float* row, int64_t vocab, int32_t k, int32_t parent, double parent_score,
                                   TreeCandidate* out);

// Reorders [begin, end) so that its first min(end - begin, width) entries are the level's nodes in
// their stored order; returns how many that is.
int64_t SelectLevel(TreeCandidate* begin, TreeCandidate* end, int32_t width);

}  // namespace longspec
