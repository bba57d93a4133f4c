// The composed versions of the fused ops (backends that fuse them override these).
#include "backend/backend.h"

#include <cassert>

namespace longspec {

void Backend::RopeKvWrite(View qkv, int32_t num_heads, int32_t num_kv_heads, int32_t head_dim, const float* cos,
                          const float* sin, const int32_t* slots, KvLayerView kv) {
  Rope(qkv, num_heads + num_kv_heads, head_dim, cos, sin);  // q heads then k heads, contiguous
  const int64_t q_dim = static_cast<int64_t>(num_heads) * head_dim;
  const int64_t kv_dim = static_cast<int64_t>(num_kv_heads) * head_dim;
  KvWrite(qkv.Cols(q_dim, kv_dim), qkv.Cols(q_dim + kv_dim, kv_dim), slots, kv);
}

void Backend::HybridAttention(const HybridAttentionParams& p) {
  AttentionPrefix(p.prefix);
  AttentionTree(p.tree);
  AttentionMergeParams mp;
  mp.out_a = p.prefix.out;
  mp.lse_a = p.prefix.lse;
  mp.out_b = p.tree.out;
  mp.lse_b = p.tree.lse;
  mp.out = p.out;
  mp.num_heads = p.prefix.num_heads;
  AttentionMerge(mp);
}

void Backend::LinearAdd(View x, const LinearWeight& w, View h, View scratch) {
  View y = scratch.Rows(0, x.rows).Cols(0, w.out_features);
  Linear(x, w, y);
  Add(h, y);
}

void Backend::LinearAddConvert(View x, const LinearWeight& w, View h, View scratch, View h_out) {
  LinearAdd(x, w, h, scratch);
  Convert(h, h_out);
}

void Backend::LinearSiluMul(View x, const LinearWeight& w, View out, View scratch) {
  assert(w.packing == LinearPacking::kGateUp);
  View gu = scratch.Rows(0, x.rows).Cols(0, w.out_features);
  Linear(x, w, gu);
  SiluMul(gu, out);
}

void Backend::NormLinear(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out) {
  RmsNorm(h, norm_weight, eps, xn);
  Linear(xn, w, out);
}

void Backend::NormLinearRopeKv(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View qkv,
                               int32_t num_heads, int32_t num_kv_heads, int32_t head_dim, const float* cos,
                               const float* sin, const int32_t* slots, KvLayerView kv) {
  NormLinear(h, norm_weight, eps, xn, w, qkv);
  RopeKvWrite(qkv, num_heads, num_kv_heads, head_dim, cos, sin, slots, kv);
}

void Backend::NormLinearRope(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out,
                             int32_t num_heads, int32_t head_dim, const float* cos, const float* sin) {
  NormLinear(h, norm_weight, eps, xn, w, out);
  Rope(out, num_heads, head_dim, cos, sin);
}

void Backend::NormLinearSiluMul(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out,
                                View scratch) {
  RmsNorm(h, norm_weight, eps, xn);
  LinearSiluMul(xn, w, out, scratch);
}

void Backend::LinearArgmax(View x, const LinearWeight& w, int32_t* ids, View logits) {
  View l = logits.Rows(0, x.rows);
  Linear(x, w, l);
  Argmax(l, ids);
}

void Backend::GatherNormLinearArgmax(View h, const int32_t* rows, const void* norm_weight, float eps, View head,
                                     View head_n, const LinearWeight& w, int32_t* ids, View logits) {
  GatherRows(h, rows, head);
  RmsNorm(head, norm_weight, eps, head_n);
  LinearArgmax(head_n, w, ids, logits);
}

}  // namespace longspec
