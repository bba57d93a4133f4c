// GgmlToF32 against values computed independently: fixtures from the `gguf` Python package
// (tests/data/make_dequant_fixtures.py) must match bit for bit; fp16 is checked exhaustively
// against an ldexp formula.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "loader/ggml_type_traits.h"
#include "loader/gguf.h"

namespace longspec {
namespace {

std::string FixtureDir() {
  std::string here = __FILE__;  // CMake passes absolute source paths
  return here.substr(0, here.find_last_of('/')) + "/../data/dequant/";
}

uint32_t F32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

struct Fixture {
  uint32_t type_id = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> expected;
};

bool LoadFixture(const std::string& name, Fixture* fx, std::string* err) {
  std::ifstream in(FixtureDir() + name + ".bin", std::ios::binary);
  if (!in) {
    *err = "cannot open fixture " + FixtureDir() + name + ".bin (run tests/data/make_dequant_fixtures.py)";
    return false;
  }
  std::vector<uint8_t> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint32_t hdr[3];
  if (raw.size() < 16 || std::memcmp(raw.data(), "LSDQ", 4) != 0) {
    *err = "bad fixture header";
    return false;
  }
  std::memcpy(hdr, raw.data() + 4, sizeof(hdr));
  const uint64_t n_elems = hdr[1], n_bytes = hdr[2];
  if (raw.size() != 16 + n_bytes + 4 * n_elems) {
    *err = "fixture size mismatch";
    return false;
  }
  fx->type_id = hdr[0];
  fx->bytes.assign(raw.begin() + 16, raw.begin() + 16 + n_bytes);
  fx->expected.resize(n_elems);
  std::memcpy(fx->expected.data(), raw.data() + 16 + n_bytes, 4 * n_elems);
  return true;
}

class DequantFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(DequantFixture, MatchesGgufPythonBitExactly) {
  Fixture fx;
  std::string err;
  ASSERT_TRUE(LoadFixture(GetParam(), &fx, &err)) << err;
  const GgmlType type = static_cast<GgmlType>(fx.type_id);
  ASSERT_STREQ(GgmlTypeName(type), GetParam());
  int64_t be = 0, bb = 0;
  ASSERT_TRUE(GgmlTypeBlock(type, &be, &bb));
  const int64_t n = static_cast<int64_t>(fx.expected.size());
  ASSERT_EQ(n % be, 0);
  ASSERT_EQ(static_cast<int64_t>(fx.bytes.size()), n / be * bb);

  std::vector<float> got(n, -12345.0f);
  ASSERT_TRUE(GgmlToF32(type, fx.bytes.data(), n, got.data()).ok());
  int mismatches = 0;
  for (int64_t i = 0; i < n && mismatches < 10; ++i) {
    if (F32Bits(got[i]) != F32Bits(fx.expected[i])) {
      ++mismatches;
      ADD_FAILURE() << GetParam() << " element " << i << " (block " << i / be << "): got " << got[i]
                    << " expected " << fx.expected[i];
    }
  }
  EXPECT_EQ(std::memcmp(got.data(), fx.expected.data(), n * sizeof(float)), 0);

  // Block by block must give the same as the whole range (the range may be split across threads).
  std::vector<float> one(be);
  for (int64_t blk = 0; blk < n / be; ++blk) {
    ASSERT_TRUE(GgmlToF32(type, fx.bytes.data() + blk * bb, be, one.data()).ok());
    ASSERT_EQ(std::memcmp(one.data(), got.data() + blk * be, be * sizeof(float)), 0) << "block " << blk;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantFixture,
                         ::testing::Values("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K",
                                           "Q3_K", "Q4_K", "Q5_K", "Q6_K"),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

TEST(GgmlDequant, Fp16Exhaustive) {
  std::vector<uint8_t> bytes(2 * 65536);
  for (uint32_t h = 0; h < 65536; ++h) {
    bytes[2 * h] = static_cast<uint8_t>(h & 0xFF);
    bytes[2 * h + 1] = static_cast<uint8_t>(h >> 8);
  }
  std::vector<float> got(65536);
  ASSERT_TRUE(GgmlToF32(GgmlType::F16, bytes.data(), 65536, got.data()).ok());
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool neg = (h & 0x8000) != 0;
    const int exp = (h >> 10) & 0x1F;
    const int mant = h & 0x3FF;
    ASSERT_EQ(F32Bits(F16ToF32(static_cast<uint16_t>(h))), F32Bits(got[h])) << std::hex << h;
    if (exp == 0x1F) {
      if (mant == 0) {
        ASSERT_TRUE(std::isinf(got[h]) && std::signbit(got[h]) == neg) << std::hex << h;
      } else {
        ASSERT_TRUE(std::isnan(got[h])) << std::hex << h;
        ASSERT_EQ(F32Bits(got[h]) & 0x007FFFFFu, static_cast<uint32_t>(mant) << 13) << "payload of " << std::hex << h;
        ASSERT_EQ(std::signbit(got[h]), neg) << std::hex << h;
      }
      continue;
    }
    // Subnormals are mant * 2^-24, normals (1024 + mant) * 2^(exp - 25); both exact in fp32.
    const float mag = exp == 0 ? std::ldexp(static_cast<float>(mant), -24) : std::ldexp(static_cast<float>(1024 + mant), exp - 25);
    const float want = neg ? -mag : mag;
    ASSERT_EQ(F32Bits(got[h]), F32Bits(want)) << std::hex << h;  // bit compare keeps -0 distinct from +0
  }
}

TEST(GgmlDequant, Bf16EdgeValues) {
  struct Case {
    uint16_t bits;
    float want;
  };
  const float inf = INFINITY;
  const Case cases[] = {
      {0x3F80, 1.0f},
      {0xC000, -2.0f},
      {0x0000, 0.0f},
      {0x8000, -0.0f},
      {0x0001, std::ldexp(1.0f, -133)},    // smallest subnormal
      {0x807F, -std::ldexp(127.0f, -133)}, // largest negative subnormal
      {0x0080, std::ldexp(1.0f, -126)},    // smallest normal
      {0x7F7F, std::ldexp(255.0f, 120)},   // largest finite
      {0x7F80, inf},
      {0xFF80, -inf},
  };
  for (const Case& c : cases) {
    uint8_t b[2] = {static_cast<uint8_t>(c.bits & 0xFF), static_cast<uint8_t>(c.bits >> 8)};
    float got;
    ASSERT_TRUE(GgmlToF32(GgmlType::BF16, b, 1, &got).ok());
    EXPECT_EQ(F32Bits(got), F32Bits(c.want)) << std::hex << c.bits;
  }
  for (uint16_t nan_bits : {uint16_t{0x7FC0}, uint16_t{0x7F81}, uint16_t{0xFFFF}}) {
    uint8_t b[2] = {static_cast<uint8_t>(nan_bits & 0xFF), static_cast<uint8_t>(nan_bits >> 8)};
    float got;
    ASSERT_TRUE(GgmlToF32(GgmlType::BF16, b, 1, &got).ok());
    EXPECT_TRUE(std::isnan(got));
    EXPECT_EQ(F32Bits(got), static_cast<uint32_t>(nan_bits) << 16);
  }
}

TEST(GgmlDequant, Q8K) {
  // The gguf package has no Q8_K dequantiser; the format is a plain fp32 scale times int8.
  std::vector<uint8_t> block(292, 0);
  const float d = 0.0371f;
  std::memcpy(block.data(), &d, 4);
  for (int j = 0; j < 256; ++j) block[4 + j] = static_cast<uint8_t>(j);  // int8 -128..127 in wrap order
  std::vector<float> got(256);
  ASSERT_TRUE(GgmlToF32(GgmlType::Q8_K, block.data(), 256, got.data()).ok());
  for (int j = 0; j < 256; ++j) {
    EXPECT_EQ(F32Bits(got[j]), F32Bits(d * static_cast<float>(static_cast<int8_t>(j)))) << j;
  }
}

TEST(GgmlDequant, LargeRangeSplitsConsistently) {
  // More than one parallel chunk, with a ragged last chunk.
  std::mt19937 rng(7);
  const int64_t nblocks = 5000 + 3;
  std::vector<uint8_t> bytes(nblocks * 144);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < nblocks; ++i) {  // finite scales
    bytes[i * 144 + 1] &= 0x3F;
    bytes[i * 144 + 3] &= 0x3F;
  }
  std::vector<float> whole(nblocks * 256), piece(256);
  ASSERT_TRUE(GgmlToF32(GgmlType::Q4_K, bytes.data(), nblocks * 256, whole.data()).ok());
  for (int64_t i = 0; i < nblocks; ++i) {
    ASSERT_TRUE(GgmlToF32(GgmlType::Q4_K, bytes.data() + i * 144, 256, piece.data()).ok());
    ASSERT_EQ(std::memcmp(piece.data(), whole.data() + i * 256, 256 * sizeof(float)), 0) << i;
  }
}

TEST(GgmlDequant, Errors) {
  uint8_t buf[64] = {};
  float out[64];
  EXPECT_EQ(GgmlToF32(GgmlType::Q8_1, buf, 32, out).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(GgmlToF32(GgmlType::I32, buf, 4, out).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(GgmlToF32(static_cast<GgmlType>(16), buf, 256, out).code(), StatusCode::kUnimplemented);  // IQ2_XXS
  EXPECT_EQ(GgmlToF32(static_cast<GgmlType>(4), buf, 32, out).code(), StatusCode::kUnimplemented);   // retired id
  EXPECT_EQ(GgmlToF32(static_cast<GgmlType>(1000), buf, 1, out).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(GgmlToF32(GgmlType::Q4_0, buf, 31, out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(GgmlToF32(GgmlType::F32, buf, -1, out).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(GgmlToF32(GgmlType::Q4_0, nullptr, 0, nullptr).ok());
}

TEST(GgmlDequant, TypeTable) {
  int64_t be = 0, bb = 0;
  EXPECT_TRUE(GgmlTypeBlock(GgmlType::Q4_K, &be, &bb));
  EXPECT_EQ(be, 256);
  EXPECT_EQ(bb, 144);
  EXPECT_TRUE(GgmlTypeBlock(GgmlType::Q5_0, &be, &bb));
  EXPECT_EQ(be, 32);
  EXPECT_EQ(bb, 22);
  EXPECT_FALSE(GgmlTypeBlock(GgmlType::I8, &be, &bb));
  EXPECT_STREQ(GgmlTypeName(GgmlType::Q6_K), "Q6_K");
  EXPECT_STREQ(GgmlTypeName(GgmlType::BF16), "BF16");
  EXPECT_STREQ(GgmlTypeName(static_cast<GgmlType>(4)), "UNKNOWN");
  EXPECT_STREQ(GgmlTypeName(static_cast<GgmlType>(99)), "UNKNOWN");
  // Layout known (so files holding them can be opened) but no converter.
  const GgmlTypeTraits* iq = GgmlTypeTraitsOf(16);
  ASSERT_NE(iq, nullptr);
  EXPECT_STREQ(iq->name, "IQ2_XXS");
  EXPECT_FALSE(iq->convertible);
  EXPECT_EQ(GgmlTypeTraitsOf(31), nullptr);
}

}  // namespace
}  // namespace longspec
