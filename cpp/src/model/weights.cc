#include "model/weights.h"

#include <cstring>

namespace longspec {

namespace {

struct Names {
  std::string embedding, final_norm, lm_head;
  std::string attn_norm, q, k, v, o, mlp_norm, gate, up, down;  // per layer, with "{}" for the index
  std::string weight = ".weight", bias = ".bias";
};

Names NamesFor(CheckpointNaming naming) {
  Names n;
  if (naming == CheckpointNaming::kHuggingFace) {
    n.embedding = "model.embed_tokens.weight";
    n.final_norm = "model.norm.weight";
    n.lm_head = "lm_head.weight";
    n.attn_norm = "model.layers.{}.input_layernorm";
    n.q = "model.layers.{}.self_attn.q_proj";
    n.k = "model.layers.{}.self_attn.k_proj";
    n.v = "model.layers.{}.self_attn.v_proj";
    n.o = "model.layers.{}.self_attn.o_proj";
    n.mlp_norm = "model.layers.{}.post_attention_layernorm";
    n.gate = "model.layers.{}.mlp.gate_proj";
    n.up = "model.layers.{}.mlp.up_proj";
    n.down = "model.layers.{}.mlp.down_proj";
  } else {
    n.embedding = "token_embd.weight";
    n.final_norm = "output_norm.weight";
    n.lm_head = "output.weight";
    n.attn_norm = "blk.{}.attn_norm";
    n.q = "blk.{}.attn_q";
    n.k = "blk.{}.attn_k";
    n.v = "blk.{}.attn_v";
    n.o = "blk.{}.attn_output";
    n.mlp_norm = "blk.{}.ffn_norm";
    n.gate = "blk.{}.ffn_gate";
    n.up = "blk.{}.ffn_up";
    n.down = "blk.{}.ffn_down";
  }
  return n;
}

std::string At(const std::string& pattern, int64_t layer) {
  std::string s = pattern;
  size_t pos = s.find("{}");
  return s.replace(pos, 2, std::to_string(layer));
}

}  // namespace

Status ReadChecked(const TensorSource& src, const std::string& name, const std::vector<int64_t>& shape, HostTensor* out,
                   DType dtype) {
  const TensorInfo* info = src.Find(name);
  if (info == nullptr) return DataLossError("checkpoint has no tensor \"" + name + "\"");
  if (info->shape != shape) {
    HostTensor want;
    want.shape = shape;
    HostTensor got;
    got.shape = info->shape;
    return DataLossError("tensor \"" + name + "\" has shape " + got.ShapeString() + ", expected " + want.ShapeString());
  }
  return src.Read(name, dtype, out);
}

Status ReadLinear(const TensorSource& src, const std::string& weight_name, const std::string& bias_name, int64_t rows,
                  int64_t cols, Backend& backend, HostTensor* weight, HostTensor* bias) {
  LONGSPEC_RETURN_IF_ERROR(ReadChecked(src, weight_name, {rows, cols}, weight, backend.weight_dtype()));
  if (!bias_name.empty()) LONGSPEC_RETURN_IF_ERROR(ReadChecked(src, bias_name, {rows}, bias, DType::kF32));
  return Status::OK();
}

void UnpermuteGgufQk(HostTensor* w, int64_t n_head) {
  const int64_t rows = w->shape[0];
  const int64_t cols = w->shape.size() > 1 ? w->shape[1] : 1;
  const int64_t head_dim = rows / n_head;
  const int64_t half = head_dim / 2;
  HostTensor out(w->shape, w->dtype);
  const size_t row_bytes = static_cast<size_t>(cols) * w->element_size();
  const char* src = static_cast<const char*>(w->raw());
  char* dst = static_cast<char*>(out.raw());
  // GGUF row (h, i, j) with i < half, j < 2 holds Hugging Face row (h, j, i).
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t src_row = h * head_dim + 2 * i + j;
        const int64_t dst_row = h * head_dim + j * half + i;
        std::memcpy(dst + dst_row * row_bytes, src + src_row * row_bytes, row_bytes);
      }
    }
  }
  *w = std::move(out);
}

HostTensor ConcatRows(const std::vector<const HostTensor*>& parts) {
  int64_t rows = 0;
  for (const HostTensor* p : parts) rows += p->shape[0];
  std::vector<int64_t> shape = parts[0]->shape;
  shape[0] = rows;
  HostTensor out(shape, parts[0]->dtype);
  char* dst = static_cast<char*>(out.raw());
  for (const HostTensor* p : parts) {
    std::memcpy(dst, p->raw(), p->nbytes());
    dst += p->nbytes();
  }
  return out;
}

StatusOr<TransformerWeights> LoadTransformerWeights(const ModelConfig& c, const TensorSource& src,
                                                    CheckpointNaming naming, Backend& backend) {
  const Names n = NamesFor(naming);
  const bool gguf_llama = naming == CheckpointNaming::kGguf && c.arch == Arch::kLlama;
  TransformerWeights w;
  // Norm weights stay fp32; the embedding is in the activation dtype (it feeds the fp32
  // residual through Embedding), Linear weights in the backend's weight dtype.
  auto table = [&](const std::string& name, std::vector<int64_t> shape,
                   DType dtype) -> StatusOr<std::unique_ptr<DeviceBuffer>> {
    HostTensor t;
    LONGSPEC_RETURN_IF_ERROR(ReadChecked(src, name, shape, &t, dtype));
    w.bytes += static_cast<int64_t>(t.nbytes());
    return backend.UploadTable(t);
  };
  auto linear = [&](const HostTensor& weight, const HostTensor* bias,
                    LinearPacking packing = LinearPacking::kPlain) -> StatusOr<std::unique_ptr<LinearWeight>> {
    LONGSPEC_ASSIGN_OR_RETURN(auto lin, backend.CreateLinear(weight, bias, packing));
    w.bytes += lin->bytes();
    return lin;
  };
  // Reads "<base>.weight" [rows, cols] and, when `with_bias`, "<base>.bias" [rows].
  auto read_proj = [&](const std::string& base, int64_t rows, int64_t cols, bool with_bias, HostTensor* weight,
                       HostTensor* bias) -> Status {
    return ReadLinear(src, base + n.weight, with_bias ? base + n.bias : std::string(), rows, cols, backend, weight, bias);
  };

  const int64_t H = c.hidden_size, I = c.intermediate_size;
  LONGSPEC_ASSIGN_OR_RETURN(w.embedding, table(n.embedding, {c.vocab_size, H}, backend.activation_dtype()));
  w.layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = w.layers[l];
    Status st = [&]() -> Status {
      LONGSPEC_ASSIGN_OR_RETURN(L.attn_norm, table(At(n.attn_norm, l) + n.weight, {H}, DType::kF32));
      LONGSPEC_ASSIGN_OR_RETURN(L.mlp_norm, table(At(n.mlp_norm, l) + n.weight, {H}, DType::kF32));
      {
        HostTensor q, k, v, qb, kb, vb;
        LONGSPEC_RETURN_IF_ERROR(read_proj(At(n.q, l), c.q_dim(), H, c.attention_bias, &q, &qb));
        LONGSPEC_RETURN_IF_ERROR(read_proj(At(n.k, l), c.kv_dim(), H, c.attention_bias, &k, &kb));
        LONGSPEC_RETURN_IF_ERROR(read_proj(At(n.v, l), c.kv_dim(), H, c.attention_bias, &v, &vb));
        if (gguf_llama) {
          UnpermuteGgufQk(&q, c.num_heads);
          UnpermuteGgufQk(&k, c.num_kv_heads);
          if (c.attention_bias) {
            UnpermuteGgufQk(&qb, c.num_heads);
            UnpermuteGgufQk(&kb, c.num_kv_heads);
          }
        }
        HostTensor qkv = ConcatRows({&q, &k, &v});
        if (c.attention_bias) {
          HostTensor bias = ConcatRows({&qb, &kb, &vb});
          LONGSPEC_ASSIGN_OR_RETURN(L.qkv, linear(qkv, &bias));
        } else {
          LONGSPEC_ASSIGN_OR_RETURN(L.qkv, linear(qkv, nullptr));
        }
      }
      {
        HostTensor o, ob;
        LONGSPEC_RETURN_IF_ERROR(read_proj(At(n.o, l), H, c.q_dim(), c.attention_out_bias, &o, &ob));
        LONGSPEC_ASSIGN_OR_RETURN(L.o, linear(o, c.attention_out_bias ? &ob : nullptr));
      }
      {
        HostTensor gate, up, unused;
        LONGSPEC_RETURN_IF_ERROR(read_proj(At(n.gate, l), I, H, false, &gate, &unused));
        LONGSPEC_RETURN_IF_ERROR(read_proj(At(n.up, l), I, H, false, &up, &unused));
        HostTensor gate_up = ConcatRows({&gate, &up});
        LONGSPEC_ASSIGN_OR_RETURN(L.gate_up, linear(gate_up, nullptr, LinearPacking::kGateUp));
      }
      {
        HostTensor down, unused;
        LONGSPEC_RETURN_IF_ERROR(read_proj(At(n.down, l), H, I, false, &down, &unused));
        LONGSPEC_ASSIGN_OR_RETURN(L.down, linear(down, nullptr));
      }
      return Status::OK();
    }();
    if (!st.ok()) return st.WithContext("layer " + std::to_string(l));
  }
  LONGSPEC_ASSIGN_OR_RETURN(w.final_norm, table(n.final_norm, {H}, DType::kF32));
  {
    HostTensor head;
    LONGSPEC_RETURN_IF_ERROR(ReadHeadTensor(c, src, naming, backend.weight_dtype(), &head));
    LONGSPEC_ASSIGN_OR_RETURN(w.lm_head, linear(head, nullptr));
  }
  return w;
}

Status ReadHeadTensor(const ModelConfig& c, const TensorSource& src, CheckpointNaming naming, DType dtype,
                      HostTensor* head) {
  const Names n = NamesFor(naming);
  if (!c.tie_embeddings && src.Find(n.lm_head) == nullptr) {
    return DataLossError("checkpoint has no tensor \"" + n.lm_head + "\" and does not tie embeddings");
  }
  const std::string& name = c.tie_embeddings ? n.embedding : n.lm_head;
  return ReadChecked(src, name, {c.vocab_size, c.hidden_size}, head, dtype);
}

}  // namespace longspec
