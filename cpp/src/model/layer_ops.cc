#include "model/layer_ops.h"

namespace longspec {

AttentionPrefixParams PrefixAttention(View q, const KvLayerView& kv, const int32_t* kv_len, int32_t max_kv_len,
                                      View out, float* lse, int32_t num_heads, float scale, void* workspace,
                                      size_t workspace_bytes) {
  AttentionPrefixParams p;
  p.q = q;
  p.kv = kv;
  p.kv_len = kv_len;
  p.max_kv_len = max_kv_len;
  p.out = out;
  p.lse = lse;
  p.num_heads = num_heads;
  p.scale = scale;
  p.workspace = workspace;
  p.workspace_bytes = workspace_bytes;
  return p;
}

AttentionTreeParams TreeAttention(const DevicePlan& plan, View q, const KvLayerView& kv, View out, float* lse,
                                  int32_t num_heads, float scale) {
  AttentionTreeParams p;
  p.q = q;
  p.kv = kv;
  p.band_start = plan.band_start;
  p.band_end = plan.band_end;
  p.visible_offsets = plan.visible_offsets;
  p.visible_slots = plan.visible_slots;
  p.out = out;
  p.lse = lse;
  p.num_heads = num_heads;
  p.scale = scale;
  return p;
}

void SwiGluSublayer(Backend& backend, View h, const void* norm_weight, float eps, const LinearWeight& gate_up,
                    const LinearWeight& down, const SwiGluScratch& s, View h_out) {
  const int64_t n = h.rows;
  backend.NormLinearSiluMul(h, norm_weight, eps, s.xn.Rows(0, n), gate_up, s.act.Rows(0, n), s.gate_up.Rows(0, n));
  if (h_out.data != nullptr) {
    backend.LinearAddConvert(s.act.Rows(0, n), down, h, s.tmp.Rows(0, n), h_out);
  } else {
    backend.LinearAdd(s.act.Rows(0, n), down, h, s.tmp.Rows(0, n));
  }
}

}  // namespace longspec
