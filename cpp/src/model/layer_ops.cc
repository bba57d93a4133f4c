#include "model/layer_ops.h"

namespace longspec {

AttentionPrefixParams PrefixAttention(View q, const KvLayerView& kv, const int32_t* kv_len, View out, float* lse,
                                      int32_t num_heads, float scale) {
  AttentionPrefixParams p;
  p.q = q;
  p.kv = kv;
  p.kv_len = kv_len;
  p.out = out;
  p.lse = lse;
  p.num_heads = num_heads;
  p.scale = scale;
  return p;
}

AttentionTreeParams TreeAttention(const DevicePlan& plan, View q, const KvLayerView& kv, View out, float* lse,
                                  int32_t num_heads, float scale) {
  AttentionTreeParams p;
  p.q = q;
  p.kv = kv;
  p.committed = plan.committed;
  p.band_start = plan.band_start;
  p.tree_base_slot = plan.step_base;
  p.visible_offsets = plan.visible_offsets;
  p.visible_nodes = plan.visible_nodes;
  p.out = out;
  p.lse = lse;
  p.num_heads = num_heads;
  p.scale = scale;
  return p;
}

void SwiGluSublayer(Backend& backend, View h, const void* norm_weight, float eps, const LinearWeight& gate_up,
                    const LinearWeight& down, View xn, View gate_up_out, View act, View tmp) {
  backend.RmsNorm(h, norm_weight, eps, xn);
  backend.Linear(xn, gate_up, gate_up_out);
  backend.SiluMul(gate_up_out, act);
  backend.Linear(act, down, tmp);
  backend.Add(h, tmp);
}

}  // namespace longspec
