#include "util/json.h"

#include <cmath>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"

namespace longspec {
namespace {

constexpr size_t kMaxDepth = 64;

// nlohmann/json does the lexing, grammar, escapes, UTF-8 validation and number conversion; this
// handler turns its SAX events into a Json tree and adds the rules that are ours: a depth limit
// (so a hostile file cannot make the tree, or a later recursive walk over it, arbitrarily deep),
// no duplicate keys, no number that overflows a double.
class TreeBuilder final : public nlohmann::json_sax<nlohmann::json> {
 public:
  Json TakeRoot() { return std::move(root_); }
  const std::string& error() const { return error_; }

  bool null() override { return Attach(Json()); }
  bool boolean(bool b) override { return Attach(Json::MakeBool(b)); }
  bool number_integer(number_integer_t v) override { return Attach(Json::MakeNumber(static_cast<double>(v))); }
  bool number_unsigned(number_unsigned_t v) override { return Attach(Json::MakeNumber(static_cast<double>(v))); }
  bool number_float(number_float_t v, const string_t& text) override {
    if (!std::isfinite(v)) return Fail("number out of the range of a double: " + text);
    return Attach(Json::MakeNumber(v));
  }
  bool string(string_t& s) override { return Attach(Json::MakeString(std::move(s))); }
  bool binary(binary_t&) override { return Fail("binary values are not JSON"); }

  bool start_object(std::size_t) override { return Open(/*is_object=*/true); }
  bool start_array(std::size_t) override { return Open(/*is_object=*/false); }
  bool key(string_t& k) override {
    Frame& top = stack_.back();
    // RFC 8259 leaves duplicate names undefined; for model headers a silent "last one wins"
    // would let two entries disagree about a tensor, so refuse them.
    if (top.members.count(k) != 0) return Fail("duplicate object key \"" + k + "\"");
    top.key = std::move(k);
    return true;
  }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }

  bool parse_error(std::size_t /*position*/, const std::string&, const nlohmann::json::exception& ex) override {
    // ex.what() reads "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
    // (the position is in it already); the bracketed id means nothing to a user.
    std::string what = ex.what();
    const size_t id_end = what.find("] ");
    if (what.rfind("[json.exception.", 0) == 0 && id_end != std::string::npos) what.erase(0, id_end + 2);
    return Fail(what);
  }

 private:
  struct Frame {
    bool is_object = false;
    std::vector<Json> items;
    std::map<std::string, Json> members;
    std::string key;
  };

  bool Fail(std::string what) {
    if (error_.empty()) error_ = std::move(what);
    return false;
  }

  bool Open(bool is_object) {
    if (stack_.size() >= kMaxDepth) return Fail("nesting deeper than " + std::to_string(kMaxDepth));
    stack_.emplace_back();
    stack_.back().is_object = is_object;
    return true;
  }

  bool Close() {
    Frame& top = stack_.back();
    Json done = top.is_object ? Json::MakeObject(std::move(top.members)) : Json::MakeArray(std::move(top.items));
    stack_.pop_back();
    return Attach(std::move(done));
  }

  bool Attach(Json value) {
    if (stack_.empty()) {
      root_ = std::move(value);
    } else if (stack_.back().is_object) {
      stack_.back().members.emplace(std::move(stack_.back().key), std::move(value));
    } else {
      stack_.back().items.push_back(std::move(value));
    }
    return true;
  }

  std::vector<Frame> stack_;
  Json root_;
  std::string error_;
};

nlohmann::json ToNlohmann(const Json& j) {
  switch (j.type()) {
    case Json::Type::kNull: return nullptr;
    case Json::Type::kBool: return j.as_bool();
    case Json::Type::kNumber:
      if (j.is_integer()) return static_cast<int64_t>(j.as_number());
      return j.as_number();  // a non-finite one (only MakeNumber can make it) dumps as null
    case Json::Type::kString: return j.as_string();
    case Json::Type::kArray: {
      nlohmann::json out = nlohmann::json::array();
      for (const Json& item : j.as_array()) out.push_back(ToNlohmann(item));
      return out;
    }
    case Json::Type::kObject: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [key, value] : j.as_object()) out[key] = ToNlohmann(value);
      return out;
    }
  }
  return nullptr;
}

}  // namespace

StatusOr<Json> Json::Parse(const std::string& text) {
  auto error = [](const std::string& what) { return InvalidArgumentError("invalid JSON: " + what); };
  // Two things nlohmann/json allows that a strict reader should not: it skips a leading UTF-8
  // byte-order mark (RFC 8259 forbids emitting one) and stops at a NUL byte as if the input had
  // ended there, which would accept "[1]\0garbage". A raw NUL is never valid JSON text.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) return error("a byte-order mark is not allowed");
  const size_t nul = text.find('\0');
  if (nul != std::string::npos) return error("NUL byte at offset " + std::to_string(nul));
  try {
    TreeBuilder builder;
    const bool ok = nlohmann::json::sax_parse(text, &builder, nlohmann::json::input_format_t::json,
                                              /*strict=*/true, /*ignore_comments=*/false);
    if (!ok) return error(builder.error().empty() ? std::string("rejected") : builder.error());
    return builder.TakeRoot();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing JSON");
  } catch (const std::exception& e) {  // nlohmann reports through the handler; this is a backstop
    return error(e.what());
  }
}

StatusOr<Json> Json::ParseFile(const std::string& path) {
  LONGSPEC_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  try {
    std::string text(reinterpret_cast<const char*>(file->data()), file->size());
    StatusOr<Json> parsed = Parse(text);
    if (!parsed.ok() && parsed.status().code() == StatusCode::kInvalidArgument) {
      return DataLossError(path + ": " + parsed.status().message());
    }
    return parsed;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory reading " + path);
  }
}

Json Json::MakeBool(bool b) {
  Json j;
  j.type_ = Type::kBool;
  j.bool_ = b;
  return j;
}

Json Json::MakeNumber(double d) {
  Json j;
  j.type_ = Type::kNumber;
  j.number_ = d;
  return j;
}

Json Json::MakeString(std::string s) {
  Json j;
  j.type_ = Type::kString;
  j.string_ = std::move(s);
  return j;
}

Json Json::MakeArray(std::vector<Json> a) {
  Json j;
  j.type_ = Type::kArray;
  j.array_ = std::move(a);
  return j;
}

Json Json::MakeObject(std::map<std::string, Json> o) {
  Json j;
  j.type_ = Type::kObject;
  j.object_ = std::move(o);
  return j;
}

const Json* Json::Find(const std::string& key) const {
  if (type_ != Type::kObject) return nullptr;
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &it->second;
}

bool Json::is_integer() const {
  if (type_ != Type::kNumber || !std::isfinite(number_)) return false;
  // [-2^63, 2^63): both bounds are exact doubles, so the comparison is exact.
  if (number_ < -9223372036854775808.0 || number_ >= 9223372036854775808.0) return false;
  return std::trunc(number_) == number_;
}

std::string Json::Dump() const {
  // A string made with MakeString need not be UTF-8; replace bad bytes rather than throw.
  return ToNlohmann(*this).dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

}  // namespace longspec
