// The engine end to end on a tiny random llama written as GGUF: the public API's errors, plain and
// speculative decoding, and the exactness of the KV commit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "model/target_model.h"
#include "longspec/engine.h"
#include "model_file_writers.h"

namespace longspec {
namespace {

using testing::GgufWriter;
using testing::TempDir;
using testing::WriteFile;

constexpr int kVocab = 64, kHidden = 32, kInter = 48, kLayers = 2, kHeads = 4, kKvHeads = 2, kCtx = 512;

// A random llama-architecture GGUF of the constants above.
std::vector<uint8_t> TinyLlamaGguf(uint32_t seed) {
  return testing::RandomLlamaGguf({kVocab, kHidden, kInter, kLayers, kHeads, kKvHeads, kCtx}, seed);
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    path_ = dir_.File("tiny.gguf");
    ASSERT_TRUE(WriteFile(path_, TinyLlamaGguf(1)));
  }
  std::unique_ptr<Engine> Make(EngineConfig cfg = {}) {
    cfg.target_path = path_;
    cfg.num_threads = 2;
    auto e = Engine::Create(cfg);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(e).value() : nullptr;
  }
  TempDir dir_;
  std::string path_;
};

std::vector<int32_t> Prompt(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(n);
  for (int32_t& t : p) t = static_cast<int32_t>(rng() % kVocab);
  return p;
}

TEST_F(EngineTest, LoadsAndDescribesTheModel) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const ModelInfo& i = e->target_info();
  EXPECT_EQ(i.architecture, "llama");
  EXPECT_EQ(i.source_format, "gguf");
  EXPECT_EQ(i.vocab_size, kVocab);
  EXPECT_EQ(i.num_layers, kLayers);
  EXPECT_EQ(i.max_position, kCtx);
  EXPECT_EQ(i.eos_token_ids, std::vector<int32_t>{3});
  EXPECT_FALSE(e->has_draft());
  EXPECT_EQ(e->device(), Device::kCpu);
}

TEST_F(EngineTest, BadRequestsAreErrorsAndLeaveTheEngineUsable) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  SamplingParams sp;
  sp.max_new_tokens = 12;
  sp.ignore_eos = true;
  auto ref = e->Generate(Prompt(9, 2), sp);
  ASSERT_TRUE(ref.ok());
  ASSERT_EQ(ref->tokens.size(), 12u);

  SamplingParams bad = sp;
  bad.max_new_tokens = -1;
  EXPECT_EQ(e->Generate(Prompt(9, 2), bad).status().code(), StatusCode::kInvalidArgument);
  bad = sp;
  bad.top_p = 0.0f;
  EXPECT_NE(e->Generate(Prompt(9, 2), bad).status().message().find("top_p"), std::string::npos);
  EXPECT_EQ(e->Generate({}, sp).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Generate({1, kVocab}, sp).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Generate(Prompt(kCtx, 3), sp).status().code(), StatusCode::kOutOfRange);
  bad = sp;
  bad.tree = {4, 0};
  EXPECT_EQ(e->Generate(Prompt(9, 2), bad).status().code(), StatusCode::kInvalidArgument);
  bad = sp;
  bad.verify_nodes = -1;
  EXPECT_NE(e->Generate(Prompt(9, 2), bad).status().message().find("verify_nodes"), std::string::npos);
  bad.verify_nodes = kMaxTreeNodes + 1;
  EXPECT_NE(e->Generate(Prompt(9, 2), bad).status().message().find("verify_nodes"), std::string::npos);
  bad = sp;
  bad.verify_nodes = 8;
  bad.auto_tree = true;
  EXPECT_NE(e->Generate(Prompt(9, 2), bad).status().message().find("verify_nodes"), std::string::npos);

  auto again = e->Generate(Prompt(9, 2), sp);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->tokens, ref->tokens);
}

TEST_F(EngineTest, ContextLimitEndsGenerationWithContextFull) {
  EngineConfig cfg;
  cfg.max_context = 40;
  auto e = Make(cfg);
  ASSERT_NE(e, nullptr);
  SamplingParams sp;
  sp.max_new_tokens = 100;
  sp.ignore_eos = true;
  auto r = e->Generate(Prompt(36, 4), sp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens.size(), 4u);  // positions 36..39
  EXPECT_EQ(r->finish_reason, FinishReason::kContextFull);
}

TEST_F(EngineTest, FilesThatAreMissingOrCorruptAreClearErrors) {
  EngineConfig cfg;
  cfg.target_path = dir_.File("nope.gguf");
  EXPECT_EQ(Engine::Create(cfg).status().code(), StatusCode::kNotFound);
  std::vector<uint8_t> bytes = TinyLlamaGguf(1);
  for (size_t cut : {size_t{3}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    const std::string p = dir_.File("cut.gguf");
    ASSERT_TRUE(WriteFile(p, std::vector<uint8_t>(bytes.begin(), bytes.begin() + cut)));
    cfg.target_path = p;
    auto e = Engine::Create(cfg);
    EXPECT_FALSE(e.ok()) << "cut at " << cut;
  }
  cfg.target_path = dir_.path();  // a directory without config.json
  EXPECT_FALSE(Engine::Create(cfg).ok());
  EngineConfig bad;
  EXPECT_EQ(Engine::Create(bad).status().code(), StatusCode::kInvalidArgument);  // no target
}

// Renames the first occurrence of `name` inside the file's bytes (same length, so the file stays
// well formed): the tensor or key it named is then missing from an existing file.
std::vector<uint8_t> RenameInside(std::vector<uint8_t> bytes, const std::string& name) {
  auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
  EXPECT_NE(it, bytes.end()) << name;
  if (it != bytes.end()) *(it + static_cast<std::ptrdiff_t>(name.size()) - 1) = 'X';
  return bytes;
}

TEST_F(EngineTest, CorruptFileContentsAreDataLossNamingWhatAndWhere) {
  EngineConfig cfg;
  cfg.num_threads = 2;
  const std::vector<uint8_t> good = TinyLlamaGguf(1);
  // Truncated anywhere: DataLoss, never NotFound (which means a missing file).
  for (size_t cut : {size_t{100}, good.size() / 2, good.size() - 1}) {
    cfg.target_path = dir_.File("cut.gguf");
    ASSERT_TRUE(WriteFile(cfg.target_path, std::vector<uint8_t>(good.begin(), good.begin() + cut)));
    EXPECT_EQ(Engine::Create(cfg).status().code(), StatusCode::kDataLoss) << "cut at " << cut;
  }
  // A tensor or a metadata key missing inside an existing file.
  for (const std::string name : {"blk.0.ffn_down.weight", "llama.block_count"}) {
    cfg.target_path = dir_.File("renamed.gguf");
    ASSERT_TRUE(WriteFile(cfg.target_path, RenameInside(good, name)));
    Status s = Engine::Create(cfg).status();
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
    EXPECT_NE(s.message().find(name), std::string::npos) << s.ToString();
    EXPECT_NE(s.message().find(cfg.target_path), std::string::npos) << s.ToString();
  }
  // A config value out of its domain is a corrupt file too, not a bad argument of the caller.
  ASSERT_EQ(0, system(("mkdir -p " + dir_.File("hf")).c_str()));
  ASSERT_TRUE(WriteFile(dir_.File("hf/config.json"),
                        std::string(R"({"model_type": "llama", "vocab_size": 64, "hidden_size": 48,
                        "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 5,
                        "num_key_value_heads": 2, "max_position_embeddings": 64})")));
  cfg.target_path = dir_.File("hf");
  Status s = Engine::Create(cfg).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_NE(s.message().find("config.json"), std::string::npos) << s.ToString();
  ASSERT_TRUE(WriteFile(dir_.File("hf/config.json"), std::string(R"({"model_type": "llama", "vocab_size": 64)")));
  EXPECT_EQ(Engine::Create(cfg).status().code(), StatusCode::kDataLoss);
}

// Plain and speculative greedy generation over a chain of `depth` levels, long enough for six
// full rounds, with a drafter whose proposals are the target's own: the same tokens, every
// round accepting the whole chain.
struct FullChains {
  StatusOr<GenerationResult> plain = InternalError("not run"), spec = InternalError("not run");
  SamplingParams params;
};
FullChains RunFullChains(Engine& e, int depth, const std::vector<int32_t>& prompt) {
  FullChains r;
  r.params.ignore_eos = true;
  r.params.max_new_tokens = 1 + 6 * (depth + 1);
  r.params.tree.assign(depth, 1);
  r.params.speculative = false;
  r.plain = e.Generate(prompt, r.params);
  r.params.speculative = true;
  r.spec = e.Generate(prompt, r.params);
  EXPECT_TRUE(r.plain.ok() && r.spec.ok()) << r.spec.status().ToString();
  if (r.plain.ok() && r.spec.ok()) {
    EXPECT_EQ(r.spec->tokens, r.plain->tokens);
    EXPECT_EQ(r.spec->stats.rounds, 6);
    EXPECT_DOUBLE_EQ(r.spec->stats.mean_accepted, depth + 1.0);
  }
  return r;
}

TEST_F(EngineTest, OracleSpeculationEqualsPlainAndAcceptsFullChains) {
  EngineConfig cfg;
  cfg.oracle_draft = true;
  auto e = Make(cfg);
  ASSERT_NE(e, nullptr);
  FullChains run = RunFullChains(*e, 4, Prompt(50, 5));
  ASSERT_TRUE(run.plain.ok() && run.spec.ok());
  auto& plain = run.plain;
  auto& spec = run.spec;
  SamplingParams& sp = run.params;
  // The statistics both loops report, computed the same way.
  for (const GenerationResult* r : {&*plain, &*spec}) {
    const GenerationStats& st = r->stats;
    EXPECT_EQ(st.prompt_tokens, 50);
    EXPECT_EQ(st.new_tokens, static_cast<int64_t>(r->tokens.size()));
    EXPECT_GT(st.decode_s, 0.0);
    EXPECT_DOUBLE_EQ(st.tokens_per_s, st.new_tokens / st.decode_s);
    EXPECT_DOUBLE_EQ(st.prefill_tokens_per_s, 50 / st.prefill_s);
    EXPECT_GT(st.target_cache_bytes, 0);
  }
  EXPECT_EQ(spec->stats.target_cache_bytes, plain->stats.target_cache_bytes);  // same committed length
  EXPECT_FALSE(plain->stats.speculative);
  EXPECT_TRUE(spec->stats.speculative);
  sp.tree = {3, 6, 6};
  auto tree = e->Generate(Prompt(50, 5), sp);
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ(tree->tokens, plain->tokens);
}

// Committing a verified path leaves exactly the K/V that plain decoding of the same tokens writes.
TEST_F(EngineTest, KvCommitEqualsPlainPrefillBitForBit) {
  auto cpu = MakeCpuBackend(2);
  auto model = TargetModel::Load(path_, *cpu, 16, 64);
  ASSERT_TRUE(model.ok());
  auto a = TargetSequence::Create(**model, 200);
  auto b = TargetSequence::Create(**model, 200);
  ASSERT_TRUE(a.ok() && b.ok());
  // The path spans positions 158..161: its rows straddle a hybrid split boundary (160 - 32 = 128),
  // so the prefix/band split differs between the root and the deepest node.
  std::vector<int32_t> prompt = Prompt(158, 6);
  ASSERT_TRUE((*a)->Prefill(prompt, nullptr).ok());
  // Tree: 0 root; 1,2 children of 0; 3 child of 1; 4,5 children of 2; 6 child of 5.
  std::vector<int32_t> tokens = {7, 11, 13, 17, 19, 23, 29};
  std::vector<int32_t> parents = {-1, 0, 0, 1, 2, 2, 5};
  auto verify = (*a)->Step(tokens, parents);
  ASSERT_TRUE(verify.ok());
  std::vector<float> verify_rows(*verify, *verify + 7 * kVocab);
  std::vector<int32_t> path = {0, 2, 5, 6};
  ASSERT_TRUE((*a)->Commit(path).ok());
  ASSERT_EQ((*a)->committed(), 162);

  std::vector<int32_t> seq = prompt;
  for (int32_t n : path) seq.push_back(tokens[n]);
  ASSERT_TRUE((*b)->Prefill(std::vector<int32_t>(seq.begin(), seq.begin() + 158), nullptr).ok());
  // Decode the path one token at a time, as plain decoding does, and compare its logits too.
  for (size_t d = 0; d < path.size(); ++d) {
    auto l = (*b)->Step({seq[158 + d]}, {-1});
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(0, std::memcmp(*l, &verify_rows[static_cast<size_t>(path[d]) * kVocab], kVocab * sizeof(float)))
        << "logits of depth " << d;
    ASSERT_TRUE((*b)->Commit({0}).ok());
  }
  const size_t hd = kHidden / kHeads;
  for (int l = 0; l < kLayers; ++l) {
    KvLayerView ka = (*a)->cache().layer(l), kb = (*b)->cache().layer(l);
    for (int h = 0; h < kKvHeads; ++h) {
      for (int s = 0; s < 162; ++s) {
        const size_t off_a = (static_cast<size_t>(h) * ka.capacity + s) * hd;
        const size_t off_b = (static_cast<size_t>(h) * kb.capacity + s) * hd;
        ASSERT_EQ(0, std::memcmp(static_cast<float*>(ka.k) + off_a, static_cast<float*>(kb.k) + off_b, hd * 4))
            << "K layer " << l << " head " << h << " slot " << s;
        ASSERT_EQ(0, std::memcmp(static_cast<float*>(ka.v) + off_a, static_cast<float*>(kb.v) + off_b, hd * 4));
      }
    }
  }
}

// One engine shared by threads: calls run one after the other, each result as if alone.
TEST_F(EngineTest, ConcurrentCallsFromThreadsGiveTheSequentialResults) {
  EngineConfig cfg;
  cfg.oracle_draft = true;
  auto e = Make(cfg);
  ASSERT_NE(e, nullptr);
  SamplingParams sp;
  sp.ignore_eos = true;
  sp.max_new_tokens = 24;
  std::vector<std::vector<int32_t>> want;
  for (int i = 0; i < 4; ++i) {
    sp.speculative = i % 2 == 0;
    auto r = e->Generate(Prompt(40 + 17 * i, 100 + i), sp);
    ASSERT_TRUE(r.ok());
    want.push_back(r->tokens);
  }
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      SamplingParams p = sp;
      p.speculative = i % 2 == 0;
      for (int rep = 0; rep < 3; ++rep) {
        auto r = e->Generate(Prompt(40 + 17 * i, 100 + i), p);
        if (r.ok() && (rep == 0 || got[i] == r->tokens)) got[i] = r->tokens;
        else got[i].clear();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(got, want);
}

// A call from inside the running request's callback is refused, and the running request goes on
// unharmed.
TEST_F(EngineTest, ReentrantCallFromACallbackIsRefused) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  SamplingParams sp;
  sp.ignore_eos = true;
  sp.max_new_tokens = 20;
  auto alone = e->Generate(Prompt(30, 4), sp);
  ASSERT_TRUE(alone.ok());
  Status inner;
  auto outer = e->Generate(Prompt(30, 4), sp, [&](const std::vector<int32_t>&) {
    if (inner.ok()) inner = e->Generate(Prompt(10, 5), sp).status();
    return true;
  });
  ASSERT_TRUE(outer.ok()) << outer.status().ToString();
  EXPECT_EQ(inner.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(inner.message().find("callback"), std::string::npos) << inner.message();
  EXPECT_EQ(outer->tokens, alone->tokens);
  EXPECT_TRUE(e->Generate(Prompt(10, 5), sp).ok());  // usable afterwards
}

TEST_F(EngineTest, DraftThatDoesNotFitIsRejectedNamingTheField) {
  const std::string d = dir_.File("draft");
  ASSERT_EQ(0, system(("mkdir -p " + d).c_str()));
  ASSERT_TRUE(WriteFile(d + "/config.json",
                        std::string("{\"format\": \"longspec-draft\", \"format_version\": 1, \"window\": 16, "
                                    "\"target\": {\"hidden_size\": 48, \"num_heads\": 4, \"num_kv_heads\": 2, "
                                    "\"head_dim\": 8, \"intermediate_size\": 48, \"vocab_size\": 64}}")));
  ASSERT_TRUE(WriteFile(d + "/model.safetensors", testing::SafetensorsWriter().Build()));
  EngineConfig cfg;
  cfg.target_path = path_;
  cfg.draft_path = d;
  auto e = Engine::Create(cfg);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("hidden_size"), std::string::npos) << e.status().message();
}

// The classic two-model draft: a smaller model of the same vocabulary with its own KV cache.
TEST_F(EngineTest, ModelDraftSpeculationEqualsPlain) {
  const std::string small = dir_.File("small.gguf");
  ASSERT_TRUE(WriteFile(small, testing::RandomLlamaGguf({kVocab, 16, 24, 1, 2, 1, kCtx}, 7)));
  SamplingParams sp;
  sp.ignore_eos = true;
  sp.max_new_tokens = 40;
  auto plain_engine = Make();
  ASSERT_NE(plain_engine, nullptr);
  auto plain = plain_engine->Generate(Prompt(60, 9), sp);
  ASSERT_TRUE(plain.ok());
  EngineConfig cfg;
  cfg.draft_path = small;
  auto e = Make(cfg);
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(e->has_draft());
  EXPECT_EQ(e->draft_info()->hidden_size, 16);
  for (const std::vector<int>& tree : {std::vector<int>{1, 1, 1}, std::vector<int>{4, 8, 8, 8}, std::vector<int>{2}}) {
    sp.tree = tree;
    auto spec = e->Generate(Prompt(60, 9), sp);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(spec->tokens, plain->tokens) << "tree of " << tree.size() << " levels";
    EXPECT_TRUE(spec->stats.speculative);
    EXPECT_GT(spec->stats.draft_cache_bytes, 0);
  }
  // verify_nodes: the model draft grows the tree, the target verifies its best subtree, and the
  // draft commits the accepted path in its own tree's numbers.
  sp.tree = {4, 8, 8, 8};
  for (int keep : {1, 5, 12, 27, 28}) {
    sp.verify_nodes = keep;
    auto pruned = e->Generate(Prompt(60, 9), sp);
    ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
    EXPECT_EQ(pruned->tokens, plain->tokens) << "verify_nodes " << keep;
  }
  sp.verify_nodes = 0;
  // Plain steps of tree="auto" leave the draft behind; it catches up before its next tree.
  sp.tree.clear();
  sp.auto_tree = true;
  auto autod = e->Generate(Prompt(60, 9), sp);
  ASSERT_TRUE(autod.ok()) << autod.status().ToString();
  EXPECT_EQ(autod->tokens, plain->tokens);
}

// The target drafting for itself as a draft model: every greedy proposal is right, so each
// round accepts its deepest node, whose K/V the draft computes only then (the leaf path).
TEST_F(EngineTest, ModelDraftThatIsTheTargetAcceptsFullDepth) {
  EngineConfig cfg;
  cfg.draft_path = path_;
  auto e = Make(cfg);
  ASSERT_NE(e, nullptr);
  FullChains run = RunFullChains(*e, 3, Prompt(50, 11));
  ASSERT_TRUE(run.plain.ok() && run.spec.ok());
  auto& plain = run.plain;
  SamplingParams& sp = run.params;
  sp.tree = {3, 3, 3};
  auto tree = e->Generate(Prompt(50, 11), sp);
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ(tree->tokens, plain->tokens);
  EXPECT_DOUBLE_EQ(tree->stats.mean_accepted, 4.0);
  // Sampling: the same lossless rule; a seed gives the same tokens as plain sampling only in
  // law, so here it only has to run and stop at the budget.
  sp.temperature = 0.8f;
  sp.seed = 3;
  auto sampled = e->Generate(Prompt(50, 11), sp);
  ASSERT_TRUE(sampled.ok()) << sampled.status().ToString();
  EXPECT_EQ(static_cast<int>(sampled->tokens.size()), sp.max_new_tokens);
}

TEST_F(EngineTest, ModelDraftOfAnotherVocabularyOrShorterContextIsRejected) {
  const std::string other = dir_.File("other_vocab.gguf");
  ASSERT_TRUE(WriteFile(other, testing::RandomLlamaGguf({kVocab + 1, 16, 24, 1, 2, 1, kCtx}, 7)));
  EngineConfig cfg;
  cfg.target_path = path_;
  cfg.draft_path = other;
  auto e = Engine::Create(cfg);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("tokenizer"), std::string::npos) << e.status().message();
  const std::string short_ctx = dir_.File("short.gguf");
  ASSERT_TRUE(WriteFile(short_ctx, testing::RandomLlamaGguf({kVocab, 16, 24, 1, 2, 1, kCtx / 2}, 7)));
  cfg.draft_path = short_ctx;
  e = Engine::Create(cfg);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("max_context"), std::string::npos) << e.status().message();
  cfg.max_context = kCtx / 2;  // what the message asks for
  e = Engine::Create(cfg);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
}

}  // namespace
}  // namespace longspec
