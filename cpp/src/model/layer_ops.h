// Pieces of a decoder layer shared by the target runner and the draft: attention parameter
// blocks filled from a step plan, and the SwiGLU sublayer.
#pragma once

#include "backend/backend.h"
#include "model/step_plan.h"

namespace longspec {

AttentionPrefixParams PrefixAttention(View q, const KvLayerView& kv, const int32_t* kv_len, View out, float* lse,
                                      int32_t num_heads, float scale);

// Band + tree attention over the plan's key sequences.
AttentionTreeParams TreeAttention(const DevicePlan& plan, View q, const KvLayerView& kv, View out, float* lse,
                                  int32_t num_heads, float scale);

// h += down(silu(gate(x)) * up(x)) with x = RMSNorm(h) * norm_weight. xn, gate_up, act and tmp
// are scratch views of h's row count.
void SwiGluSublayer(Backend& backend, View h, const void* norm_weight, float eps, const LinearWeight& gate_up,
                    const LinearWeight& down, View xn, View gate_up_out, View act, View tmp);

}  // namespace longspec
