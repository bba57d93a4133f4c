// The engine on the GPU end to end, on a random llama with head_dim 64 written as GGUF:
// speculative greedy == plain greedy token for token, a verified tree commits exactly the K/V
// and logits plain decoding produces (bit for bit, graphs on), graphs and PDL change no bit,
// the GPU tracks the CPU engine, and errors are clear.
#include <cstdlib>
#include <cstring>

#include "cuda_test_util.h"
#include "model/target_model.h"
#include "model_file_writers.h"

namespace longspec::testing {
namespace {

constexpr LlamaShape kShape{300, 256, 344, 2, 4, 2, 4096};  // head_dim 64, GQA 2, odd vocab

class CudaEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LONGSPEC_SKIP_WITHOUT_GPU();
    ASSERT_TRUE(dir_.ok());
    path_ = dir_.File("tiny64.gguf");
    ASSERT_TRUE(WriteFile(path_, RandomLlamaGguf(kShape, 7)));
  }
  std::unique_ptr<Engine> Make(EngineConfig cfg) {
    cfg.target_path = path_;
    auto e = Engine::Create(cfg);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(e).value() : nullptr;
  }
  // Runs generation and prompt logits with two switches (environment variables) in each of their
  // four settings, from the default (both on): every setting gives the default's tokens and logits.
  void ExpectSwitchesChangeNoBit(const char* first, const char* second, int prompt_len, uint32_t seed);
  TempDir dir_;
  std::string path_;
};

std::vector<int32_t> Prompt(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(n);
  for (int32_t& t : p) t = static_cast<int32_t>(rng() % kShape.vocab);
  return p;
}

TEST_F(CudaEngineTest, SpeculativeGreedyEqualsPlainGreedyTokenForToken) {
  EngineConfig cfg;
  cfg.device = Device::kCuda;
  cfg.oracle_draft = true;
  auto e = Make(cfg);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->device(), Device::kCuda);
  SamplingParams sp;
  sp.ignore_eos = true;
  sp.max_new_tokens = 80;
  // Prompt lengths around split (256) and chunk (64) boundaries, one long enough for many splits.
  for (int n : {1, 31, 255, 257, 1500}) {
    SCOPED_TRACE("prompt " + std::to_string(n));
    sp.speculative = false;
    auto plain = e->Generate(Prompt(n, n), sp);
    ASSERT_TRUE(plain.ok()) << plain.status().ToString();
    for (std::vector<int> tree : {std::vector<int>{1, 1, 1, 1}, std::vector<int>{3, 6, 6}, DefaultTreeShape()}) {
      sp.speculative = true;
      sp.tree = tree;
      auto spec = e->Generate(Prompt(n, n), sp);
      ASSERT_TRUE(spec.ok()) << spec.status().ToString();
      EXPECT_EQ(spec->tokens, plain->tokens);
      EXPECT_GT(spec->stats.mean_accepted, 1.5);  // the oracle's own proposals are accepted
    }
  }
}

// The classic two-model draft on the GPU: its levels replay the draft model's step graphs with
// trees that differ from capture to replay (first_row > 0); a smaller random model and the
// target itself as the draft model (full-depth acceptance: the leaf runs at commit).
TEST_F(CudaEngineTest, ModelDraftSpeculationEqualsPlainGreedy) {
  const std::string small = dir_.File("small64.gguf");
  ASSERT_TRUE(WriteFile(small, RandomLlamaGguf({kShape.vocab, 128, 200, 1, 2, 1, kShape.ctx}, 9)));
  SamplingParams sp;
  sp.ignore_eos = true;
  sp.max_new_tokens = 60;
  for (const std::string& draft : {small, path_}) {
    EngineConfig cfg;
    cfg.device = Device::kCuda;
    cfg.draft_path = draft;
    auto e = Make(cfg);
    ASSERT_NE(e, nullptr);
    for (int n : {31, 700}) {
      SCOPED_TRACE("draft " + draft + ", prompt " + std::to_string(n));
      sp.speculative = false;
      sp.tree.clear();
      auto plain = e->Generate(Prompt(n, n + 1), sp);
      ASSERT_TRUE(plain.ok()) << plain.status().ToString();
      for (std::vector<int> tree : {std::vector<int>{1, 1, 1}, std::vector<int>{3, 6, 6}, DefaultTreeShape()}) {
        sp.speculative = true;
        sp.tree = tree;
        auto spec = e->Generate(Prompt(n, n + 1), sp);
        ASSERT_TRUE(spec.ok()) << spec.status().ToString();
        EXPECT_EQ(spec->tokens, plain->tokens);
        if (draft == path_) {
          EXPECT_GT(spec->stats.mean_accepted, 2.0);
        }
      }
    }
  }
}

TEST_F(CudaEngineTest, KvCommitEqualsPlainDecodingBitForBit) {
  auto gpu = CudaBackendOrDie();
  auto model = TargetModel::Load(path_, *gpu, 16, 64);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto a = TargetSequence::Create(**model, 2000);
  auto b = TargetSequence::Create(**model, 2000);
  ASSERT_TRUE(a.ok() && b.ok());
  // Positions 1118..1121 straddle a hybrid split (1120 - 32 = 1088 = 17 * 64).
  const std::vector<int32_t> prompt = Prompt(1118, 3);
  ASSERT_TRUE((*a)->Prefill(prompt, nullptr).ok());
  const std::vector<int32_t> tokens = {7, 11, 13, 17, 19, 23, 29};
  const std::vector<int32_t> parents = {-1, 0, 0, 1, 2, 2, 5};
  auto verify = (*a)->Step(tokens, parents);
  ASSERT_TRUE(verify.ok()) << verify.status().ToString();
  const int vocab = kShape.vocab;
  std::vector<float> verify_rows(*verify, *verify + 7 * vocab);
  const std::vector<int32_t> path = {0, 2, 5, 6};
  ASSERT_TRUE((*a)->Commit(path).ok());
  std::vector<int32_t> seq = prompt;
  for (int32_t n : path) seq.push_back(tokens[n]);
  ASSERT_TRUE((*b)->Prefill(prompt, nullptr).ok());
  for (size_t d = 0; d < path.size(); ++d) {
    auto l = (*b)->Step({seq[1118 + d]}, {-1});
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(0, std::memcmp(*l, &verify_rows[size_t(path[d]) * vocab], vocab * sizeof(float))) << "depth " << d;
    ASSERT_TRUE((*b)->Commit({0}).ok());
  }
  const int hd = kShape.hidden / kShape.heads;
  for (int l = 0; l < kShape.layers; ++l) {
    for (bool values : {false, true}) {
      const KvLayerView ka = (*a)->cache().layer(l), kb = (*b)->cache().layer(l);
      for (int h = 0; h < kShape.kv_heads; ++h) {
        View va{static_cast<char*>(values ? ka.v : ka.k) + size_t(h) * ka.capacity * hd * 2, DType::kBF16, 1122, hd, hd};
        View vb{static_cast<char*>(values ? kb.v : kb.k) + size_t(h) * kb.capacity * hd * 2, DType::kBF16, 1122, hd, hd};
        EXPECT_TRUE(SameFloats(Download(*gpu, va), Download(*gpu, vb))) << "layer " << l << " head " << h;
      }
    }
  }
  ASSERT_TRUE(gpu->LastError().ok());
}

void CudaEngineTest::ExpectSwitchesChangeNoBit(const char* first, const char* second, int prompt_len,
                                               uint32_t seed) {
  std::vector<std::vector<float>> logits;
  std::vector<std::vector<int32_t>> tokens;
  const char* settings[][2] = {{"1", "1"}, {"0", "1"}, {"1", "0"}, {"0", "0"}};
  for (auto& s : settings) {
    setenv(first, s[0], 1);
    setenv(second, s[1], 1);
    EngineConfig cfg;
    cfg.device = Device::kCuda;
    auto e = Make(cfg);
    ASSERT_NE(e, nullptr);
    SamplingParams sp;
    sp.ignore_eos = true;
    sp.max_new_tokens = 40;
    auto out = e->Generate(Prompt(prompt_len, seed), sp);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    tokens.push_back(out->tokens);
    auto l = e->PromptLogits(Prompt(prompt_len, seed));
    ASSERT_TRUE(l.ok());
    logits.push_back(*l);
  }
  unsetenv(first);
  unsetenv(second);
  for (size_t i = 1; i < tokens.size(); ++i) {
    EXPECT_EQ(tokens[i], tokens[0]) << first << " / " << second << ": setting " << i;
    EXPECT_TRUE(SameFloats(logits[i], logits[0])) << first << " / " << second << ": setting " << i;
  }
}

TEST_F(CudaEngineTest, GraphsAndPdlChangeNoBit) {
  ExpectSwitchesChangeNoBit("LONGSPEC_CUDA_GRAPHS", "LONGSPEC_PDL", 700, 9);
}

// The early launches (the decode attention loading its keys before it waits, the GEMMs letting
// the next kernel launch before they wait) move time, not bits: each switched off gives the
// default's tokens and prompt logits.
TEST_F(CudaEngineTest, EarlyLaunchesChangeNoBit) {
  ExpectSwitchesChangeNoBit("LONGSPEC_EARLY_PREFIX_KEYS", "LONGSPEC_GEMM_EARLY_TRIGGER", 900, 11);
}

TEST_F(CudaEngineTest, LogitsTrackTheCpuEngine) {
  EngineConfig cg, cc;
  cg.device = Device::kCuda;
  cc.device = Device::kCpu;
  auto g = Make(cg);
  auto c = Make(cc);
  ASSERT_TRUE(g && c);
  for (int n : {5, 300, 2100}) {
    auto lg = g->PromptLogits(Prompt(n, 100 + n));
    auto lc = c->PromptLogits(Prompt(n, 100 + n));
    ASSERT_TRUE(lg.ok() && lc.ok());
    double num = 0, den = 0;
    for (size_t i = 0; i < lc->size(); ++i) {
      num += (double((*lg)[i]) - (*lc)[i]) * (double((*lg)[i]) - (*lc)[i]);
      den += double((*lc)[i]) * (*lc)[i];
    }
    // bf16 weights and activations against fp32: a few percent of the logits' norm.
    EXPECT_LT(std::sqrt(num / den), 0.05) << "prompt " << n;
  }
}

TEST_F(CudaEngineTest, ErrorsAreClearAndLeaveTheEngineUsable) {
  EngineConfig cfg;
  cfg.device = Device::kCuda;
  auto e = Make(cfg);
  ASSERT_NE(e, nullptr);
  SamplingParams sp;
  EXPECT_EQ(e->Generate({}, sp).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Generate({1, kShape.vocab}, sp).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Generate(Prompt(kShape.ctx, 1), sp).status().code(), StatusCode::kOutOfRange);
  sp.max_new_tokens = 5;
  EXPECT_TRUE(e->Generate(Prompt(10, 1), sp).ok());
  // A model whose head size the kernels do not take is refused at creation, naming it.
  const std::string odd = dir_.File("hd8.gguf");
  ASSERT_TRUE(WriteFile(odd, RandomLlamaGguf(LlamaShape{}, 1)));
  EngineConfig bad;
  bad.target_path = odd;
  bad.device = Device::kCuda;
  auto r = Engine::Create(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("head_dim"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace longspec::testing
