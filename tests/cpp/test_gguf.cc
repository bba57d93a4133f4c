// GgufFile: parsing of well-formed files, every truncation, targeted corruptions, and a
// deterministic mutation fuzz loop. Files are built with tests/cpp/model_file_writers.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "loader/gguf.h"
#include "model_file_writers.h"

namespace longspec {
namespace {

using testing::GgufWriter;
using testing::InMemory;
using testing::Le;
namespace enc = testing::gguf_enc;

// Random quantised blocks whose fp16 scale fields (at `scale_offsets`) hold finite values.
std::string RandomBlocks(std::mt19937* rng, int64_t nblocks, int64_t block_bytes, std::vector<int> scale_offsets) {
  std::string s(nblocks * block_bytes, '\0');
  for (char& c : s) c = static_cast<char>((*rng)() & 0xFF);
  for (int64_t b = 0; b < nblocks; ++b) {
    for (int off : scale_offsets) s[b * block_bytes + off + 1] = static_cast<char>(s[b * block_bytes + off + 1] & 0x3B);
  }
  return s;
}

// A small file touching every metadata type and several tensor types; the last tensor ends
// the file so that every strict prefix is invalid.
std::vector<uint8_t> SampleFile(GgufWriter::Layout* layout = nullptr) {
  std::mt19937 rng(1234);
  GgufWriter w;
  w.AddString("general.architecture", "llama")
      .AddU8("t.u8", 200)
      .AddI8("t.i8", -100)
      .AddU16("t.u16", 60000)
      .AddI16("t.i16", -30000)
      .AddU32("llama.context_length", 8192)
      .AddI32("t.i32", -2000000000)
      .AddF32("llama.rope.freq_base", 100000.0f)
      .AddBool("t.bool", true)
      .AddU64("t.u64", 1ull << 40)
      .AddI64("t.i64", -(1ll << 50))
      .AddF64("t.f64", 0.125)
      .AddStringArray("tokenizer.ggml.tokens", {"<s>", "hello", ""})
      .AddArray("t.arr_i32", GgufValueType::kInt32, {Le<int32_t>(1), Le<int32_t>(-2), Le<int32_t>(3)})
      .AddArray("t.nested", GgufValueType::kArray,
                {enc::Array(GgufValueType::kUint8, {Le<uint8_t>(1), Le<uint8_t>(2)}),
                 enc::Array(GgufValueType::kString, {enc::Str("x")})});
  std::vector<float> f(4 * 3);
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(i) - 5.5f;
  w.AddTensorF32("token_embd.weight", {4, 3}, f);
  w.AddTensor("blk.0.attn_q.weight", {64, 2}, GgmlType::Q4_0, RandomBlocks(&rng, 4, 18, {0}));
  w.AddTensor("blk.0.ffn_up.weight", {32, 1, 2}, GgmlType::Q8_0, RandomBlocks(&rng, 2, 34, {0}));
  w.AddTensor("blk.0.ffn_down.weight", {256, 1, 1, 2}, GgmlType::Q4_K, RandomBlocks(&rng, 2, 144, {0, 2}));
  w.AddTensor("blk.0.attn_v.weight", {256}, GgmlType::Q6_K, RandomBlocks(&rng, 1, 210, {208}));
  w.AddTensor("output_norm.weight", {5}, GgmlType::F16, RandomBlocks(&rng, 1, 10, {0, 2, 4, 6, 8}));
  return w.Build(layout);
}

StatusOr<std::unique_ptr<GgufFile>> ParseBytes(std::vector<uint8_t> bytes) {
  return GgufFile::Parse(InMemory(std::move(bytes), "test.gguf"));
}

template <typename T>
void Poke(std::vector<uint8_t>* bytes, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), bytes->size());
  std::memcpy(bytes->data() + at, &v, sizeof(T));
}

// Expects DataLoss whose message mentions every string in `needles`.
void ExpectDataLoss(const std::vector<uint8_t>& bytes, std::vector<std::string> needles) {
  auto g = ParseBytes(bytes);
  ASSERT_FALSE(g.ok()) << "parsed a corrupt file; expected mention of " << needles[0];
  EXPECT_EQ(g.status().code(), StatusCode::kDataLoss) << g.status().ToString();
  EXPECT_NE(g.status().message().find("test.gguf"), std::string::npos) << g.status().ToString();
  for (const std::string& n : needles) EXPECT_NE(g.status().message().find(n), std::string::npos) << g.status().ToString();
}

TEST(Gguf, ParsesEveryMetadataType) {
  auto g = ParseBytes(SampleFile());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const GgufFile& f = **g;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 15u);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetInt("t.u8"), 200);
  EXPECT_EQ(*f.GetInt("t.i8"), -100);
  EXPECT_EQ(*f.GetInt("t.u16"), 60000);
  EXPECT_EQ(*f.GetInt("t.i16"), -30000);
  EXPECT_EQ(*f.GetInt("llama.context_length"), 8192);
  EXPECT_EQ(*f.GetInt("t.i32"), -2000000000);
  EXPECT_EQ(*f.GetFloat("llama.rope.freq_base"), 100000.0);
  EXPECT_EQ(*f.GetInt("t.bool"), 1);
  EXPECT_EQ(*f.GetInt("t.u64"), int64_t{1} << 40);
  EXPECT_EQ(*f.GetInt("t.i64"), -(int64_t{1} << 50));
  EXPECT_EQ(*f.GetFloat("t.f64"), 0.125);
  EXPECT_EQ(*f.GetFloat("llama.context_length"), 8192.0);  // integers read as floats

  EXPECT_TRUE(f.Get("t.u8")->is_integer());
  EXPECT_TRUE(f.Get("t.bool")->is_integer());
  EXPECT_TRUE(f.Get("t.f64")->is_float());
  EXPECT_FALSE(f.Get("general.architecture")->is_integer());

  const GgufValue* toks = f.Get("tokenizer.ggml.tokens");
  ASSERT_NE(toks, nullptr);
  EXPECT_EQ(toks->type, GgufValueType::kArray);
  EXPECT_EQ(toks->array_type, GgufValueType::kString);
  ASSERT_EQ(toks->array.size(), 3u);
  EXPECT_EQ(toks->array[1].s, "hello");
  EXPECT_EQ(toks->array[2].s, "");
  const GgufValue* ints = f.Get("t.arr_i32");
  ASSERT_EQ(ints->array.size(), 3u);
  EXPECT_EQ(ints->array[1].i, -2);
  const GgufValue* nested = f.Get("t.nested");
  ASSERT_EQ(nested->array_type, GgufValueType::kArray);
  ASSERT_EQ(nested->array.size(), 2u);
  EXPECT_EQ(nested->array[0].array_type, GgufValueType::kUint8);
  EXPECT_EQ(nested->array[0].array[1].i, 2);
  EXPECT_EQ(nested->array[1].array[0].s, "x");
}

TEST(Gguf, TypedGetterErrors) {
  auto g = ParseBytes(SampleFile());
  ASSERT_TRUE(g.ok());
  // A key missing inside an existing file means the file is corrupt (DataLoss), not that a file
  // is missing (NotFound, which Python raises as FileNotFoundError).
  EXPECT_EQ((*g)->GetInt("missing").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ((*g)->GetFloat("missing").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ((*g)->GetString("missing").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ((*g)->Get("missing"), nullptr);
  auto s = (*g)->GetInt("general.architecture");
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("general.architecture"), std::string::npos);
  EXPECT_EQ((*g)->GetInt("t.f64").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ((*g)->GetString("t.u8").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ((*g)->GetFloat("tokenizer.ggml.tokens").status().code(), StatusCode::kDataLoss);
}

TEST(Gguf, TensorTableAndData) {
  GgufWriter::Layout lay;
  std::vector<uint8_t> bytes = SampleFile(&lay);
  auto g = ParseBytes(bytes);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const GgufFile& f = **g;
  const std::vector<std::string> want = {"token_embd.weight",     "blk.0.attn_q.weight", "blk.0.ffn_up.weight",
                                         "blk.0.ffn_down.weight", "blk.0.attn_v.weight", "output_norm.weight"};
  EXPECT_EQ(f.Names(), want);  // file order

  const TensorInfo* emb = f.Find("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{3, 4}));  // row-major: reversed ne
  EXPECT_EQ(emb->dtype, "F32");
  EXPECT_EQ(emb->offset, lay.tensor_data_at[0]);
  EXPECT_EQ(emb->nbytes, 48u);
  EXPECT_EQ(f.TypeOf("token_embd.weight"), GgmlType::F32);
  HostTensor t;
  ASSERT_TRUE(f.ReadF32("token_embd.weight", &t).ok());
  EXPECT_EQ(t.shape, (std::vector<int64_t>{3, 4}));
  for (int i = 0; i < 12; ++i) EXPECT_EQ(t.data()[i], static_cast<float>(i) - 5.5f);

  const TensorInfo* q = f.Find("blk.0.attn_q.weight");
  EXPECT_EQ(q->shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(q->dtype, "Q4_0");
  EXPECT_EQ(q->nbytes, 4u * 18u);
  EXPECT_EQ(f.Find("blk.0.ffn_up.weight")->shape, (std::vector<int64_t>{2, 1, 32}));
  EXPECT_EQ(f.Find("blk.0.ffn_down.weight")->shape, (std::vector<int64_t>{2, 1, 1, 256}));
  EXPECT_EQ(f.Find("blk.0.ffn_down.weight")->dtype, "Q4_K");
  EXPECT_EQ(f.TypeOf("blk.0.attn_v.weight"), GgmlType::Q6_K);
  EXPECT_EQ(f.Find("nope"), nullptr);

  // ReadF32 of every tensor equals the converter applied to the bytes where the writer put them.
  for (size_t i = 0; i < want.size(); ++i) {
    HostTensor out;
    ASSERT_TRUE(f.ReadF32(want[i], &out).ok()) << want[i];
    const TensorInfo* info = f.Find(want[i]);
    EXPECT_EQ(out.shape, info->shape);
    EXPECT_EQ(info->offset % 32, 0u);
    std::vector<float> ref(out.numel());
    ASSERT_TRUE(GgmlToF32(f.TypeOf(want[i]), bytes.data() + lay.tensor_data_at[i], out.numel(), ref.data()).ok());
    EXPECT_EQ(std::memcmp(ref.data(), out.data(), ref.size() * sizeof(float)), 0) << want[i];
  }

  HostTensor untouched({2});
  untouched.data()[0] = 7.0f;
  EXPECT_EQ(f.ReadF32("nope", &untouched).code(), StatusCode::kDataLoss);
  EXPECT_EQ(untouched.shape, (std::vector<int64_t>{2}));  // left as it was
  EXPECT_EQ(untouched.data()[0], 7.0f);
}

TEST(Gguf, VersionTwoAlignmentAndEmptyFile) {
  GgufWriter w(2);
  w.SetAlignment(64).AddTensorF32("a", {3}, {1, 2, 3}).AddTensorF32("b", {2}, {4, 5});
  auto g = ParseBytes(w.Build());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->version(), 2u);
  EXPECT_EQ((*g)->Find("a")->offset % 64, 0u);
  EXPECT_EQ((*g)->Find("b")->offset - (*g)->Find("a")->offset, 64u);
  HostTensor t;
  ASSERT_TRUE((*g)->ReadF32("b", &t).ok());
  EXPECT_EQ(t.data()[1], 5.0f);

  auto empty = ParseBytes(GgufWriter().Build());  // header only: no metadata, no tensors
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE((*empty)->Names().empty());
}

TEST(Gguf, UnconvertibleTypeOpensButReadIsUnimplemented) {
  GgufWriter w;
  w.AddTensor("iq", {256}, 16u /* IQ2_XXS */, std::string(66, '\0')).AddTensor("i32", {2}, GgmlType::I32, std::string(8, '\0'));
  auto g = ParseBytes(w.Build());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->Find("iq")->dtype, "IQ2_XXS");
  HostTensor t;
  Status s = (*g)->ReadF32("iq", &t);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("IQ2_XXS"), std::string::npos);
  EXPECT_EQ((*g)->ReadF32("i32", &t).code(), StatusCode::kUnimplemented);
}

TEST(Gguf, OpenFromDisk) {
  testing::TempDir dir;
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(testing::WriteFile(dir.File("m.gguf"), SampleFile()));
  auto g = GgufFile::Open(dir.File("m.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->Names().size(), 6u);
  EXPECT_EQ(GgufFile::Open(dir.File("absent.gguf")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(GgufFile::Parse(nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(Gguf, EveryTruncationIsDataLoss) {
  const std::vector<uint8_t> full = SampleFile();
  ASSERT_TRUE(ParseBytes(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    auto g = ParseBytes(std::vector<uint8_t>(full.begin(), full.begin() + n));
    ASSERT_FALSE(g.ok()) << "prefix of " << n << " bytes parsed";
    ASSERT_EQ(g.status().code(), StatusCode::kDataLoss) << n << ": " << g.status().ToString();
  }
}

TEST(Gguf, HeaderCorruptions) {
  GgufWriter::Layout lay;
  const std::vector<uint8_t> good = SampleFile(&lay);
  std::vector<uint8_t> b = good;
  b[0] = 'X';
  ExpectDataLoss(b, {"magic"});
  for (uint32_t v : {0u, 1u, 4u, 0xFFFFFFFFu}) {
    b = good;
    Poke<uint32_t>(&b, 4, v);
    ExpectDataLoss(b, {"version " + std::to_string(v)});
  }
  b = good;
  Poke<uint32_t>(&b, 4, 0x03000000u);  // a big-endian file's version
  EXPECT_EQ(ParseBytes(b).status().code(), StatusCode::kUnimplemented);

  b = good;
  Poke<uint64_t>(&b, lay.tensor_count_at, uint64_t{1} << 60);
  ExpectDataLoss(b, {"tensor count"});
  b = good;
  Poke<uint64_t>(&b, lay.kv_count_at, ~uint64_t{0});
  ExpectDataLoss(b, {"metadata count"});
  b = good;  // one more tensor than the table holds: the table runs into the padding/data
  Poke<uint64_t>(&b, lay.tensor_count_at, 7);
  EXPECT_FALSE(ParseBytes(b).ok());
}

TEST(Gguf, MetadataCorruptions) {
  GgufWriter::Layout lay;
  const std::vector<uint8_t> good = SampleFile(&lay);
  std::vector<uint8_t> b = good;
  Poke<uint64_t>(&b, lay.kv_at[0], uint64_t{1} << 63);  // key length
  ExpectDataLoss(b, {"metadata key #0", "claims"});
  b = good;  // string value length of general.architecture
  Poke<uint64_t>(&b, lay.kv_at[0] + 8 + 20 + 4, ~uint64_t{0} - 3);
  ExpectDataLoss(b, {"general.architecture"});
  b = good;
  Poke<uint32_t>(&b, lay.kv_at[1] + 8 + 4, 13);  // value type of t.u8
  ExpectDataLoss(b, {"t.u8", "unknown value type 13"});
  b = good;
  Poke<uint32_t>(&b, lay.kv_at[1] + 8 + 4, 0x80000000u);
  ExpectDataLoss(b, {"t.u8", "unknown value type"});

  auto one_kv = [](std::function<void(GgufWriter&)> add) {
    GgufWriter w;
    add(w);
    return w.Build();
  };
  ExpectDataLoss(one_kv([](GgufWriter& w) { w.AddRaw("a", 9, Le<uint32_t>(4) + Le<uint64_t>(uint64_t{1} << 60)); }),
                 {"'a'", "1152921504606846976 elements"});
  ExpectDataLoss(one_kv([](GgufWriter& w) { w.AddRaw("a", 9, Le<uint32_t>(8) + Le<uint64_t>(~uint64_t{0})); }), {"'a'"});
  ExpectDataLoss(one_kv([](GgufWriter& w) { w.AddRaw("a", 9, Le<uint32_t>(77) + Le<uint64_t>(1) + "x"); }),
                 {"'a'", "unknown value type 77"});
  ExpectDataLoss(one_kv([](GgufWriter& w) { w.AddRaw("flag", 7, Le<uint8_t>(2)); }), {"flag", "bool"});
  ExpectDataLoss(one_kv([](GgufWriter& w) { w.AddU64("big", uint64_t{1} << 63); }), {"big", "INT64_MAX"});
  ExpectDataLoss(one_kv([](GgufWriter& w) { w.AddU32("k", 1).AddU32("k", 2); }), {"duplicate", "'k'"});
  ExpectDataLoss(one_kv([](GgufWriter& w) { w.AddU32("", 1); }), {"empty"});
  // Arrays nested past the depth cap.
  std::string v = enc::Array(GgufValueType::kUint8, {Le<uint8_t>(1)});
  for (int d = 0; d < 8; ++d) v = enc::Array(GgufValueType::kArray, {v});
  ExpectDataLoss(one_kv([&](GgufWriter& w) { w.AddRaw("deep", 9, v); }), {"deep", "deeper"});
  // One level less is accepted.
  v = enc::Array(GgufValueType::kUint8, {Le<uint8_t>(1)});
  for (int d = 0; d < 7; ++d) v = enc::Array(GgufValueType::kArray, {v});
  EXPECT_TRUE(ParseBytes(one_kv([&](GgufWriter& w) { w.AddRaw("deep", 9, v); })).ok());

  // A genuinely large array of small values is refused by the value cap, not by memory.
  std::string big = Le<uint32_t>(0) + Le<uint64_t>((uint64_t{1} << 22) + 1) + std::string((1 << 22) + 1, '\1');
  ExpectDataLoss(one_kv([&](GgufWriter& w) { w.AddRaw("huge", 9, big); }), {"more than"});

  for (auto bad : {std::function<void(GgufWriter&)>([](GgufWriter& w) { w.AddU32("general.alignment", 0); }),
                   std::function<void(GgufWriter&)>([](GgufWriter& w) { w.AddU32("general.alignment", 48); }),
                   std::function<void(GgufWriter&)>([](GgufWriter& w) { w.AddU64("general.alignment", uint64_t{1} << 40); }),
                   std::function<void(GgufWriter&)>([](GgufWriter& w) { w.AddString("general.alignment", "32"); }),
                   std::function<void(GgufWriter&)>([](GgufWriter& w) { w.AddBool("general.alignment", true); })}) {
    ExpectDataLoss(one_kv(bad), {"general.alignment"});
  }
}

TEST(Gguf, TensorInfoCorruptions) {
  auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, size_t nbytes,
                std::optional<uint64_t> off = std::nullopt) {
    GgufWriter w;
    w.AddTensor(name, std::move(ne), type, std::string(nbytes, '\0'), off);
    return w.Build();
  };
  ExpectDataLoss(one("t", {}, 0, 4), {"'t'", "0 dimensions"});
  ExpectDataLoss(one("t", {1, 1, 1, 1, 1}, 0, 4), {"'t'", "5 dimensions"});
  ExpectDataLoss(one("t", {4, 0}, 0, 0), {"'t'", "invalid size 0"});
  ExpectDataLoss(one("t", {uint64_t{1} << 63}, 0, 4), {"'t'", "invalid size"});
  ExpectDataLoss(one("t", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 4), {"'t'", "overflow"});
  ExpectDataLoss(one("t", {uint64_t{1} << 40, uint64_t{1} << 40}, 2, 4), {"'t'", "overflow"});  // Q4_0 bytes
  ExpectDataLoss(one("t", {4}, 4, 16), {"'t'", "unknown ggml type id 4"});
  ExpectDataLoss(one("t", {4}, 99, 16), {"'t'", "unknown ggml type id 99"});
  ExpectDataLoss(one("t", {33}, 2, 18), {"'t'", "not a multiple", "Q4_0"});
  ExpectDataLoss(one("t", {128}, 12, 144), {"'t'", "not a multiple", "Q4_K"});
  ExpectDataLoss(one("t", {4}, 0, 16, 4), {"'t'", "alignment"});
  ExpectDataLoss(one("t", {4}, 0, 16, 64), {"'t'", "outside"});
  ExpectDataLoss(one("t", {5}, 0, 16), {"'t'", "outside"});  // 20 bytes claimed, 16 present
  ExpectDataLoss(one("t", {4}, 0, 16, ~uint64_t{0} - 31), {"'t'", "outside"});  // offset + size wraps
  ExpectDataLoss(one("", {4}, 0, 16), {"empty name"});

  GgufWriter w;
  w.AddTensorF32("dup", {2}, {1, 2}).AddTensorF32("dup", {2}, {3, 4});
  ExpectDataLoss(w.Build(), {"duplicate", "'dup'"});
  GgufWriter o;
  o.AddTensorF32("a", {16}, std::vector<float>(16)).AddTensor("b", {4}, GgmlType::F32, std::string(16, '\0'), 32);
  ExpectDataLoss(o.Build(), {"overlap", "'a'", "'b'"});
}

// Flip, overwrite, insert and delete bytes of the sample file; parse and read every tensor
// of whatever still parses. Nothing may crash (run under ASan/UBSan to see it all).
TEST(Gguf, MutationFuzz) {
  const std::vector<uint8_t> seed = SampleFile();
  std::mt19937_64 rng(0x5eed);
  const uint64_t kInteresting[] = {0, 1, 0x7F, 0xFF, 0x7FFFFFFF, 0xFFFFFFFF, uint64_t{1} << 32, uint64_t{1} << 62,
                                   uint64_t{1} << 63, ~uint64_t{0}};
  int parsed = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !b.empty(); ++e) {
      const size_t at = rng() % b.size();
      switch (rng() % 5) {
        case 0: b[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: b[at] = static_cast<uint8_t>(rng()); break;
        case 2: b.insert(b.begin() + at, static_cast<uint8_t>(rng())); break;
        case 3: b.erase(b.begin() + at, b.begin() + std::min(b.size(), at + 1 + rng() % 8)); break;
        case 4: {
          const uint64_t v = kInteresting[rng() % (sizeof(kInteresting) / sizeof(kInteresting[0]))];
          const size_t width = (rng() % 2) ? 8 : 4;
          for (size_t k = 0; k < width && at + k < b.size(); ++k) b[at + k] = static_cast<uint8_t>(v >> (8 * k));
          break;
        }
      }
    }
    auto g = ParseBytes(std::move(b));
    if (!g.ok()) {
      ASSERT_NE(g.status().code(), StatusCode::kInternal) << g.status().ToString();
      continue;
    }
    ++parsed;
    for (const std::string& name : (*g)->Names()) {
      HostTensor t;
      Status s = (*g)->ReadF32(name, &t);
      ASSERT_TRUE(s.ok() || s.code() == StatusCode::kUnimplemented) << s.ToString();
      if (s.ok()) {
        ASSERT_EQ(t.numel() * 4, static_cast<int64_t>(t.storage.size()));
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Some mutations land in tensor data or harmless metadata bytes and still parse.
  EXPECT_GT(parsed, 100);
  EXPECT_LT(secs, 30.0);
}

}  // namespace
}  // namespace longspec
