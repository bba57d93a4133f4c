// cpp_service: longspec embedded in a C++ program through its installed CMake package.
//
// Loads a target model and, optionally, a LongSpec draft; answers one prompt (token ids: the
// C++ API has no tokenizer) with plain greedy decoding and, when a draft is loaded, with
// speculative greedy decoding; prints the tokens and the statistics of each run. Speculative
// greedy output must equal plain greedy output token for token, so a difference is an error.
//
//   cpp_service --target MODEL [--draft DIR] [--prompt-ids 1,2,3] [--max-new-tokens N]
//               [--threads N] [--tree 4,16,16] [--device auto|cpu|cuda]
//
// Exit status: 0 on success, 1 when the engine reports an error, 2 on a bad command line, 3 when
// speculative and plain greedy outputs differ.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "longspec/engine.h"

namespace {

struct Options {
  longspec::EngineConfig engine;
  std::vector<int32_t> prompt;
  int max_new_tokens = 32;
  std::vector<int> tree;
};

void PrintUsage() {
  std::fprintf(stderr,
               "usage: cpp_service --target MODEL [--draft DIR] [--prompt-ids 1,2,3] [--max-new-tokens N]\n"
               "                   [--threads N] [--tree 4,16,16] [--device auto|cpu|cuda]\n");
}

// "4,16,16" -> {4, 16, 16}; false on anything that is not a comma-separated list of integers.
template <typename Int>
bool ParseIntList(const char* text, std::vector<Int>* out) {
  out->clear();
  const char* p = text;
  while (*p != '\0') {
    char* end = nullptr;
    const long long v = std::strtoll(p, &end, 10);
    if (end == p) return false;
    out->push_back(static_cast<Int>(v));
    p = end;
    if (*p == ',') ++p;
    else if (*p != '\0') return false;
  }
  return !out->empty();
}

bool ParseInt(const char* text, int* out) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0') return false;
  *out = static_cast<int>(v);
  return true;
}

bool ParseArgs(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") return false;
    if (i + 1 >= argc) {
      std::fprintf(stderr, "cpp_service: %s needs a value\n", flag.c_str());
      return false;
    }
    const char* value = argv[++i];
    bool ok = true;
    if (flag == "--target") {
      opt->engine.target_path = value;
    } else if (flag == "--draft") {
      opt->engine.draft_path = value;
    } else if (flag == "--prompt-ids") {
      ok = ParseIntList(value, &opt->prompt);
    } else if (flag == "--max-new-tokens") {
      ok = ParseInt(value, &opt->max_new_tokens);
    } else if (flag == "--threads") {
      ok = ParseInt(value, &opt->engine.num_threads);
    } else if (flag == "--tree") {
      ok = ParseIntList(value, &opt->tree);
    } else if (flag == "--device") {
      auto device = longspec::ParseDevice(value);
      ok = device.ok();
      if (ok) opt->engine.device = *device;
    } else {
      std::fprintf(stderr, "cpp_service: unknown option %s\n", flag.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "cpp_service: bad value for %s: %s\n", flag.c_str(), value);
      return false;
    }
  }
  if (opt->engine.target_path.empty()) {
    std::fprintf(stderr, "cpp_service: --target is required\n");
    return false;
  }
  return true;
}

void PrintTokens(const char* label, const std::vector<int32_t>& tokens) {
  std::printf("%s:", label);
  for (int32_t t : tokens) std::printf(" %d", t);
  std::printf("\n");
}

void PrintStats(const longspec::GenerationResult& r) {
  const longspec::GenerationStats& s = r.stats;
  std::printf("  finish: %s, %lld new tokens after a %lld-token prompt\n", longspec::FinishReasonName(r.finish_reason),
              static_cast<long long>(s.new_tokens), static_cast<long long>(s.prompt_tokens));
  std::printf("  prefill %.3f s (%.1f tok/s), decode %.3f s (%.1f tok/s)\n", s.prefill_s, s.prefill_tokens_per_s,
              s.decode_s, s.tokens_per_s);
  if (s.speculative) {
    std::printf("  %lld rounds, tau %.2f tokens per round; draft %.3f s, verify %.3f s, other %.3f s\n",
                static_cast<long long>(s.rounds), s.mean_accepted, s.draft_s, s.verify_s, s.other_s);
    std::printf("  rounds emitting k tokens:");
    for (size_t k = 1; k < s.accepted_histogram.size(); ++k) {
      std::printf(" %zu:%lld", k, static_cast<long long>(s.accepted_histogram[k]));
    }
    std::printf("\n");
  }
  std::printf("  K/V cache: target %lld bytes, draft %lld bytes\n", static_cast<long long>(s.target_cache_bytes),
              static_cast<long long>(s.draft_cache_bytes));
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    PrintUsage();
    return 2;
  }

  auto created = longspec::Engine::Create(opt.engine);
  if (!created.ok()) {
    std::fprintf(stderr, "cpp_service: %s\n", created.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<longspec::Engine> engine = std::move(created).value();
  const longspec::ModelInfo& info = engine->target_info();
  std::printf("longspec %s on %s: %s target (%s), %lld layers, vocabulary %lld%s\n", longspec::Version(),
              longspec::DeviceName(engine->device()), info.architecture.c_str(), info.source_format.c_str(),
              static_cast<long long>(info.num_layers), static_cast<long long>(info.vocab_size),
              engine->has_draft() ? ", with a draft" : "");

  if (opt.prompt.empty()) {
    // A fixed prompt that fits any vocabulary: BOS (when the model has one), then ids 10, 11, ...
    if (info.bos_token_id >= 0) opt.prompt.push_back(info.bos_token_id);
    for (int32_t i = 0; i < 24; ++i) opt.prompt.push_back(static_cast<int32_t>(10 + i) % static_cast<int32_t>(info.vocab_size));
  }

  longspec::SamplingParams params;
  params.max_new_tokens = opt.max_new_tokens;
  params.ignore_eos = true;  // a fixed amount of work, so runs are comparable
  params.tree = opt.tree;

  // Plain decoding first, streaming: the callback sees the tokens as they are produced.
  params.speculative = false;
  int flushes = 0;
  auto plain = engine->Generate(opt.prompt, params, [&flushes](const std::vector<int32_t>&) {
    ++flushes;
    return true;  // false would stop generation here
  });
  if (!plain.ok()) {
    std::fprintf(stderr, "cpp_service: %s\n", plain.status().ToString().c_str());
    return 1;
  }
  PrintTokens("plain", plain->tokens);
  std::printf("  (%d token callbacks)\n", flushes);
  PrintStats(*plain);

  if (!engine->has_draft()) return 0;
  params.speculative = true;
  auto spec = engine->Generate(opt.prompt, params);
  if (!spec.ok()) {
    std::fprintf(stderr, "cpp_service: %s\n", spec.status().ToString().c_str());
    return 1;
  }
  PrintTokens("speculative", spec->tokens);
  PrintStats(*spec);
  if (spec->tokens != plain->tokens) {
    std::fprintf(stderr, "cpp_service: speculative greedy output differs from plain greedy output\n");
    return 3;
  }
  std::printf("speculative output identical to plain output (%zu tokens)\n", spec->tokens.size());
  return 0;
}
