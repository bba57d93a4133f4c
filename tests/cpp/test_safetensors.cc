// SafetensorsFile and SafetensorsCheckpoint: well-formed files, every truncation, targeted
// header corruptions, checkpoint directories (single and sharded), and a mutation fuzz loop.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "loader/safetensors.h"
#include "model_file_writers.h"

namespace longspec {
namespace {

using testing::InMemory;
using testing::Le;
using testing::SafetensorsWriter;
using testing::TempDir;
using testing::WriteFile;

std::string U16s(std::vector<uint16_t> v) {
  std::string s;
  for (uint16_t x : v) s += Le<uint16_t>(x);
  return s;
}

SafetensorsWriter SampleWriter() {
  SafetensorsWriter w;
  w.Metadata("format", "pt").Metadata("note", "test");
  w.AddF32("model.embed_tokens.weight", {2, 3}, {1, 2, 3, -4, 5.5f, 6});
  // fp16: 1, -2, 0.5, 65504, smallest subnormal, -0
  w.Add("model.norm.weight", "F16", {6}, U16s({0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000}));
  // bf16: 1, -3, 2^-133 (subnormal)
  w.Add("lm_head.weight", "BF16", {3, 1}, U16s({0x3F80, 0xC040, 0x0001}));
  w.Add("empty", "F32", {0, 4}, "");
  w.Add("scalar", "F32", {}, Le<float>(2.25f));
  w.Add("position_ids", "I64", {2}, Le<int64_t>(0) + Le<int64_t>(1));
  return w;
}

StatusOr<std::unique_ptr<SafetensorsFile>> ParseBytes(std::vector<uint8_t> bytes) {
  return SafetensorsFile::Parse(InMemory(std::move(bytes), "test.safetensors"));
}

void ExpectDataLoss(const std::vector<uint8_t>& bytes, std::vector<std::string> needles) {
  auto st = ParseBytes(bytes);
  ASSERT_FALSE(st.ok()) << "parsed a corrupt file; expected mention of " << needles[0];
  EXPECT_EQ(st.status().code(), StatusCode::kDataLoss) << st.status().ToString();
  EXPECT_NE(st.status().message().find("test.safetensors"), std::string::npos) << st.status().ToString();
  for (const std::string& n : needles) {
    EXPECT_NE(st.status().message().find(n), std::string::npos) << st.status().ToString();
  }
}

// A header for one tensor "t" with the given JSON entry, over `data`.
std::vector<uint8_t> OneEntry(const std::string& entry, const std::string& data = std::string(16, '\0')) {
  return SafetensorsWriter::Assemble("{\"t\":" + entry + "}", data);
}

TEST(Safetensors, ReadsFloatDtypes) {
  auto st = ParseBytes(SampleWriter().Build());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  const SafetensorsFile& f = **st;
  EXPECT_EQ(f.header_metadata().at("format"), "pt");
  EXPECT_EQ(f.header_metadata().at("note"), "test");
  EXPECT_EQ(f.Names(), (std::vector<std::string>{"empty", "lm_head.weight", "model.embed_tokens.weight",
                                                 "model.norm.weight", "position_ids", "scalar"}));

  const TensorInfo* emb = f.Find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(emb->dtype, "F32");
  EXPECT_EQ(emb->nbytes, 24u);
  HostTensor t;
  ASSERT_TRUE(f.ReadF32("model.embed_tokens.weight", &t).ok());
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.data()[3], -4.0f);
  EXPECT_EQ(t.data()[4], 5.5f);

  ASSERT_TRUE(f.ReadF32("model.norm.weight", &t).ok());
  EXPECT_EQ(t.data()[0], 1.0f);
  EXPECT_EQ(t.data()[1], -2.0f);
  EXPECT_EQ(t.data()[2], 0.5f);
  EXPECT_EQ(t.data()[3], 65504.0f);
  EXPECT_EQ(t.data()[4], std::ldexp(1.0f, -24));
  EXPECT_TRUE(t.data()[5] == 0.0f && std::signbit(t.data()[5]));

  ASSERT_TRUE(f.ReadF32("lm_head.weight", &t).ok());
  EXPECT_EQ(t.shape, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(t.data()[0], 1.0f);
  EXPECT_EQ(t.data()[1], -3.0f);
  EXPECT_EQ(t.data()[2], std::ldexp(1.0f, -133));

  ASSERT_TRUE(f.ReadF32("empty", &t).ok());
  EXPECT_EQ(t.numel(), 0);
  ASSERT_TRUE(f.ReadF32("scalar", &t).ok());
  EXPECT_TRUE(t.shape.empty());
  EXPECT_EQ(t.data()[0], 2.25f);

  ASSERT_TRUE(f.ReadF32("model.embed_tokens.weight", &t).ok());
  Status s = f.ReadF32("position_ids", &t);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("I64"), std::string::npos);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));  // a failed read leaves *out as it was
  EXPECT_EQ(t.data()[4], 5.5f);
  EXPECT_EQ(f.ReadF32("missing", &t).code(), StatusCode::kDataLoss);  // a tensor missing inside a file
  EXPECT_EQ(f.Find("missing"), nullptr);
}

TEST(Safetensors, HeaderPaddingAndOpen) {
  SafetensorsWriter w;
  w.AddF32("a", {2}, {1, 2});
  // Writers pad the header with spaces so the data section is aligned.
  std::vector<uint8_t> bytes = SafetensorsWriter::Assemble(w.Header() + "       ", w.Data());
  auto st = ParseBytes(bytes);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ((*st)->Find("a")->offset, 8 + w.Header().size() + 7);

  TempDir dir;
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(WriteFile(dir.File("x.safetensors"), bytes));
  auto opened = SafetensorsFile::Open(dir.File("x.safetensors"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  HostTensor t;
  ASSERT_TRUE((*opened)->ReadF32("a", &t).ok());
  EXPECT_EQ(t.data()[1], 2.0f);
  EXPECT_EQ(SafetensorsFile::Open(dir.File("none.safetensors")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(SafetensorsFile::Parse(nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(Safetensors, EveryTruncationIsDataLoss) {
  const std::vector<uint8_t> full = SampleWriter().Build();
  ASSERT_TRUE(ParseBytes(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    auto st = ParseBytes(std::vector<uint8_t>(full.begin(), full.begin() + n));
    ASSERT_FALSE(st.ok()) << "prefix of " << n << " bytes parsed";
    ASSERT_EQ(st.status().code(), StatusCode::kDataLoss) << n << ": " << st.status().ToString();
  }
}

TEST(Safetensors, HeaderLengthCorruptions) {
  std::vector<uint8_t> b = SampleWriter().Build();
  std::vector<uint8_t> c = b;
  std::memcpy(c.data(), &std::string(Le<uint64_t>(100'000'001))[0], 8);
  ExpectDataLoss(c, {"exceeds"});
  c = b;
  std::memcpy(c.data(), &std::string(Le<uint64_t>(~uint64_t{0}))[0], 8);
  ExpectDataLoss(c, {"exceeds"});
  c = b;
  std::memcpy(c.data(), &std::string(Le<uint64_t>(b.size() - 7))[0], 8);
  ExpectDataLoss(c, {"truncated"});
  ExpectDataLoss(std::vector<uint8_t>{1, 0, 0}, {"truncated"});
}

TEST(Safetensors, HeaderContentCorruptions) {
  ExpectDataLoss(SafetensorsWriter::Assemble("{\"t\":", ""), {"JSON"});
  ExpectDataLoss(SafetensorsWriter::Assemble("[1,2]", ""), {"not a JSON object"});
  ExpectDataLoss(SafetensorsWriter::Assemble("", ""), {"JSON"});
  ExpectDataLoss(SafetensorsWriter::Assemble("{} trailing", ""), {"JSON"});
  ExpectDataLoss(SafetensorsWriter::Assemble("{\"__metadata__\":{\"a\":1}}", ""), {"__metadata__", "'a'"});
  ExpectDataLoss(SafetensorsWriter::Assemble("{\"__metadata__\":[]}", ""), {"__metadata__"});
  ExpectDataLoss(SafetensorsWriter::Assemble("{\"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                                             std::string(4, '\0')),
                 {"empty name"});
  // Duplicate tensor entries: the JSON layer refuses them rather than keeping one.
  ExpectDataLoss(SafetensorsWriter::Assemble("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                             "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                                             std::string(8, '\0')),
                 {"duplicate"});

  ExpectDataLoss(OneEntry("[]"), {"'t'", "not an object"});
  ExpectDataLoss(OneEntry(R"({"shape":[4],"data_offsets":[0,16]})"), {"'t'", "dtype"});
  ExpectDataLoss(OneEntry(R"({"dtype":4,"shape":[4],"data_offsets":[0,16]})"), {"'t'", "dtype"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F33","shape":[4],"data_offsets":[0,16]})"), {"'t'", "unknown dtype \"F33\""});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","data_offsets":[0,16]})"), {"'t'", "shape"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[-4],"data_offsets":[0,16]})"), {"'t'", "shape"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4.5],"data_offsets":[0,16]})"), {"'t'", "shape"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":["4"],"data_offsets":[0,16]})"), {"'t'", "shape"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]})"), {"'t'", "overflow"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[1e30],"data_offsets":[0,16]})"), {"'t'", "shape"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4]})"), {"'t'", "data_offsets"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[0]})"), {"'t'", "data_offsets"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16,32]})"), {"'t'", "data_offsets"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[-16,0]})"), {"'t'", "data_offsets"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[16,0]})"), {"'t'", "begin 16 > end 0"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[4,20]})"), {"'t'", "past the data section"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,12]})"), {"'t'", "needs 4 x 4"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F16","shape":[4],"data_offsets":[0,16]})"), {"'t'", "needs"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551616]})"), {"'t'"});

  ExpectDataLoss(SafetensorsWriter::Assemble("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                                             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                                             std::string(16, '\0')),
                 {"overlap", "'a'", "'b'"});
  // As in the reference library, the tensors tile the data section: a zero-length tensor sits
  // where the tiling is (here at the end), not inside another tensor's bytes.
  EXPECT_TRUE(ParseBytes(SafetensorsWriter::Assemble(
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]}}",
                             std::string(16, '\0')))
                  .ok());
  ExpectDataLoss(SafetensorsWriter::Assemble("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                                             "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
                                             std::string(16, '\0')),
                 {"overlap", "'a'", "'b'"});
  // A gap before a tensor, and bytes after the last one.
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,16]})"), {"'t'", "gap"});
  ExpectDataLoss(OneEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), {"cover 8 bytes", "16"});
}

// The header length one byte short (or long) moves the data section by a byte: with the header
// padded by spaces the JSON still parses, so only the tiling check stops the garbage load.
TEST(Safetensors, HeaderLengthOffByOneIsDataLoss) {
  const std::string header = R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}   )";
  std::vector<uint8_t> good = SafetensorsWriter::Assemble(header, std::string(16, '\x01'));
  ASSERT_TRUE(ParseBytes(good).ok());
  for (int delta : {-1, +1}) {
    std::vector<uint8_t> bad = good;
    uint64_t len = 0;
    std::memcpy(&len, bad.data(), 8);
    len += delta;
    std::memcpy(bad.data(), &len, 8);
    auto st = ParseBytes(bad);
    ASSERT_FALSE(st.ok()) << "header length off by " << delta << " parsed";
    EXPECT_EQ(st.status().code(), StatusCode::kDataLoss);
  }
}

TEST(Safetensors, MutationFuzz) {
  const std::vector<uint8_t> seed = SampleWriter().Build();
  std::mt19937_64 rng(0xfeed);
  const char kJsonBytes[] = "{}[],:\"\\0123456789-+.eE tfn";
  int parsed = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = seed;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !b.empty(); ++e) {
      const size_t at = rng() % b.size();
      switch (rng() % 5) {
        case 0: b[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: b[at] = static_cast<uint8_t>(kJsonBytes[rng() % (sizeof(kJsonBytes) - 1)]); break;
        case 2: b.insert(b.begin() + at, static_cast<uint8_t>(kJsonBytes[rng() % (sizeof(kJsonBytes) - 1)])); break;
        case 3: b.erase(b.begin() + at, b.begin() + std::min(b.size(), at + 1 + rng() % 4)); break;
        case 4: b[at] = static_cast<uint8_t>(rng()); break;
      }
    }
    auto st = ParseBytes(std::move(b));
    if (!st.ok()) {
      ASSERT_EQ(st.status().code(), StatusCode::kDataLoss) << st.status().ToString();
      continue;
    }
    ++parsed;
    for (const std::string& name : (*st)->Names()) {
      HostTensor t;
      Status s = (*st)->ReadF32(name, &t);
      ASSERT_TRUE(s.ok() || s.code() == StatusCode::kUnimplemented) << s.ToString();
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(parsed, 100);
  EXPECT_LT(secs, 30.0);
}

// ---- checkpoints ---------------------------------------------------------------------------

void WriteShard(const TempDir& dir, const std::string& name, const SafetensorsWriter& w) {
  ASSERT_TRUE(WriteFile(dir.File(name), w.Build()));
}

TEST(SafetensorsCheckpoint, SingleFile) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  WriteShard(dir, "model.safetensors", SampleWriter());
  auto ck = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ((*ck)->Names().size(), 6u);
  HostTensor t;
  ASSERT_TRUE((*ck)->ReadF32("model.embed_tokens.weight", &t).ok());
  EXPECT_EQ(t.data()[5], 6.0f);
  EXPECT_EQ((*ck)->ReadF32("nope", &t).code(), StatusCode::kDataLoss);
}

TEST(SafetensorsCheckpoint, ShardedIndexIsPreferred) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  SafetensorsWriter a, b, decoy;
  a.AddF32("w1", {2}, {1, 2}).AddF32("w2", {1}, {3});
  b.AddF32("w3", {3}, {4, 5, 6});
  decoy.AddF32("w1", {2}, {-1, -1});
  WriteShard(dir, "model-00001-of-00002.safetensors", a);
  WriteShard(dir, "model-00002-of-00002.safetensors", b);
  WriteShard(dir, "model.safetensors", decoy);  // present, but the index wins
  ASSERT_TRUE(WriteFile(dir.File("model.safetensors.index.json"),
                        std::string(R"({"metadata":{"total_size":24},"weight_map":{)"
                                    R"("w1":"model-00001-of-00002.safetensors",)"
                                    R"("w2":"model-00001-of-00002.safetensors",)"
                                    R"("w3":"model-00002-of-00002.safetensors"}})")));
  auto ck = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ((*ck)->Names(), (std::vector<std::string>{"w1", "w2", "w3"}));
  ASSERT_NE((*ck)->Find("w3"), nullptr);
  EXPECT_EQ((*ck)->Find("w3")->shape, (std::vector<int64_t>{3}));
  HostTensor t;
  ASSERT_TRUE((*ck)->ReadF32("w1", &t).ok());
  EXPECT_EQ(t.data()[0], 1.0f);
  ASSERT_TRUE((*ck)->ReadF32("w3", &t).ok());
  EXPECT_EQ(t.data()[2], 6.0f);
}

class CheckpointErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    SafetensorsWriter a, b;
    a.AddF32("w1", {1}, {1});
    b.AddF32("w2", {1}, {2});
    WriteShard(dir_, "a.safetensors", a);
    WriteShard(dir_, "b.safetensors", b);
  }
  Status OpenWithIndex(const std::string& index) {
    EXPECT_TRUE(WriteFile(dir_.File("model.safetensors.index.json"), index));
    return SafetensorsCheckpoint::Open(dir_.path()).status();
  }
  TempDir dir_;
};

TEST_F(CheckpointErrors, MissingEverything) {
  TempDir empty;
  Status s = SafetensorsCheckpoint::Open(empty.path()).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find(empty.path()), std::string::npos);
  EXPECT_EQ(SafetensorsCheckpoint::Open("/nonexistent/longspec/ckpt").status().code(), StatusCode::kNotFound);
}

TEST_F(CheckpointErrors, BadIndex) {
  EXPECT_TRUE(OpenWithIndex(R"({"weight_map":{"w1":"a.safetensors","w2":"b.safetensors"}})").ok());
  EXPECT_EQ(OpenWithIndex(R"({"weight_map":{"w1":"a.safetensors",}})").code(), StatusCode::kDataLoss);
  EXPECT_EQ(OpenWithIndex(R"({"metadata":{}})").code(), StatusCode::kDataLoss);
  EXPECT_EQ(OpenWithIndex(R"({"weight_map":{"w1":3}})").code(), StatusCode::kDataLoss);
  for (const char* escape : {"../a.safetensors", "sub/a.safetensors", "/etc/passwd", "..", ".", ""}) {
    Status s = OpenWithIndex(std::string(R"({"weight_map":{"w1":")") + escape + "\"}}");
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << escape;
    EXPECT_NE(s.message().find("plain file name"), std::string::npos) << s.ToString();
  }
  Status s = OpenWithIndex(R"({"weight_map":{"w1":"a.safetensors","w9":"c.safetensors"}})");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("c.safetensors"), std::string::npos);
  s = OpenWithIndex(R"({"weight_map":{"w1":"a.safetensors","w2":"a.safetensors"}})");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("'w2'"), std::string::npos);
  s = OpenWithIndex(R"({"weight_map":{"w1":"a.safetensors","w3":"b.safetensors"}})");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("'w3'"), std::string::npos);
}

TEST_F(CheckpointErrors, DuplicateAcrossShards) {
  SafetensorsWriter c;
  c.AddF32("w1", {1}, {9});
  WriteShard(dir_, "c.safetensors", c);
  Status s = OpenWithIndex(R"({"weight_map":{"w1":"a.safetensors","w2":"c.safetensors"}})");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("'w1'"), std::string::npos);
  EXPECT_NE(s.message().find("a.safetensors"), std::string::npos);
  EXPECT_NE(s.message().find("c.safetensors"), std::string::npos);
}

TEST_F(CheckpointErrors, CorruptShard) {
  ASSERT_TRUE(WriteFile(dir_.File("b.safetensors"), std::string("\x05\0\0\0\0\0\0\0{\"x\"", 12)));
  Status s = OpenWithIndex(R"({"weight_map":{"w1":"a.safetensors","w2":"b.safetensors"}})");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("b.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace longspec
