#include "speculation/draft_config.h"

#include "longspec/config.h"
#include "util/json.h"

namespace longspec {

namespace {

StatusOr<int64_t> GetInt(const Json& obj, const char* key, const char* where) {
  const Json* v = obj.Find(key);
  if (v == nullptr || !v->is_integer()) {
    return InvalidArgumentError(std::string("draft config: ") + where + "\"" + key + "\" must be an integer");
  }
  return static_cast<int64_t>(v->as_number());
}

}  // namespace

StatusOr<DraftConfig> DraftConfig::FromJson(const Json& j) {
  if (!j.is_object()) return InvalidArgumentError("draft config.json must be a JSON object");
  const Json* format = j.Find("format");
  if (format == nullptr || !format->is_string() || format->as_string() != "longspec-draft") {
    return InvalidArgumentError("draft config.json: \"format\" must be \"longspec-draft\" (is this a draft checkpoint?)");
  }
  LONGSPEC_ASSIGN_OR_RETURN(int64_t version, GetInt(j, "format_version", ""));
  if (version != 1) return UnimplementedError("draft format_version " + std::to_string(version) + " is not supported (1 is)");
  DraftConfig c;
  LONGSPEC_ASSIGN_OR_RETURN(int64_t window, GetInt(j, "window", ""));
  if (window < 1 || window > (1 << 20)) return InvalidArgumentError("draft window must be in [1, 2^20], got " + std::to_string(window));
  c.window = static_cast<int32_t>(window);
  if (const Json* shape = j.Find("tree_shape"); shape != nullptr && !shape->is_null()) {
    if (!shape->is_array()) return InvalidArgumentError("draft config: \"tree_shape\" must be a list of integers");
    for (const Json& w : shape->as_array()) {
      // Range first: a width past int's range would make the cast undefined (the fuzzer found 4e16).
      if (!w.is_integer() || w.as_number() < 0 || w.as_number() > (1 << 20)) {
        return InvalidArgumentError("draft config: \"tree_shape\" must be a list of integers in [0, 2^20]");
      }
      c.tree_shape.push_back(static_cast<int>(w.as_number()));
    }
    if (!c.tree_shape.empty()) LONGSPEC_RETURN_IF_ERROR(ValidateTreeShape(c.tree_shape, "draft tree_shape"));
  }
  if (const Json* f = j.Find("final_norm"); f != nullptr && f->is_bool()) c.final_norm = f->as_bool();
  if (const Json* b = j.Find("attention_bias"); b != nullptr && b->is_bool()) c.attention_bias = b->as_bool();
  if (const Json* m = j.Find("mlp_intermediate_size"); m != nullptr && !m->is_null()) {
    // Range first, as for tree_shape: the cast of a huge number is undefined.
    if (!m->is_integer() || m->as_number() < 1 || m->as_number() > (1 << 20)) {
      return InvalidArgumentError("draft config: \"mlp_intermediate_size\" must be an integer in [1, 2^20]");
    }
    c.mlp_intermediate_size = static_cast<int64_t>(m->as_number());
  }
  const Json* t = j.Find("target");
  if (t == nullptr || !t->is_object()) return InvalidArgumentError("draft config: \"target\" must describe the target model");
  if (const Json* a = t->Find("architecture"); a != nullptr && a->is_string()) c.target_architecture = a->as_string();
  const char* where = "target.";
  LONGSPEC_ASSIGN_OR_RETURN(c.hidden_size, GetInt(*t, "hidden_size", where));
  LONGSPEC_ASSIGN_OR_RETURN(c.num_heads, GetInt(*t, "num_heads", where));
  LONGSPEC_ASSIGN_OR_RETURN(c.num_kv_heads, GetInt(*t, "num_kv_heads", where));
  LONGSPEC_ASSIGN_OR_RETURN(c.head_dim, GetInt(*t, "head_dim", where));
  LONGSPEC_ASSIGN_OR_RETURN(c.intermediate_size, GetInt(*t, "intermediate_size", where));
  LONGSPEC_ASSIGN_OR_RETURN(c.vocab_size, GetInt(*t, "vocab_size", where));
  return c;
}

Status DraftConfig::CheckFits(const ModelConfig& target) const {
  auto check = [](const char* name, int64_t draft, int64_t tgt) -> Status {
    if (draft == tgt) return Status::OK();
    return InvalidArgumentError(std::string("draft does not fit the target: ") + name + " is " + std::to_string(draft) +
                                " in the draft but " + std::to_string(tgt) + " in the target");
  };
  LONGSPEC_RETURN_IF_ERROR(check("hidden_size", hidden_size, target.hidden_size));
  LONGSPEC_RETURN_IF_ERROR(check("num_heads", num_heads, target.num_heads));
  LONGSPEC_RETURN_IF_ERROR(check("num_kv_heads", num_kv_heads, target.num_kv_heads));
  LONGSPEC_RETURN_IF_ERROR(check("head_dim", head_dim, target.head_dim));
  LONGSPEC_RETURN_IF_ERROR(check("intermediate_size", intermediate_size, target.intermediate_size));
  LONGSPEC_RETURN_IF_ERROR(check("vocab_size", vocab_size, target.vocab_size));
  if (!target_architecture.empty() && target_architecture != ArchName(target.arch)) {
    return InvalidArgumentError("draft does not fit the target: architecture is \"" + target_architecture +
                                "\" in the draft but \"" + ArchName(target.arch) + "\" in the target");
  }
  return Status::OK();
}

}  // namespace longspec
