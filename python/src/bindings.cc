// longspec._C: the C++ engine for Python. No logic here beyond type conversion, GIL handling
// and mapping a failed Status to the matching Python exception (same message).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "loader/gguf.h"
#include "loader/safetensors.h"
#include "longspec/engine.h"
#include "model/model_loader.h"

namespace py = pybind11;
using namespace longspec;

namespace {

PyObject* ExceptionType(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kDataLoss:
    case StatusCode::kFailedPrecondition:
      return PyExc_ValueError;
    case StatusCode::kNotFound: return PyExc_FileNotFoundError;
    case StatusCode::kUnimplemented: return PyExc_NotImplementedError;
    case StatusCode::kResourceExhausted: return PyExc_MemoryError;
    case StatusCode::kIoError: return PyExc_OSError;
    default: return PyExc_RuntimeError;
  }
}

// The exception (README's error table says which) carries the message and, as `status_code`,
// the StatusCode's name ("DATA_LOSS"), so Python callers and tests can tell the C++ cause apart.
[[noreturn]] void Raise(const Status& s) {
  PyObject* type = ExceptionType(s.code());
  const std::string text = type == PyExc_RuntimeError ? s.ToString() : s.message();
  py::object exc = py::reinterpret_borrow<py::object>(type)(text);
  exc.attr("status_code") = StatusCodeName(s.code());
  PyErr_SetObject(type, exc.ptr());
  throw py::error_already_set();
}

template <typename T>
T Unwrap(StatusOr<T>&& s) {
  if (!s.ok()) Raise(s.status());
  return std::move(s).value();
}

// ---------------------------------------------------------------------------------------------
// Python values -> SamplingParams fields. This is conversion only: a value of the wrong type
// raises TypeError naming the field, a number the C++ field cannot hold raises ValueError
// (INVALID_ARGUMENT); whether a value that fits is allowed (temperature >= 0, top_p in (0, 1],
// tree widths, token ids inside the vocabulary) is for SamplingParams::Validate and the engine.

std::string TypeName(py::handle v) { return py::str(py::type::of(v).attr("__name__")); }

[[noreturn]] void RaiseType(const std::string& field, const std::string& wanted, py::handle got) {
  throw py::type_error(field + " must be " + wanted + ", got " + TypeName(got));
}

// bool is an int in Python, but a flag passed where a count is wanted is a mistake.
template <typename Int>
Int ToInt(py::handle v, const std::string& field) {
  if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr())) RaiseType(field, "an int", v);
  const py::int_ value = py::reinterpret_steal<py::int_>(PyNumber_Index(v.ptr()));
  if (!value) throw py::error_already_set();
  const py::int_ lo(std::numeric_limits<Int>::min());
  const py::int_ hi(std::numeric_limits<Int>::max());
  if (value < lo || value > hi) {
    const std::string bound = value < lo ? ">= " + std::string(py::str(lo)) : "<= " + std::string(py::str(hi));
    Raise(InvalidArgumentError(field + " must be " + bound + ", got " + std::string(py::str(value))));
  }
  return value.cast<Int>();
}

float ToFloat(py::handle v, const std::string& field) {
  if (PyBool_Check(v.ptr()) || !py::isinstance(v, py::module_::import("numbers").attr("Real"))) {
    RaiseType(field, "a number", v);
  }
  const double d = PyFloat_AsDouble(v.ptr());
  if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<float>(d);  // past float's range: +-inf, which Validate() rejects by name
}

bool ToBool(py::handle v, const std::string& field) {
  if (!PyBool_Check(v.ptr())) RaiseType(field, "a bool", v);
  return v.ptr() == Py_True;
}

template <typename Int>
std::vector<Int> ToIntList(py::handle v, const std::string& field, const std::string& wanted) {
  if (PyUnicode_Check(v.ptr()) || PyBytes_Check(v.ptr()) || !PySequence_Check(v.ptr())) RaiseType(field, wanted, v);
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(v);
  std::vector<Int> out;
  out.reserve(seq.size());
  for (size_t i = 0; i < seq.size(); ++i) out.push_back(ToInt<Int>(seq[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

void SetSamplingField(SamplingParams& sp, const std::string& name, py::handle v) {
  if (name == "max_new_tokens") {
    sp.max_new_tokens = ToInt<int>(v, name);
  } else if (name == "temperature") {
    sp.temperature = ToFloat(v, name);
  } else if (name == "top_p") {
    sp.top_p = ToFloat(v, name);
  } else if (name == "top_k") {
    sp.top_k = ToInt<int>(v, name);
  } else if (name == "seed") {
    sp.seed = ToInt<uint64_t>(v, name);
  } else if (name == "stop_token_ids") {
    sp.stop_token_ids = v.is_none() ? std::vector<int32_t>{} : ToIntList<int32_t>(v, name, "a list of token ids");
  } else if (name == "ignore_eos") {
    sp.ignore_eos = ToBool(v, name);
  } else if (name == "speculative") {
    sp.speculative = ToBool(v, name);
  } else if (name == "tree") {
    // C++ spells "the engine's default tree" as an empty shape; Python spells it None, so an empty
    // list is a mistake rather than a request for the default.
    const char* wanted = "None, \"auto\" or a non-empty list of level widths, e.g. [4, 16, 16, 16, 16]";
    sp.auto_tree = false;
    if (v.is_none()) {
      sp.tree.clear();
    } else if (PyUnicode_Check(v.ptr())) {
      // A string other than "auto" is a list written as text ("4,16"): the wrong type.
      if (v.cast<std::string>() != "auto") RaiseType(name, wanted, v);
      sp.tree.clear();
      sp.auto_tree = true;
    } else {
      std::vector<int> tree = ToIntList<int>(v, name, wanted);
      if (tree.empty()) Raise(InvalidArgumentError(std::string("tree must be ") + wanted + ", got []"));
      sp.tree = std::move(tree);
    }
  } else if (name == "verify_nodes") {
    sp.verify_nodes = v.is_none() ? 0 : ToInt<int>(v, name);
  } else {
    throw py::type_error("SamplingParams has no field '" + name + "'");
  }
}

py::dict InfoDict(const ModelInfo& i) {
  py::dict d;
  d["architecture"] = i.architecture;
  d["source_format"] = i.source_format;
  d["vocab_size"] = i.vocab_size;
  d["hidden_size"] = i.hidden_size;
  d["num_layers"] = i.num_layers;
  d["num_heads"] = i.num_heads;
  d["num_kv_heads"] = i.num_kv_heads;
  d["head_dim"] = i.head_dim;
  d["intermediate_size"] = i.intermediate_size;
  d["max_position"] = i.max_position;
  d["bos_token_id"] = i.bos_token_id;
  d["eos_token_ids"] = i.eos_token_ids;
  d["parameter_bytes"] = i.parameter_bytes;
  return d;
}

py::dict StatsDict(const GenerationStats& s) {
  py::dict d;
  d["prompt_tokens"] = s.prompt_tokens;
  d["new_tokens"] = s.new_tokens;
  d["prefill_s"] = s.prefill_s;
  d["decode_s"] = s.decode_s;
  d["tokens_per_s"] = s.tokens_per_s;
  d["prefill_tokens_per_s"] = s.prefill_tokens_per_s;
  d["speculative"] = s.speculative;
  d["rounds"] = s.rounds;
  d["plain_rounds"] = s.plain_rounds;
  d["mean_accepted"] = s.mean_accepted;
  d["accepted_histogram"] = s.accepted_histogram;
  d["draft_s"] = s.draft_s;
  d["verify_s"] = s.verify_s;
  d["other_s"] = s.other_s;
  d["target_cache_bytes"] = s.target_cache_bytes;
  d["draft_cache_bytes"] = s.draft_cache_bytes;
  py::dict best_n;
  for (const auto& [n, tokens] : s.best_n_tokens) best_n[py::int_(n)] = tokens;
  d["best_n_tokens"] = best_n;
  return d;
}

class PyEngine {
 public:
  PyEngine(const std::string& target, const std::string& draft, const std::string& device, int num_threads,
           int64_t max_context, const std::vector<int>& tree_shape, int prefill_chunk, bool oracle_draft) {
    EngineConfig cfg;
    cfg.target_path = target;
    cfg.draft_path = draft;
    cfg.device = Unwrap(ParseDevice(device));
    cfg.num_threads = num_threads;
    cfg.max_context = max_context;
    if (!tree_shape.empty()) cfg.tree_shape = tree_shape;
    cfg.prefill_chunk = prefill_chunk;
    cfg.oracle_draft = oracle_draft;
    StatusOr<std::unique_ptr<Engine>> e = [&] {
      py::gil_scoped_release release;
      return Engine::Create(cfg);
    }();
    engine_ = Unwrap(std::move(e));
  }

  // `sp` is taken by value: the GIL is released while generating, and the caller's object could
  // change under us.
  py::tuple Generate(const std::vector<int32_t>& prompt, SamplingParams sp, const py::object& callback) {
    // The engine calls back after every flush of tokens: the user's callback (which must return a
    // bool or None) runs there, and so does Python's signal check, so Ctrl-C stops generation
    // within a round instead of after it.
    std::unique_ptr<py::error_already_set> callback_error;
    TokenCallback cb = [&](const std::vector<int32_t>& toks) -> bool {
      py::gil_scoped_acquire acquire;
      try {
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        if (callback.is_none()) return true;
        py::object r = callback(toks);
        if (r.is_none()) return true;
        if (!py::isinstance<py::bool_>(r)) {
          PyErr_SetString(PyExc_TypeError, ("callback must return a bool or None, got " +
                                            std::string(py::str(py::type::of(r).attr("__name__")))).c_str());
          throw py::error_already_set();
        }
        return r.cast<bool>();
      } catch (py::error_already_set& e) {
        callback_error = std::make_unique<py::error_already_set>(std::move(e));
        return false;
      }
    };
    StatusOr<GenerationResult> r = [&] {
      py::gil_scoped_release release;
      return engine_->Generate(prompt, sp, cb);
    }();
    if (callback_error) throw *callback_error;
    GenerationResult res = Unwrap(std::move(r));
    return py::make_tuple(res.tokens, FinishReasonName(res.finish_reason), StatsDict(res.stats));
  }

  py::array_t<float> PromptLogits(const std::vector<int32_t>& prompt) {
    StatusOr<std::vector<float>> r = [&] {
      py::gil_scoped_release release;
      return engine_->PromptLogits(prompt);
    }();
    std::vector<float> v = Unwrap(std::move(r));
    py::array_t<float> out(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
  }

  py::array_t<float> DraftLogits(const std::vector<int32_t>& prompt, const std::vector<int32_t>& continuation) {
    StatusOr<std::vector<float>> r = [&] {
      py::gil_scoped_release release;
      return engine_->DraftLogits(prompt, continuation);
    }();
    std::vector<float> v = Unwrap(std::move(r));
    const py::ssize_t vocab = static_cast<py::ssize_t>(engine_->target_info().vocab_size);
    py::array_t<float> out({static_cast<py::ssize_t>(continuation.size()), vocab});
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
  }

  py::dict TargetInfo() const { return InfoDict(engine_->target_info()); }
  py::object DraftInfo() const {
    const ModelInfo* d = engine_->draft_info();
    if (d == nullptr) return py::none();
    return InfoDict(*d);
  }
  bool HasDraft() const { return engine_->has_draft(); }
  std::string Device() const { return DeviceName(engine_->device()); }
  std::vector<int> TreeShape() const { return engine_->tree_shape(); }

 private:
  std::unique_ptr<Engine> engine_;
};

// Test hook: a tensor of a GGUF file or HF checkpoint directory / .safetensors file, as fp32.
py::array_t<float> ReadTensorF32(const std::string& path, const std::string& name) {
  std::unique_ptr<TensorSource> src;
  if (path.size() >= 5 && path.substr(path.size() - 5) == ".gguf") {
    src = Unwrap(GgufFile::Open(path));
  } else if (path.size() >= 12 && path.substr(path.size() - 12) == ".safetensors") {
    src = Unwrap(SafetensorsFile::Open(path));
  } else {
    src = Unwrap(SafetensorsCheckpoint::Open(path));
  }
  HostTensor t;
  Status st = src->ReadF32(name, &t);
  if (!st.ok()) Raise(st);
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  py::array_t<float> out(shape);
  std::copy(t.data(), t.data() + t.numel(), out.mutable_data());
  return out;
}

py::dict ModelConfigDict(const std::string& path) {
  ModelConfig c = Unwrap(ReadModelConfig(path));
  py::dict d;
  d["architecture"] = ArchName(c.arch);
  d["vocab_size"] = c.vocab_size;
  d["hidden_size"] = c.hidden_size;
  d["intermediate_size"] = c.intermediate_size;
  d["num_layers"] = c.num_layers;
  d["num_heads"] = c.num_heads;
  d["num_kv_heads"] = c.num_kv_heads;
  d["head_dim"] = c.head_dim;
  d["rms_norm_eps"] = c.rms_eps;
  d["rope_theta"] = c.rope.theta;
  d["max_position"] = c.max_position;
  d["tie_embeddings"] = c.tie_embeddings;
  d["attention_bias"] = c.attention_bias;
  d["bos_token_id"] = c.bos_token_id;
  d["eos_token_ids"] = c.eos_token_ids;
  const std::vector<float> inv = c.rope.InverseFrequencies(c.head_dim);
  d["rope_inv_freq"] = inv;
  d["rope_attention_scaling"] = c.rope.AttentionScaling();
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "longspec C++ engine";
  m.def("version", &Version);
  m.def("cuda_available", &CudaAvailable);
  m.def("_read_tensor_f32", &ReadTensorF32, py::arg("path"), py::arg("name"));
  m.def("model_config", &ModelConfigDict, py::arg("path"),
        "The configuration of a checkpoint (HF directory or GGUF file) as the engine reads it, "
        "including the RoPE inverse frequencies it uses.");
  py::class_<SamplingParams> sampling(m, "SamplingParams",
      "Sampling settings of one generate call: SamplingParams(max_new_tokens=64, temperature=0.0, ...).\n\n"
      "Fields are set by keyword or attribute; a value of the wrong type raises TypeError naming the field. "
      "The values are checked by the engine (SamplingParams::Validate in C++) when generation starts, or by "
      "validate(): ValueError naming the field.");
  sampling.def(py::init([](const py::kwargs& fields) {
                 SamplingParams sp;
                 for (const auto& item : fields) SetSamplingField(sp, py::str(item.first), item.second);
                 return sp;
               }))
      .def("validate", [](const SamplingParams& sp) {
        const Status st = sp.Validate();
        if (!st.ok()) Raise(st);
      }, "Raises ValueError (status_code INVALID_ARGUMENT) naming the first field out of its domain.")
      .def("__repr__", [](const SamplingParams& sp) {
        py::object self = py::cast(sp);
        std::string out = "SamplingParams(";
        const char* names[] = {"max_new_tokens", "temperature", "top_p", "top_k", "seed", "stop_token_ids",
                               "ignore_eos", "speculative", "tree", "verify_nodes"};
        for (const char* name : names) {
          if (out.back() != '(') out += ", ";
          out += std::string(name) + "=" + std::string(py::repr(self.attr(name)));
        }
        return out + ")";
      });
  // One property per field: the getter returns the C++ value, the setter converts as above.
  auto setter = [](const char* name) {
    return [name](SamplingParams& sp, const py::object& v) { SetSamplingField(sp, name, v); };
  };
  sampling
      .def_property("max_new_tokens", [](const SamplingParams& s) { return s.max_new_tokens; }, setter("max_new_tokens"),
                    "Most tokens to generate (int >= 0; default 64).")
      .def_property("temperature", [](const SamplingParams& s) { return s.temperature; }, setter("temperature"),
                    "Softmax temperature, finite and >= 0; 0 = greedy (default).")
      .def_property("top_p", [](const SamplingParams& s) { return s.top_p; }, setter("top_p"),
                    "Nucleus mass in (0, 1]; 1 = no cut (default).")
      .def_property("top_k", [](const SamplingParams& s) { return s.top_k; }, setter("top_k"),
                    "Keep the k most likely tokens (int >= 0); 0 = no cut (default).")
      .def_property("seed", [](const SamplingParams& s) { return s.seed; }, setter("seed"),
                    "Random seed, 0 <= seed < 2**64 (default 0); the same seed gives the same tokens.")
      .def_property("stop_token_ids", [](const SamplingParams& s) { return s.stop_token_ids; },
                    setter("stop_token_ids"),
                    "Token ids that end generation (emitted, then stop) besides the checkpoint's EOS tokens.")
      .def_property("ignore_eos", [](const SamplingParams& s) { return s.ignore_eos; }, setter("ignore_eos"),
                    "Keep generating past the checkpoint's EOS tokens (default False).")
      .def_property("speculative", [](const SamplingParams& s) { return s.speculative; }, setter("speculative"),
                    "With a draft loaded: speculate (True, default) or decode plainly (False).")
      .def_property("tree",
                    [](const SamplingParams& s) -> py::object {
                      if (s.tree.empty()) return py::none();
                      return py::cast(s.tree);
                    },
                    setter("tree"), "Speculation tree shape (level widths) for this call; None = the engine's default.")
      .def_property("verify_nodes",
                    [](const SamplingParams& s) -> py::object {
                      if (s.verify_nodes == 0) return py::none();
                      return py::int_(s.verify_nodes);
                    },
                    setter("verify_nodes"),
                    "Verify only the best N nodes of each grown tree by cumulative draft probability (a "
                    "subtree, EAGLE-2 style reranking); None = every node (default).");

  py::class_<PyEngine>(m, "Engine")
      .def(py::init<const std::string&, const std::string&, const std::string&, int, int64_t, const std::vector<int>&, int,
                    bool>(),
           py::arg("target"), py::arg("draft") = "", py::arg("device") = "auto", py::arg("num_threads") = 0,
           py::arg("max_context") = 0, py::arg("tree_shape") = std::vector<int>{}, py::arg("prefill_chunk") = 0,
           py::arg("oracle_draft") = false)
      .def("generate", &PyEngine::Generate, py::arg("prompt"), py::arg("params"), py::arg("callback") = py::none(),
           "(tokens, finish_reason, stats dict); params: a SamplingParams; callback(new_tokens) -> bool | None.")
      .def("prompt_logits", &PyEngine::PromptLogits, py::arg("prompt"))
      .def("draft_logits", &PyEngine::DraftLogits, py::arg("prompt"), py::arg("continuation"))
      .def_property_readonly("target_info", &PyEngine::TargetInfo)
      .def_property_readonly("draft_info", &PyEngine::DraftInfo)
      .def_property_readonly("has_draft", &PyEngine::HasDraft)
      .def_property_readonly("device", &PyEngine::Device)
      .def_property_readonly("tree_shape", &PyEngine::TreeShape);
}
