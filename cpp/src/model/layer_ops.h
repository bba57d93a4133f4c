// Pieces of a decoder layer shared by the target runner and the draft: attention parameter
// blocks filled from a step plan, and the SwiGLU sublayer.
#pragma once

#include "backend/backend.h"
#include "model/step_plan.h"

namespace longspec {

// Prefix attention of `q` over [0, kv_len[r]) of `kv`. max_kv_len bounds kv_len[] (sizes the
// launch); the workspace is the backend's AttentionWorkspaceBytes for the call's shape.
AttentionPrefixParams PrefixAttention(View q, const KvLayerView& kv, const int32_t* kv_len, int32_t max_kv_len,
                                      View out, float* lse, int32_t num_heads, float scale, void* workspace,
                                      size_t workspace_bytes);

// Band + tree attention over the plan's key sequences.
AttentionTreeParams TreeAttention(const DevicePlan& plan, View q, const KvLayerView& kv, View out, float* lse,
                                  int32_t num_heads, float scale);

// Scratch views of a SwiGLU sublayer, each of h's row count.
struct SwiGluScratch {
  View xn;       // [rows, hidden], activation dtype
  View gate_up;  // [rows, 2 * intermediate] (used by the composed LinearSiluMul)
  View act;      // [rows, intermediate]
  View tmp;      // [rows, hidden] (used by the composed LinearAdd)
};

// h += down(silu(gate(x)) * up(x)) with x = RMSNorm(h) * norm_weight; with h_out (h's rows and
// columns), also h_out = the updated h in h_out's dtype (Backend::LinearAddConvert).
void SwiGluSublayer(Backend& backend, View h, const void* norm_weight, float eps, const LinearWeight& gate_up,
                    const LinearWeight& down, const SwiGluScratch& s, View h_out = View());

}  // namespace longspec
