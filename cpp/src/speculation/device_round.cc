#include "speculation/device_round.h"

#include <cstring>

namespace longspec {

Status DeviceRoundState::Reserve(Backend& backend, int32_t max_parents, int32_t max_width, bool* moved) {
  *moved = false;
  const size_t scratch = backend.TreeExpandScratchBytes(max_parents, max_width);
  if (buf_ != nullptr && scratch <= scratch_bytes_) return Status::OK();
  // committed + tokens, parents, scores, path, count + emitted, drawn; the scratch 64-byte aligned.
  const size_t words = 1 + 3 * static_cast<size_t>(kMaxNodes) + kMaxPath + 1 + kMaxPath + kMaxNodes;
  const size_t head = (words * sizeof(int32_t) + 63) / 64 * 64;
  LONGSPEC_ASSIGN_OR_RETURN(buf_, backend.Allocate(head + scratch));
  words_ = static_cast<int32_t*>(buf_->data());
  tree_.tokens = words_ + 1;
  tree_.parents = tree_.tokens + kMaxNodes;
  tree_.scores = reinterpret_cast<float*>(tree_.parents + kMaxNodes);
  path_ = reinterpret_cast<int32_t*>(tree_.scores + kMaxNodes);
  count_ = path_ + kMaxPath;
  drawn_ = count_ + 1 + kMaxPath;
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
