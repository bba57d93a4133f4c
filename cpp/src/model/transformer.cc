#include "model/transformer.h"

#include <cmath>

#include "model/layer_ops.h"

namespace longspec {

View TransformerRunner::Alloc(int64_t rows, int64_t cols, std::unique_ptr<DeviceBuffer>* holder, Status* st) {
  View v;
  if (!st->ok()) return v;
  const DType dt = backend_.activation_dtype();
  auto buf = backend_.Allocate(static_cast<size_t>(rows * cols) * DTypeSize(dt));
  if (!buf.ok()) {
    *st = buf.status();
    return v;
  }
  *holder = std::move(buf).value();
  v.data = (*holder)->data();
  v.dtype = dt;
  v.rows = rows;
  v.cols = cols;
  v.stride = cols;
  return v;
}

Status TransformerRunner::Reserve(int32_t max_rows, int32_t max_logit_rows) {
  if (max_rows <= max_rows_ && max_logit_rows <= max_logit_rows_) return Status::OK();
  max_rows = std::max(max_rows, max_rows_);
  max_logit_rows = std::max(max_logit_rows, max_logit_rows_);
  const ModelConfig& c = config_;
  Status st;
  h_ = Alloc(max_rows, c.hidden_size, &h_buf_, &st);
  xn_ = Alloc(max_rows, c.hidden_size, &xn_buf_, &st);
  qkv_ = Alloc(max_rows, c.qkv_dim(), &qkv_buf_, &st);
  attn_p_ = Alloc(max_rows, c.q_dim(), &attn_p_buf_, &st);
  attn_t_ = Alloc(max_rows, c.q_dim(), &attn_t_buf_, &st);
  View lse = Alloc(2 * max_rows, c.num_heads, &lse_buf_, &st);
  tmp_ = Alloc(max_rows, c.hidden_size, &tmp_buf_, &st);
  gu_ = Alloc(max_rows, 2 * c.intermediate_size, &gu_buf_, &st);
  act_ = Alloc(max_rows, c.intermediate_size, &act_buf_, &st);
  head_ = Alloc(std::max(max_logit_rows, 1), c.hidden_size, &head_buf_, &st);
  logits_view_ = Alloc(std::max(max_logit_rows, 1), c.vocab_size, &logits_buf_, &st);
  LONGSPEC_RETURN_IF_ERROR(st);
  lse_p_ = lse.ptr<float>();
  lse_t_ = lse.ptr<float>() + static_cast<size_t>(max_rows) * c.num_heads;
  max_rows_ = max_rows;
  max_logit_rows_ = max_logit_rows;
  return Status::OK();
}

View TransformerRunner::Forward(const DevicePlan& plan, KvCache& cache) {
  const ModelConfig& c = config_;
  const int32_t n = plan.num_rows;
  const int32_t nh = static_cast<int32_t>(c.num_heads);
  const int32_t nkv = static_cast<int32_t>(c.num_kv_heads);
  const int32_t hd = static_cast<int32_t>(c.head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float eps = static_cast<float>(c.rms_eps);

  View h = h_.Rows(0, n), xn = xn_.Rows(0, n), qkv = qkv_.Rows(0, n), tmp = tmp_.Rows(0, n);
  View attn_p = attn_p_.Rows(0, n), attn_t = attn_t_.Rows(0, n), gu = gu_.Rows(0, n), act = act_.Rows(0, n);
  View q = qkv.Cols(0, c.q_dim());
  View k = qkv.Cols(c.q_dim(), c.kv_dim());
  View v = qkv.Cols(c.q_dim() + c.kv_dim(), c.kv_dim());

  backend_.Embedding(weights_.embedding->data(), c.hidden_size, plan.tokens, h);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = weights_.layers[l];
    const KvLayerView kv = cache.layer(l);
    backend_.RmsNorm(h, L.attn_norm->data(), eps, xn);
    backend_.Linear(xn, *L.qkv, qkv);
    backend_.Rope(qkv, nh + nkv, hd, plan.cos, plan.sin);  // q heads then k heads, contiguous
    backend_.KvWrite(k, v, plan.slots, kv);

    backend_.AttentionPrefix(PrefixAttention(q, kv, plan.prefix_len, attn_p, lse_p_, nh, scale));
    backend_.AttentionTree(TreeAttention(plan, q, kv, attn_t, lse_t_, nh, scale));
    AttentionMergeParams mp;
    mp.out_a = attn_p;
    mp.lse_a = lse_p_;
    mp.out_b = attn_t;
    mp.lse_b = lse_t_;
    mp.out = attn_p;
    mp.num_heads = nh;
    backend_.AttentionMerge(mp);

    backend_.Linear(attn_p, *L.o, tmp);
    backend_.Add(h, tmp);
    SwiGluSublayer(backend_, h, L.mlp_norm->data(), eps, *L.gate_up, *L.down, xn, gu, act, tmp);
  }
  const int32_t n_logit = plan.num_logit_rows;
  if (n_logit > 0) {
    View head = head_.Rows(0, n_logit);
    backend_.GatherRows(h, plan.logit_rows, head);
    backend_.RmsNorm(head, weights_.final_norm->data(), eps, head);
    backend_.Linear(head, *weights_.lm_head, logits_view_.Rows(0, n_logit));
  }
  return h;
}

}  // namespace longspec
