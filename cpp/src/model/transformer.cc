#include "model/transformer.h"

#include <algorithm>
#include <cmath>

#include "model/layer_ops.h"

namespace longspec {

size_t ViewArena::Add(int64_t rows, int64_t cols, DType dtype) {
  entries_.push_back({bytes_, rows, cols, dtype});
  bytes_ += (static_cast<size_t>(rows * cols) * DTypeSize(dtype) + 63) / 64 * 64;
  return entries_.size() - 1;
}

View ViewArena::Get(size_t index, void* base) const {
  const Entry& e = entries_[index];
  View v;
  v.data = static_cast<char*>(base) + e.offset;
  v.dtype = e.dtype;
  v.rows = e.rows;
  v.cols = e.cols;
  v.stride = e.cols;
  return v;
}

Status TransformerRunner::Reserve(int32_t max_rows, int32_t max_logit_rows, int64_t max_kv_len, bool* moved) {
  *moved = false;
  if (max_rows <= max_rows_ && max_logit_rows <= max_logit_rows_ && max_kv_len <= max_kv_len_) return Status::OK();
  max_rows = std::max(max_rows, max_rows_);
  max_logit_rows = std::max({max_logit_rows, max_logit_rows_, 1});
  max_kv_len = std::max(max_kv_len, max_kv_len_);
  const ModelConfig& c = config_;
  const DType act = backend_.activation_dtype();
  const DType f32 = DType::kF32;  // statistics and logits
  const DType res = backend_.residual_dtype();
  ViewArena a;
  const size_t i_h = a.Add(max_rows, c.hidden_size, res);
  const size_t i_xn = a.Add(max_rows, c.hidden_size, act);
  const size_t i_qkv = a.Add(max_rows, c.qkv_dim(), act);
  const size_t i_attn_p = a.Add(max_rows, c.q_dim(), act);
  const size_t i_attn_t = a.Add(max_rows, c.q_dim(), act);
  const size_t i_tmp = a.Add(max_rows, c.hidden_size, act);
  const size_t i_gu = a.Add(max_rows, 2 * c.intermediate_size, act);
  const size_t i_act = a.Add(max_rows, c.intermediate_size, act);
  const size_t i_head = a.Add(max_logit_rows, c.hidden_size, res);
  const size_t i_head_n = a.Add(max_logit_rows, c.hidden_size, act);
  const size_t i_logits = a.Add(max_logit_rows, c.vocab_size, f32);
  const size_t i_lse = a.Add(2 * max_rows, c.num_heads, f32);  // statistics are fp32 whatever the activations
  const size_t i_ids = a.Add(max_logit_rows, 1, DType::kI32);
  // Both new buffers first: a failed allocation leaves the runner as it was (and usable).
  LONGSPEC_ASSIGN_OR_RETURN(auto act_buf, backend_.Allocate(a.bytes()));
  const size_t ws_bytes = backend_.AttentionWorkspaceBytes(max_rows, static_cast<int32_t>(c.num_heads),
                                                           static_cast<int32_t>(c.head_dim), max_kv_len);
  std::unique_ptr<DeviceBuffer> ws_buf;
  if (ws_bytes > 0) {
    auto ws = backend_.Allocate(ws_bytes);
    if (!ws.ok()) return ws.status().WithContext("attention workspace");
    ws_buf = std::move(ws).value();
  }
  *moved = true;
  act_buf_ = std::move(act_buf);
  ws_buf_ = std::move(ws_buf);
  ws_bytes_ = ws_bytes;
  void* base = act_buf_->data();
  h_ = a.Get(i_h, base);
  xn_ = a.Get(i_xn, base);
  qkv_ = a.Get(i_qkv, base);
  attn_p_ = a.Get(i_attn_p, base);
  attn_t_ = a.Get(i_attn_t, base);
  tmp_ = a.Get(i_tmp, base);
  gu_ = a.Get(i_gu, base);
  act_ = a.Get(i_act, base);
  head_ = a.Get(i_head, base);
  head_n_ = a.Get(i_head_n, base);
  logits_ = a.Get(i_logits, base);
  View lse = a.Get(i_lse, base);
  lse_p_ = lse.ptr<float>();
  lse_t_ = lse.ptr<float>() + static_cast<size_t>(max_rows) * c.num_heads;
  ids_ = a.Get(i_ids, base).ptr<int32_t>();
  max_rows_ = max_rows;
  max_logit_rows_ = max_logit_rows;
  max_kv_len_ = max_kv_len;
  return Status::OK();
}

void TransformerRunner::Forward(const DevicePlan& plan, KvCache& cache, StepOutput output, int32_t kv_bound,
                                int64_t layer_begin, int64_t layer_end) {
  const ModelConfig& c = config_;
  if (layer_end < 0) layer_end = c.num_layers;
  const int32_t n = plan.num_rows;
  const int32_t nh = static_cast<int32_t>(c.num_heads);
  const int32_t nkv = static_cast<int32_t>(c.num_kv_heads);
  const int32_t hd = static_cast<int32_t>(c.head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float eps = static_cast<float>(c.rms_eps);
  void* ws = ws_buf_ ? ws_buf_->data() : nullptr;

  View h = h_.Rows(0, n), xn = xn_.Rows(0, n), qkv = qkv_.Rows(0, n), tmp = tmp_.Rows(0, n);
  View attn_p = attn_p_.Rows(0, n), attn_t = attn_t_.Rows(0, n);
  const SwiGluScratch mlp{xn, gu_.Rows(0, n), act_.Rows(0, n), tmp};
  View q = qkv.Cols(0, c.q_dim());

  if (layer_begin == 0) backend_.Embedding(weights_.embedding->data(), c.hidden_size, plan.tokens, h);
  for (int64_t l = layer_begin; l < layer_end; ++l) {
    const LayerWeights& L = weights_.layers[l];
    const KvLayerView kv = cache.layer(l);
    backend_.NormLinearRopeKv(h, L.attn_norm->data(), eps, xn, *L.qkv, qkv, nh, nkv, hd, plan.cos, plan.sin, plan.slots,
                              kv);
    HybridAttentionParams hp;
    hp.prefix = PrefixAttention(q, kv, plan.prefix_len, kv_bound, attn_p, lse_p_, nh, scale, ws, ws_bytes_);
    hp.prefix.keys_precede_step = true;  // positions below S(t) <= committed (step_plan.h)
    hp.tree = TreeAttention(plan, q, kv, attn_t, lse_t_, nh, scale);
    hp.out = attn_p;
    backend_.HybridAttention(hp);
    backend_.LinearAdd(attn_p, *L.o, h, tmp);
    SwiGluSublayer(backend_, h, L.mlp_norm->data(), eps, *L.gate_up, *L.down, mlp);
  }
  const int32_t n_logit = plan.num_logit_rows;
  if (layer_end < c.num_layers || output == StepOutput::kNone || n_logit == 0) return;
  View head = head_.Rows(0, n_logit), head_n = head_n_.Rows(0, n_logit);
  if (output == StepOutput::kArgmax) {
    backend_.GatherNormLinearArgmax(h, plan.logit_rows, weights_.final_norm->data(), eps, head, head_n,
                                    *weights_.lm_head, ids_, logits_.Rows(0, n_logit));
    return;
  }
  backend_.GatherRows(h, plan.logit_rows, head);
  backend_.RmsNorm(head, weights_.final_norm->data(), eps, head_n);
  backend_.Linear(head_n, *weights_.lm_head, logits_.Rows(0, n_logit));
}

}  // namespace longspec
