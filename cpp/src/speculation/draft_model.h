// The LongSpec draft (DESIGN.md section 2): one target-sized decoder layer with
//   h1 = h0 + SelfAttn(RMSNorm_a(h0))   sliding window W over a ring buffer, GQA, RoPE, q/k/v bias
//   h2 = h1 + CrossAttn(RMSNorm_b(h1))  q = RoPE(Wq x) at the token's position; K/V = the target's
//                                       last-layer cache as stored (positions < t, committed)
//   h3 = h2 + SwiGLU(RMSNorm_c(h2));    logits = target_lm_head([final_norm](h3))
// Its memory is the ring of W committed positions plus the current tree: independent of the
// context length. Self-attention is the first sublayer, so a token's K/V depend only on the token
// and its position: prefill and commit compute K/V alone (no attention, no MLP, no LM head).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "model/target_model.h"
#include "model/kv_cache.h"
#include "model/step_plan.h"
#include "speculation/device_round.h"
#include "speculation/draft_config.h"
#include "speculation/drafter.h"
#include "util/env.h"

namespace longspec {

struct DraftWeights {
  std::unique_ptr<DeviceBuffer> self_norm, cross_norm, mlp_norm, final_norm;
  std::unique_ptr<LinearWeight> qkv, self_o, cross_q, cross_o, gate_up, down;
  int64_t bytes = 0;
};

class DraftModel final : public DeviceDrafter {
 public:
  // Loads `dir` and checks it fits `target`; the draft shares the target's embedding, LM head,
  // norm eps and RoPE, and cross-attends to `sequence`'s last-layer KV cache, so both must
  // outlive it.
  static StatusOr<std::unique_ptr<DraftModel>> Load(const std::string& dir, const TargetModel& target,
                                                    TargetSequence& sequence);

  const DraftConfig& config() const { return config_; }
  const ModelInfo& info() const { return info_; }
  // Tokens the draft can propose: the whole vocabulary, or the subset its head_tokens.json lists
  // (an LM head over only those rows of the target's: a smaller draft LM head, FR-Spec style;
  // verification still runs over the whole vocabulary, so the output is unchanged).
  int64_t proposal_vocab() const override {
    return head_tokens_.empty() ? target_.config().vocab_size : static_cast<int64_t>(head_tokens_.size());
  }
  // Backend memory holding the subset's ids (logit column -> token), or null for the whole head.
  const int32_t* head_tokens() const {
    return head_tokens_device_ != nullptr ? static_cast<const int32_t*>(head_tokens_device_->data()) : nullptr;
  }
  static constexpr const char* kHeadTokensFile = "head_tokens.json";

  Status Prefill(const std::vector<int32_t>& prompt) override;
  StatusOr<const float*> LevelLogits(const DraftTree& tree, int32_t first_row) override;
  Status Commit(const DraftTree& tree, const std::vector<int32_t>& path) override;
  Status CatchUp(const std::vector<int32_t>& tokens) override;
  int64_t cache_bytes() const override { return cache_.allocated_bytes(); }
  Status EnsureRows(int32_t rows) override;

  // ---- the round on the device (DeviceDrafter) ------------------------------------------------
  DeviceRoundState& round() override { return round_; }
  // The nodes' K/V land in the ring's tree slots, the leaves' too (K/V alone are cheap: no
  // attention, MLP or LM head), so that the commit is a move. Replays a captured graph per level
  // (shape, cross-attention bucket, level) when the backend has graphs, each launched once its
  // level's plan is uploaded.
  Status EnqueueTree(const std::vector<int>& shape, int32_t committed, int32_t root) override;
  void EnqueueCommit(const int32_t* path) override;
  Status AdvanceCommitted(const std::vector<int32_t>& emitted) override {
    cache_.set_committed(cache_.committed() + static_cast<int64_t>(emitted.size()));
    return Status::OK();
  }
  bool last_tree_captured() const override { return last_tree_captured_; }

 private:
  DraftModel(const TargetModel& target, TargetSequence& sequence)
      : target_(target), sequence_(sequence), backend_(target.backend()) {}
  // Computes K/V of `tokens` at positions first_position.. and writes them into the ring.
  void WriteKv(const std::vector<int32_t>& tokens, int64_t first_position);
  // Enqueues the draft layer over the `n` rows of an uploaded plan (cross-attention lengths in
  // cross_len_, at most max_cross) up to the LM head's logits in Buffer(kLogits).
  void ForwardLevel(const DevicePlan& plan, int32_t n, int32_t max_cross);
  // Enqueues only the K/V of the plan's `n` rows (embedding, norm, QKV, RoPE) into the ring.
  void ForwardKv(const DevicePlan& plan, int32_t n);
  Status EnsureRound(const std::vector<int>& shape);
  // Reads head_tokens.json when the draft has one and builds the subset's LM head.
  Status LoadHeadSubset(const std::string& dir);
  View Buffer(int idx, int64_t rows) const;

  const TargetModel& target_;
  TargetSequence& sequence_;
  Backend& backend_;
  DraftConfig config_;
  ModelInfo info_;
  DraftWeights w_;
  KvCache cache_{1, 0, 0, 0};
  DevicePlan plan_buf_;
  int32_t max_rows_ = 0;
  std::unique_ptr<DeviceBuffer> act_buf_, ws_buf_;
  size_t ws_bytes_ = 0;
  std::vector<View> views_;
  float* lse_ = nullptr;
  int32_t* cross_len_ = nullptr;
  std::vector<float> host_logits_, scattered_logits_;
  std::unique_ptr<LinearWeight> head_;              // the subset head (null: the target's)
  std::unique_ptr<DeviceBuffer> head_tokens_device_;
  std::vector<int32_t> head_tokens_;
  // Device round: one plan per level (the last for the leaves' K/V), graphs by (shape, bucket).
  DeviceRoundState round_;
  std::vector<DevicePlan> level_plans_;
  std::vector<int32_t> cross_staging_;
  bool last_tree_captured_ = false;
  // LONGSPEC_DRAFT_LEVEL_GRAPHS=0: one graph for the whole tree instead of one per level.
  bool level_graphs_ = EnvFlag("LONGSPEC_DRAFT_LEVEL_GRAPHS", true);
  // (shape, cross-attention bucket, level; -1: every level in one graph).
  using GraphKey = std::tuple<std::vector<int>, int32_t, int32_t>;
  std::map<GraphKey, std::unique_ptr<CapturedGraph>> graphs_;
};

}  // namespace longspec
