// The target's step buffers grow on demand (a request with a larger tree than any before):
// growing says whether the addresses moved (captured graphs hold them), and a failed allocation
// leaves the old buffers in place, so the engine stays usable after the error.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "model/transformer.h"

namespace longspec {
namespace {

ModelConfig SmallConfig() {
  ModelConfig c;
  c.vocab_size = 1 << 20;  // a logits row of 4 MiB: 2^26 of them pass any address space
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 1;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.max_position = 256;
  return c;
}

TEST(TransformerRunnerReserve, SaysWhenItsBuffersMoveAndKeepsThemWhenAllocationFails) {
  auto backend = MakeCpuBackend(1);
  const ModelConfig config = SmallConfig();
  TransformerWeights weights;  // Reserve never reads them
  TransformerRunner runner(config, weights, *backend);
  bool moved = false;
  ASSERT_TRUE(runner.Reserve(16, 4, 128, &moved).ok());
  EXPECT_TRUE(moved);
  const void* logits = runner.logits().data;

  // Within what it holds: nothing moves.
  ASSERT_TRUE(runner.Reserve(8, 2, 64, &moved).ok());
  EXPECT_FALSE(moved);
  EXPECT_EQ(runner.logits().data, logits);

  // Far more rows than any address space holds (2^48 bytes of logits): an error, and the runner
  // is as it was.
  const Status failed = runner.Reserve(1 << 26, 1 << 26, 128, &moved);
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(moved);
  EXPECT_EQ(runner.max_rows(), 16);
  EXPECT_EQ(runner.max_logit_rows(), 4);
  EXPECT_EQ(runner.logits().data, logits);

  // Growing for real moves the buffers and says so.
  ASSERT_TRUE(runner.Reserve(70, 70, 128, &moved).ok());
  EXPECT_TRUE(moved);
  EXPECT_EQ(runner.max_rows(), 70);
  EXPECT_EQ(runner.logits().rows, 70);
}

}  // namespace
}  // namespace longspec
