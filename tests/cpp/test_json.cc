#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "util/json.h"

namespace longspec {
namespace {

Json MustParse(const std::string& text) {
  StatusOr<Json> j = Json::Parse(text);
  EXPECT_TRUE(j.ok()) << text << " -> " << j.status().ToString();
  return j.ok() ? *j : Json();
}

void ExpectRejected(const std::string& text) {
  StatusOr<Json> j = Json::Parse(text);
  EXPECT_FALSE(j.ok()) << "accepted: " << text;
  if (!j.ok()) {
    EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument) << text;
  }
}

TEST(Json, Scalars) {
  EXPECT_TRUE(MustParse("null").is_null());
  EXPECT_TRUE(MustParse("true").as_bool());
  EXPECT_FALSE(MustParse(" false ").as_bool());
  EXPECT_EQ(MustParse("\"hi\"").as_string(), "hi");
  EXPECT_EQ(MustParse("0").as_number(), 0.0);
  EXPECT_EQ(MustParse("-0.5e1").as_number(), -5.0);
  EXPECT_EQ(MustParse("1E+2").as_number(), 100.0);
  EXPECT_EQ(MustParse("123456789012").as_number(), 123456789012.0);
  EXPECT_EQ(MustParse("0.1").as_number(), 0.1);
  EXPECT_EQ(MustParse("1e-400").as_number(), 0.0);  // underflow rounds, it is not an error
}

TEST(Json, ObjectsAndArrays) {
  Json j = MustParse(R"( {"a": [1, 2, {"b": null}], "c": {"d": "e"}, "f": []} )");
  ASSERT_TRUE(j.is_object());
  ASSERT_NE(j.Find("a"), nullptr);
  const auto& a = j.Find("a")->as_array();
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[1].as_number(), 2.0);
  EXPECT_TRUE(a[2].Find("b")->is_null());
  EXPECT_EQ(j.Find("c")->Find("d")->as_string(), "e");
  EXPECT_TRUE(j.Find("f")->as_array().empty());
  EXPECT_EQ(j.Find("zzz"), nullptr);
  EXPECT_EQ(a[0].Find("a"), nullptr);  // Find on a non-object
  EXPECT_TRUE(MustParse("{}").as_object().empty());
}

TEST(Json, StringEscapes) {
  EXPECT_EQ(MustParse(R"("\"\\\/\b\f\n\r\t")").as_string(), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(MustParse(R"("\u0041\u00e9\u20AC")").as_string(), "A\xC3\xA9\xE2\x82\xAC");
  // U+1F600 as a surrogate pair -> 4-byte UTF-8.
  EXPECT_EQ(MustParse(R"("\uD83D\uDE00")").as_string(), "\xF0\x9F\x98\x80");
  EXPECT_EQ(MustParse(R"("\u0000")").as_string(), std::string(1, '\0'));
  // Raw UTF-8 passes through.
  EXPECT_EQ(MustParse("\"\xE2\x82\xAC\"").as_string(), "\xE2\x82\xAC");
}

TEST(Json, RejectsMalformed) {
  for (const char* bad : {
           "", " ", "nul", "tru", "True", "[1,]", "[,1]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "{\"a\":1",
           "[1 2]", "01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "NaN", "Infinity", "1e400", "-1e400",
           "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\uD83D\"", "\"\\uD83D\\u0041\"", "\"\\uDE00\"",
           "\"a\nb\"", "\"\t\"", "1 2", "{} x", "[] ]", "\xEF\xBB\xBF{}", "\"\xC3\"", "\"\xC0\xAF\"",
           "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"", "\"\xFF\"", "{\"a\":1,\"a\":2}",
       }) {
    ExpectRejected(bad);
  }
  ExpectRejected(std::string("[1]\0", 4));  // embedded NUL after the value
}

TEST(Json, DepthLimit) {
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(Json::Parse(ok).ok());
  std::string deep = std::string(65, '[') + std::string(65, ']');
  ExpectRejected(deep);
  // Far deeper input must fail fast on the limit, not on the stack.
  ExpectRejected(std::string(100000, '['));
  std::string objs;
  for (int i = 0; i < 65; ++i) objs += "{\"a\":";
  objs += "1" + std::string(65, '}');
  ExpectRejected(objs);
}

TEST(Json, HugeNumbers) {
  // Integers past uint64 fall back to a double; past a double they are an error, not infinity.
  EXPECT_EQ(MustParse("18446744073709551616").as_number(), 18446744073709551616.0);
  EXPECT_EQ(MustParse("-123456789012345678901234567890").as_number(), -123456789012345678901234567890.0);
  ExpectRejected("1" + std::string(400, '0'));
  ExpectRejected("[-1" + std::string(400, '0') + "]");
  ExpectRejected("{\"a\": 1" + std::string(400, '0') + ".5}");
  EXPECT_EQ(MustParse("0." + std::string(400, '0') + "1").as_number(), 0.0);
}

TEST(Json, ErrorsSayWhere) {
  StatusOr<Json> j = Json::Parse("{\n  \"a\": [1, 2,]\n}");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("line 2"), std::string::npos) << j.status().message();
  j = Json::Parse(R"({"tensor": 1, "tensor": 2})");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("duplicate object key \"tensor\""), std::string::npos) << j.status().message();
}

TEST(Json, IsInteger) {
  EXPECT_TRUE(MustParse("42").is_integer());
  EXPECT_TRUE(MustParse("-7").is_integer());
  EXPECT_TRUE(MustParse("1e3").is_integer());
  EXPECT_FALSE(MustParse("1.5").is_integer());
  EXPECT_FALSE(MustParse("1e19").is_integer());  // beyond int64
  EXPECT_TRUE(MustParse("-9223372036854775808").is_integer());
  EXPECT_FALSE(MustParse("9223372036854775808").is_integer());
  EXPECT_FALSE(MustParse("\"1\"").is_integer());
}

TEST(Json, DumpRoundTrips) {
  const std::string text = R"({"a":[1,-2.5,true,false,null],"b":"q\"\\\n\u0001\u00e9","c":{},"d":1e+300,"e":0.1})";
  Json j = MustParse(text);
  std::string dumped = j.Dump();
  EXPECT_EQ(dumped, "{\"a\":[1,-2.5,true,false,null],\"b\":\"q\\\"\\\\\\n\\u0001\xC3\xA9\",\"c\":{},\"d\":1e+300,\"e\":0.1}");
  Json again = MustParse(dumped);
  EXPECT_EQ(again.Dump(), dumped);
  EXPECT_EQ(Json::MakeNumber(3.0).Dump(), "3");
  EXPECT_EQ(Json::MakeNumber(-12345678901.0).Dump(), "-12345678901");
  EXPECT_EQ(Json::MakeArray({Json::MakeString("x"), Json()}).Dump(), "[\"x\",null]");
}

TEST(Json, ParseFile) {
  char path[] = "/tmp/longspec_json_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  FILE* f = fdopen(fd, "w");
  std::fputs("{\"vocab_size\": 49152}", f);
  std::fclose(f);
  StatusOr<Json> j = Json::ParseFile(path);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->Find("vocab_size")->as_number(), 49152.0);

  f = std::fopen(path, "w");
  std::fputs("{\"vocab_size\": ", f);
  std::fclose(f);
  j = Json::ParseFile(path);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(j.status().message().find(path), std::string::npos);
  std::remove(path);

  EXPECT_EQ(Json::ParseFile("/nonexistent/dir/config.json").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace longspec
