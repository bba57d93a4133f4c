#include "speculation/device_round.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace longspec {

StatusOr<TreeLevelBounds> DeviceTreeBounds(const Backend& backend, const std::vector<int>& shape, int64_t proposable) {
  TreeLevelBounds b;
  for (size_t l = 0; l < shape.size(); ++l) {
    const int w = shape[l];
    if (w <= 0 || w > backend.MaxTreeExpandWidth() || w > proposable) {
      return InvalidArgumentError("tree level width " + std::to_string(w) + " outside what " + backend.name() +
                                  " grows on the device (1.." + std::to_string(backend.MaxTreeExpandWidth()) +
                                  ") or the draft's " + std::to_string(proposable) + " proposable tokens");
    }
    b.widest = std::max(b.widest, w);
    if (l + 1 < shape.size()) b.most_parents = std::max(b.most_parents, w);
  }
  return b;
}

Status DeviceRoundState::Reserve(Backend& backend, int32_t max_parents, int32_t max_width, bool* moved) {
  *moved = false;
  const size_t scratch = backend.TreeExpandScratchBytes(max_parents, max_width);
  if (buf_ != nullptr && scratch <= scratch_bytes_) return Status::OK();
  // committed + tokens, parents, scores, path, count + emitted, drawn, the verify tree's tokens,
  // parents, scores and node map, the grown path; the scratch 64-byte aligned.
  const size_t words = 1 + 3 * static_cast<size_t>(kMaxNodes) + kMaxPath + 1 + kMaxPath + kMaxNodes +
                       4 * static_cast<size_t>(kMaxNodes) + kMaxPath;
  const size_t head = (words * sizeof(int32_t) + 63) / 64 * 64;
  LONGSPEC_ASSIGN_OR_RETURN(buf_, backend.Allocate(head + scratch));
  words_ = static_cast<int32_t*>(buf_->data());
  tree_.tokens = words_ + 1;
  tree_.parents = tree_.tokens + kMaxNodes;
  tree_.scores = reinterpret_cast<float*>(tree_.parents + kMaxNodes);
  path_ = reinterpret_cast<int32_t*>(tree_.scores + kMaxNodes);
  count_ = path_ + kMaxPath;
  drawn_ = count_ + 1 + kMaxPath;
  verify_tree_.tokens = drawn_ + kMaxNodes;
  verify_tree_.parents = verify_tree_.tokens + kMaxNodes;
  verify_tree_.scores = reinterpret_cast<float*>(verify_tree_.parents + kMaxNodes);
  node_map_ = reinterpret_cast<int32_t*>(verify_tree_.scores + kMaxNodes);
  grown_path_ = node_map_ + kMaxNodes;
  scratch_ = static_cast<char*>(buf_->data()) + head;
  scratch_bytes_ = scratch;
  // The root's parent and score never change; later nodes are always written before being read.
  const int32_t root_parent = -1;
  const float root_score = 0.0f;
  backend.CopyToDevice(tree_.parents, &root_parent, sizeof(root_parent));
  backend.CopyToDevice(tree_.scores, &root_score, sizeof(root_score));
  *moved = true;
  return Status::OK();
}

void DeviceRoundState::BeginRound(Backend& backend, int32_t committed, int32_t root) {
  const int32_t words[2] = {committed, root};  // words_[0] and tree_.tokens[0] are adjacent
  backend.CopyToDevice(words_, words, sizeof(words));
}

Status DeviceRoundState::Prune(Backend& backend, int32_t nodes, int32_t keep, std::vector<int32_t>* parents) {
  if (nodes < 1 || nodes > kMaxNodes) return InvalidArgumentError("prune: " + std::to_string(nodes) + " nodes");
  // The grown tree's tokens, parents and scores lie kMaxNodes words apart: one read.
  prune_staging_.resize(3 * static_cast<size_t>(kMaxNodes));
  int32_t* host = prune_staging_.data();
  backend.CopyToHost(host, tree_.tokens, 3 * static_cast<size_t>(kMaxNodes) * sizeof(int32_t));
  LONGSPEC_RETURN_IF_ERROR(backend.LastError());
  const int32_t* tokens = host;
  const int32_t* grown_parents = host + kMaxNodes;
  const float* scores = reinterpret_cast<const float*>(host + 2 * kMaxNodes);
  prune_parents_.assign(grown_parents, grown_parents + nodes);
  prune_scores_.assign(scores, scores + nodes);
  const std::vector<int32_t> kept = BestSubtree(prune_parents_, prune_scores_, keep);
  *parents = SubtreeParents(prune_parents_, kept);
  // The verify tree's tokens, parents, scores and node map, also kMaxNodes words apart.
  std::vector<int32_t>& out = prune_out_;
  out.assign(4 * static_cast<size_t>(kMaxNodes), 0);
  for (size_t i = 0; i < kept.size(); ++i) {
    const int32_t g = kept[i];
    out[i] = tokens[g];
    out[kMaxNodes + i] = (*parents)[i];
    std::memcpy(&out[2 * static_cast<size_t>(kMaxNodes) + i], &scores[g], sizeof(float));
    out[3 * static_cast<size_t>(kMaxNodes) + i] = g;
  }
  backend.CopyToDevice(verify_tree_.tokens, out.data(), out.size() * sizeof(int32_t));
  return backend.LastError();
}

Status DeviceRoundState::ReadEmitted(Backend& backend, std::vector<int32_t>* emitted) {
  staging_.resize(1 + kMaxPath);
  backend.CopyToHost(staging_.data(), count_, staging_.size() * sizeof(int32_t));
  LONGSPEC_RETURN_IF_ERROR(backend.LastError());
  const int32_t n = staging_[0];
  if (n < 1 || n > kMaxPath) return InternalError("device round: emitted count " + std::to_string(n) + " out of range");
  emitted->assign(staging_.begin() + 1, staging_.begin() + 1 + n);
  return Status::OK();
}

}  // namespace longspec
