#include "model/model_config.h"

#include <algorithm>
#include <cmath>

#include "loader/gguf.h"
#include "util/json.h"

namespace longspec {

const char* ArchName(Arch a) {
  switch (a) {
    case Arch::kLlama: return "llama";
    case Arch::kQwen2: return "qwen2";
  }
  return "?";
}

// ------------------------------------------------------------------------------------------
// RoPE frequencies. fp32 where Hugging Face computes in fp32, so our cos/sin track its tables.

std::vector<float> RopeConfig::InverseFrequencies(int64_t head_dim) const {
  const int64_t half = head_dim / 2;
  const float base = static_cast<float>(theta);
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / std::pow(base, exponent);
  }
  switch (type) {
    case RopeType::kDefault:
      break;
    case RopeType::kLinear:
      for (float& f : inv) f = f / static_cast<float>(factor);
      break;
    case RopeType::kLlama3: {
      const double old_ctx = static_cast<double>(original_max_position);
      const double low_wavelen = old_ctx / low_freq_factor;
      const double high_wavelen = old_ctx / high_freq_factor;
      for (float& f : inv) {
        const double wavelen = 2.0 * M_PI / f;
        if (wavelen > low_wavelen) {
          f = static_cast<float>(f / factor);
        } else if (wavelen >= high_wavelen) {
          const double smooth = (old_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
          f = static_cast<float>((1.0 - smooth) * f / factor + smooth * f);
        }
      }
      break;
    }
    case RopeType::kYarn: {
      const double dim = static_cast<double>(head_dim);
      const double max_pos = static_cast<double>(original_max_position);
      auto correction_dim = [&](double rotations) {
        return dim * std::log(max_pos / (rotations * 2.0 * M_PI)) / (2.0 * std::log(theta));
      };
      double low = correction_dim(beta_fast);
      double high = correction_dim(beta_slow);
      if (yarn_truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1.0);
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        float ramp = static_cast<float>((static_cast<double>(i) - low) / (high - low));
        ramp = std::min(1.0f, std::max(0.0f, ramp));
        const float extrapolation_factor = 1.0f - ramp;
        const float extrapolated = inv[i];
        const float interpolated = inv[i] / static_cast<float>(factor);
        inv[i] = interpolated * (1.0f - extrapolation_factor) + extrapolated * extrapolation_factor;
      }
      break;
    }
  }
  if (!freq_factors.empty()) {
    for (int64_t i = 0; i < half && i < static_cast<int64_t>(freq_factors.size()); ++i) inv[i] /= freq_factors[i];
  }
  return inv;
}

float RopeConfig::AttentionScaling() const {
  if (type != RopeType::kYarn) return 1.0f;
  if (attention_factor > 0.0) return static_cast<float>(attention_factor);
  if (factor <= 1.0) return 1.0f;
  return static_cast<float>(0.1 * std::log(factor) + 1.0);
}

// ------------------------------------------------------------------------------------------
// Hugging Face config.json

namespace {

StatusOr<int64_t> JsonInt(const Json& obj, const std::string& key, bool required, int64_t fallback) {
  const Json* v = obj.Find(key);
  if (v == nullptr || v->is_null()) {
    if (required) return DataLossError("config.json has no \"" + key + "\"");
    return fallback;
  }
  if (!v->is_integer()) return InvalidArgumentError("config.json \"" + key + "\" must be an integer");
  return static_cast<int64_t>(v->as_number());
}

StatusOr<double> JsonNumber(const Json& obj, const std::string& key, double fallback) {
  const Json* v = obj.Find(key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_number()) return InvalidArgumentError("config \"" + key + "\" must be a number");
  return v->as_number();
}

// eos_token_id may be an integer or a list of integers.
Status AppendTokenIds(const Json* v, const char* what, std::vector<int32_t>* out) {
  if (v == nullptr || v->is_null()) return Status::OK();
  auto add = [&](const Json& x) -> Status {
    if (!x.is_integer() || x.as_number() < 0 || x.as_number() > 2147483647.0) {
      return InvalidArgumentError(std::string(what) + " must hold non-negative integer token ids");
    }
    int32_t id = static_cast<int32_t>(x.as_number());
    if (std::find(out->begin(), out->end(), id) == out->end()) out->push_back(id);
    return Status::OK();
  };
  if (v->is_array()) {
    for (const Json& x : v->as_array()) LONGSPEC_RETURN_IF_ERROR(add(x));
    return Status::OK();
  }
  return add(*v);
}

Status ParseHfRope(const Json& cfg, int64_t max_position, RopeConfig* rope) {
  // transformers >= 5 writes "rope_parameters" (theta inside); older files "rope_theta" +
  // "rope_scaling".
  const Json* params = cfg.Find("rope_parameters");
  const Json* scaling = cfg.Find("rope_scaling");
  if (params == nullptr || !params->is_object()) params = nullptr;
  LONGSPEC_ASSIGN_OR_RETURN(rope->theta, JsonNumber(cfg, "rope_theta", 10000.0));
  const Json* s = params != nullptr ? params : (scaling != nullptr && scaling->is_object() ? scaling : nullptr);
  if (s == nullptr) return Status::OK();
  if (params != nullptr) {
    LONGSPEC_ASSIGN_OR_RETURN(rope->theta, JsonNumber(*params, "rope_theta", rope->theta));
  }
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    const Json* t = s->Find(key);
    if (t != nullptr && t->is_string()) {
      type = t->as_string();
      break;
    }
  }
  LONGSPEC_ASSIGN_OR_RETURN(rope->factor, JsonNumber(*s, "factor", 1.0));
  if (type == "default") {
    rope->type = RopeType::kDefault;
  } else if (type == "linear") {
    rope->type = RopeType::kLinear;
  } else if (type == "llama3") {
    rope->type = RopeType::kLlama3;
    LONGSPEC_ASSIGN_OR_RETURN(rope->low_freq_factor, JsonNumber(*s, "low_freq_factor", 1.0));
    LONGSPEC_ASSIGN_OR_RETURN(rope->high_freq_factor, JsonNumber(*s, "high_freq_factor", 4.0));
    LONGSPEC_ASSIGN_OR_RETURN(rope->original_max_position, JsonInt(*s, "original_max_position_embeddings", true, 0));
  } else if (type == "yarn") {
    rope->type = RopeType::kYarn;
    LONGSPEC_ASSIGN_OR_RETURN(rope->original_max_position,
                              JsonInt(*s, "original_max_position_embeddings", false, max_position));
    LONGSPEC_ASSIGN_OR_RETURN(rope->beta_fast, JsonNumber(*s, "beta_fast", 32.0));
    LONGSPEC_ASSIGN_OR_RETURN(rope->beta_slow, JsonNumber(*s, "beta_slow", 1.0));
    LONGSPEC_ASSIGN_OR_RETURN(rope->attention_factor, JsonNumber(*s, "attention_factor", 0.0));
    const Json* mscale = s->Find("mscale");
    const Json* mscale_all = s->Find("mscale_all_dim");
    if (rope->attention_factor == 0.0 && mscale != nullptr && mscale->is_number() && mscale_all != nullptr &&
        mscale_all->is_number() && rope->factor > 1.0) {
      auto get = [&](double m) { return 0.1 * m * std::log(rope->factor) + 1.0; };
      rope->attention_factor = get(mscale->as_number()) / get(mscale_all->as_number());
    }
    const Json* trunc = s->Find("truncate");
    if (trunc != nullptr && trunc->is_bool()) rope->yarn_truncate = trunc->as_bool();
  } else {
    return UnimplementedError("rope scaling type \"" + type + "\" is not supported (default, linear, llama3, yarn are)");
  }
  return Status::OK();
}

}  // namespace

StatusOr<ModelConfig> ModelConfig::FromHfConfig(const Json& cfg, const Json* gen) {
  if (!cfg.is_object()) return InvalidArgumentError("config.json must be a JSON object");
  ModelConfig c;
  std::string model_type;
  if (const Json* mt = cfg.Find("model_type"); mt != nullptr && mt->is_string()) model_type = mt->as_string();
  if (model_type == "llama" || model_type == "mistral") {
    c.arch = Arch::kLlama;
  } else if (model_type == "qwen2") {
    c.arch = Arch::kQwen2;
  } else {
    return UnimplementedError("model_type \"" + model_type + "\" is not supported (llama, mistral, qwen2 are)");
  }
  LONGSPEC_ASSIGN_OR_RETURN(c.vocab_size, JsonInt(cfg, "vocab_size", true, 0));
  LONGSPEC_ASSIGN_OR_RETURN(c.hidden_size, JsonInt(cfg, "hidden_size", true, 0));
  LONGSPEC_ASSIGN_OR_RETURN(c.intermediate_size, JsonInt(cfg, "intermediate_size", true, 0));
  LONGSPEC_ASSIGN_OR_RETURN(c.num_layers, JsonInt(cfg, "num_hidden_layers", true, 0));
  LONGSPEC_ASSIGN_OR_RETURN(c.num_heads, JsonInt(cfg, "num_attention_heads", true, 0));
  LONGSPEC_ASSIGN_OR_RETURN(c.num_kv_heads, JsonInt(cfg, "num_key_value_heads", false, c.num_heads));
  int64_t default_head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  LONGSPEC_ASSIGN_OR_RETURN(c.head_dim, JsonInt(cfg, "head_dim", false, default_head_dim));
  LONGSPEC_ASSIGN_OR_RETURN(c.rms_eps, JsonNumber(cfg, "rms_norm_eps", 1e-6));
  LONGSPEC_ASSIGN_OR_RETURN(c.max_position, JsonInt(cfg, "max_position_embeddings", false, 4096));
  LONGSPEC_RETURN_IF_ERROR(ParseHfRope(cfg, c.max_position, &c.rope));
  if (const Json* t = cfg.Find("tie_word_embeddings"); t != nullptr && t->is_bool()) c.tie_embeddings = t->as_bool();
  if (c.arch == Arch::kQwen2) {
    c.attention_bias = true;
  } else if (const Json* b = cfg.Find("attention_bias"); b != nullptr && b->is_bool()) {
    c.attention_bias = b->as_bool();
    c.attention_out_bias = b->as_bool();
  }
  if (const Json* hidden_act = cfg.Find("hidden_act"); hidden_act != nullptr && hidden_act->is_string() &&
                                                       hidden_act->as_string() != "silu") {
    return UnimplementedError("hidden_act \"" + hidden_act->as_string() + "\" is not supported (silu is)");
  }
  if (const Json* mlp_bias = cfg.Find("mlp_bias"); mlp_bias != nullptr && mlp_bias->is_bool() && mlp_bias->as_bool()) {
    return UnimplementedError("mlp_bias=true is not supported");
  }
  // A sliding-window target (Mistral v0.1, Qwen2 with use_sliding_window) attends to all keys up
  // to the window: we serve it exactly by never exceeding the window.
  const Json* sw = cfg.Find("sliding_window");
  bool use_sw = true;
  if (const Json* u = cfg.Find("use_sliding_window"); u != nullptr && u->is_bool()) use_sw = u->as_bool();
  if (c.arch == Arch::kQwen2 && cfg.Find("use_sliding_window") == nullptr) use_sw = false;
  if (use_sw && sw != nullptr && sw->is_integer() && sw->as_number() > 0) {
    c.max_position = std::min<int64_t>(c.max_position, static_cast<int64_t>(sw->as_number()));
  }
  if (const Json* bos = cfg.Find("bos_token_id"); bos != nullptr && bos->is_integer()) {
    c.bos_token_id = static_cast<int32_t>(bos->as_number());
  }
  LONGSPEC_RETURN_IF_ERROR(AppendTokenIds(cfg.Find("eos_token_id"), "eos_token_id", &c.eos_token_ids));
  if (gen != nullptr && gen->is_object()) {
    LONGSPEC_RETURN_IF_ERROR(AppendTokenIds(gen->Find("eos_token_id"), "generation_config eos_token_id", &c.eos_token_ids));
  }
  LONGSPEC_RETURN_IF_ERROR(c.Validate());
  return c;
}

// ------------------------------------------------------------------------------------------
// GGUF metadata

StatusOr<ModelConfig> ModelConfig::FromGguf(const GgufFile& g) {
  ModelConfig c;
  LONGSPEC_ASSIGN_OR_RETURN(std::string arch, g.GetString("general.architecture"));
  if (arch == "llama") {
    c.arch = Arch::kLlama;
  } else if (arch == "qwen2") {
    c.arch = Arch::kQwen2;
    c.attention_bias = true;
  } else {
    return UnimplementedError("GGUF architecture \"" + arch + "\" is not supported (llama, qwen2 are)");
  }
  const std::string p = arch + ".";
  LONGSPEC_ASSIGN_OR_RETURN(c.num_layers, g.GetInt(p + "block_count"));
  LONGSPEC_ASSIGN_OR_RETURN(c.hidden_size, g.GetInt(p + "embedding_length"));
  LONGSPEC_ASSIGN_OR_RETURN(c.intermediate_size, g.GetInt(p + "feed_forward_length"));
  LONGSPEC_ASSIGN_OR_RETURN(c.num_heads, g.GetInt(p + "attention.head_count"));
  c.num_kv_heads = c.num_heads;
  if (g.Get(p + "attention.head_count_kv") != nullptr) {
    LONGSPEC_ASSIGN_OR_RETURN(c.num_kv_heads, g.GetInt(p + "attention.head_count_kv"));
  }
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  if (g.Get(p + "attention.key_length") != nullptr) {
    LONGSPEC_ASSIGN_OR_RETURN(c.head_dim, g.GetInt(p + "attention.key_length"));
  }
  if (g.Get(p + "rope.dimension_count") != nullptr) {
    LONGSPEC_ASSIGN_OR_RETURN(int64_t rot, g.GetInt(p + "rope.dimension_count"));
    if (rot != c.head_dim) return UnimplementedError("partial rotary embeddings (rope.dimension_count != head_dim) are not supported");
  }
  LONGSPEC_ASSIGN_OR_RETURN(c.rms_eps, g.GetFloat(p + "attention.layer_norm_rms_epsilon"));
  LONGSPEC_ASSIGN_OR_RETURN(c.max_position, g.GetInt(p + "context_length"));
  if (g.Get(p + "rope.freq_base") != nullptr) {
    LONGSPEC_ASSIGN_OR_RETURN(c.rope.theta, g.GetFloat(p + "rope.freq_base"));
  }
  if (g.Get(p + "rope.scaling.type") != nullptr) {
    LONGSPEC_ASSIGN_OR_RETURN(std::string type, g.GetString(p + "rope.scaling.type"));
    if (type == "linear" || type == "yarn") {
      c.rope.type = type == "linear" ? RopeType::kLinear : RopeType::kYarn;
      LONGSPEC_ASSIGN_OR_RETURN(c.rope.factor, g.GetFloat(p + "rope.scaling.factor"));
      if (c.rope.type == RopeType::kYarn) {
        c.rope.original_max_position = c.max_position;
        if (g.Get(p + "rope.scaling.original_context_length") != nullptr) {
          LONGSPEC_ASSIGN_OR_RETURN(c.rope.original_max_position, g.GetInt(p + "rope.scaling.original_context_length"));
        }
        if (g.Get(p + "rope.scaling.attn_factor") != nullptr) {
          LONGSPEC_ASSIGN_OR_RETURN(c.rope.attention_factor, g.GetFloat(p + "rope.scaling.attn_factor"));
        }
      }
    } else if (type != "none") {
      return UnimplementedError("GGUF rope.scaling.type \"" + type + "\" is not supported");
    }
  }
  if (g.Get(p + "vocab_size") != nullptr) {
    LONGSPEC_ASSIGN_OR_RETURN(c.vocab_size, g.GetInt(p + "vocab_size"));
  } else if (const GgufValue* toks = g.Get("tokenizer.ggml.tokens"); toks != nullptr && toks->type == GgufValueType::kArray) {
    c.vocab_size = static_cast<int64_t>(toks->array.size());
  } else if (const TensorInfo* emb = g.Find("token_embd.weight"); emb != nullptr && emb->shape.size() == 2) {
    c.vocab_size = emb->shape[0];
  }
  c.tie_embeddings = g.Find("output.weight") == nullptr;
  if (g.Get("tokenizer.ggml.bos_token_id") != nullptr) {
    LONGSPEC_ASSIGN_OR_RETURN(int64_t bos, g.GetInt("tokenizer.ggml.bos_token_id"));
    c.bos_token_id = static_cast<int32_t>(bos);
  }
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (g.Get(key) == nullptr) continue;
    LONGSPEC_ASSIGN_OR_RETURN(int64_t id, g.GetInt(key));
    if (id < 0 || id > INT32_MAX) return InvalidArgumentError(std::string(key) + " is out of range");
    if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end()) {
      c.eos_token_ids.push_back(static_cast<int32_t>(id));
    }
  }
  LONGSPEC_RETURN_IF_ERROR(c.Validate());
  return c;
}

Status ModelConfig::Validate() const {
  auto positive = [](int64_t v, const char* name, int64_t max) -> Status {
    if (v <= 0 || v > max) {
      return InvalidArgumentError(std::string(name) + " must be in [1, " + std::to_string(max) + "], got " + std::to_string(v));
    }
    return Status::OK();
  };
  LONGSPEC_RETURN_IF_ERROR(positive(vocab_size, "vocab_size", 1 << 22));
  LONGSPEC_RETURN_IF_ERROR(positive(hidden_size, "hidden_size", 1 << 16));
  LONGSPEC_RETURN_IF_ERROR(positive(intermediate_size, "intermediate_size", 1 << 18));
  LONGSPEC_RETURN_IF_ERROR(positive(num_layers, "num_layers", 1024));
  LONGSPEC_RETURN_IF_ERROR(positive(num_heads, "num_heads", 1024));
  LONGSPEC_RETURN_IF_ERROR(positive(num_kv_heads, "num_kv_heads", 1024));
  LONGSPEC_RETURN_IF_ERROR(positive(head_dim, "head_dim", 1024));
  LONGSPEC_RETURN_IF_ERROR(positive(max_position, "max_position", int64_t{1} << 24));
  if (head_dim % 2 != 0) return InvalidArgumentError("head_dim must be even, got " + std::to_string(head_dim));
  if (num_heads % num_kv_heads != 0) {
    return InvalidArgumentError("num_heads (" + std::to_string(num_heads) + ") must be a multiple of num_kv_heads (" +
                                std::to_string(num_kv_heads) + ")");
  }
  if (!(rms_eps > 0.0) || !std::isfinite(rms_eps)) return InvalidArgumentError("rms_norm_eps must be positive");
  if (!(rope.theta > 1.0) || !std::isfinite(rope.theta)) return InvalidArgumentError("rope theta must be > 1");
  if (!(rope.factor > 0.0) || !std::isfinite(rope.factor)) return InvalidArgumentError("rope scaling factor must be positive");
  if ((rope.type == RopeType::kLlama3 || rope.type == RopeType::kYarn) && rope.original_max_position <= 0) {
    return InvalidArgumentError("rope scaling needs original_max_position_embeddings > 0");
  }
  if (rope.type == RopeType::kLlama3 && !(rope.high_freq_factor > rope.low_freq_factor)) {
    return InvalidArgumentError("llama3 rope needs high_freq_factor > low_freq_factor");
  }
  for (int32_t id : eos_token_ids) {
    if (id < 0 || id >= vocab_size) return InvalidArgumentError("eos token id " + std::to_string(id) + " is outside the vocabulary");
  }
  return Status::OK();
}

}  // namespace longspec
