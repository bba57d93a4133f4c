// The LongSpec draft (DESIGN.md section 2): one target-sized decoder layer with
//   h1 = h0 + SelfAttn(RMSNorm_a(h0))   sliding window W over a ring buffer, GQA, RoPE, q/k/v bias
//   h2 = h1 + CrossAttn(RMSNorm_b(h1))  q = RoPE(Wq x) at the token's position; K/V = the target's
//                                       last-layer cache as stored (positions < t, committed)
//   h3 = h2 + SwiGLU(RMSNorm_c(h2));    logits = target_lm_head([final_norm](h3))
// Its memory is the ring of W committed positions plus the current tree: independent of the
// context length. Self-attention is the first sublayer, so a token's K/V depend only on the token
// and its position: prefill and commit compute K/V alone (no attention, no MLP, no LM head).
#pragma once

#include <memory>
#include <string>

#include "model/target_model.h"
#include "model/kv_cache.h"
#include "model/step_plan.h"
#include "speculation/draft_config.h"
#include "speculation/drafter.h"

namespace longspec {

struct DraftWeights {
  std::unique_ptr<DeviceBuffer> self_norm, cross_norm, mlp_norm, final_norm;
  std::unique_ptr<LinearWeight> qkv, self_o, cross_q, cross_o, gate_up, down;
  int64_t bytes = 0;
};

class DraftModel final : public Drafter {
 public:
  // Loads `dir` and checks it fits `target`; the draft shares the target's embedding, LM head,
  // norm eps and RoPE, and cross-attends to `sequence`'s last-layer KV cache, so both must
  // outlive it.
  static StatusOr<std::unique_ptr<DraftModel>> Load(const std::string& dir, const TargetModel& target,
                                                    TargetSequence& sequence);

  const DraftConfig& config() const { return config_; }
  const ModelInfo& info() const { return info_; }

  Status Prefill(const std::vector<int32_t>& prompt) override;
  StatusOr<const float*> LevelLogits(const DraftTree& tree, int32_t first_row) override;
  Status Commit(const DraftTree& tree, const std::vector<int32_t>& path) override;
  int64_t cache_bytes() const override { return cache_.allocated_bytes(); }
  Status EnsureRows(int32_t rows) override;

 private:
  DraftModel(const TargetModel& target, TargetSequence& sequence)
      : target_(target), sequence_(sequence), backend_(target.backend()) {}
  // Computes K/V of `tokens` at positions first_position.. and writes them into the ring.
  void WriteKv(const std::vector<int32_t>& tokens, int64_t first_position);
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
  std::vector<float> host_logits_;
};

}  // namespace longspec
