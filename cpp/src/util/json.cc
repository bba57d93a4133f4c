#include "util/json.h"

#include <locale.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/mapped_file.h"

namespace longspec {
namespace {

constexpr int kMaxDepth = 64;

// strtod honours LC_NUMERIC, which an embedding application may have set to a locale whose
// decimal point is ','. JSON numbers always use '.', so parse them in the "C" locale.
locale_t CLocale() {
  static locale_t loc = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  return loc;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the well-formed UTF-8 sequence starting at s[0] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when it is malformed or runs past `avail` bytes.
size_t Utf8SequenceLength(const unsigned char* s, size_t avail) {
  unsigned char c = s[0];
  size_t len;
  uint32_t min_cp, cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) { len = 2; min_cp = 0x80; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { len = 3; min_cp = 0x800; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { len = 4; min_cp = 0x10000; cp = c & 0x07; }
  else return 0;
  if (avail < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((s[k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

class Parser {
 public:
  explicit Parser(const std::string& text) : p_(text.data()), end_(text.data() + text.size()), begin_(p_) {}

  Status ParseDocument(Json* out) {
    SkipWhitespace();
    LONGSPEC_RETURN_IF_ERROR(ParseValue(out, 0));
    SkipWhitespace();
    if (p_ != end_) return Error("unexpected trailing characters after the JSON value");
    return Status::OK();
  }

 private:
  Status Error(const std::string& what) const {
    return InvalidArgumentError("JSON parse error at byte " + std::to_string(p_ - begin_) + ": " + what);
  }

  void SkipWhitespace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool ConsumeLiteral(const char* lit) {
    size_t n = std::strlen(lit);
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, lit, n) != 0) return false;
    p_ += n;
    return true;
  }

  Status ParseValue(Json* out, int depth) {
    if (p_ == end_) return Error("unexpected end of input, expected a value");
    switch (*p_) {
      case '{': return ParseObject(out, depth + 1);
      case '[': return ParseArray(out, depth + 1);
      case '"': {
        std::string s;
        LONGSPEC_RETURN_IF_ERROR(ParseString(&s));
        *out = Json::MakeString(std::move(s));
        return Status::OK();
      }
      case 't':
        if (!ConsumeLiteral("true")) return Error("invalid literal");
        *out = Json::MakeBool(true);
        return Status::OK();
      case 'f':
        if (!ConsumeLiteral("false")) return Error("invalid literal");
        *out = Json::MakeBool(false);
        return Status::OK();
      case 'n':
        if (!ConsumeLiteral("null")) return Error("invalid literal");
        *out = Json();
        return Status::OK();
      default:
        if (*p_ == '-' || IsDigit(*p_)) return ParseNumber(out);
        return Error("unexpected character, expected a value");
    }
  }

  Status ParseObject(Json* out, int depth) {
    if (depth > kMaxDepth) return Error("nesting deeper than " + std::to_string(kMaxDepth));
    ++p_;  // '{'
    std::map<std::string, Json> members;
    SkipWhitespace();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      *out = Json::MakeObject(std::move(members));
      return Status::OK();
    }
    while (true) {
      SkipWhitespace();
      if (p_ == end_ || *p_ != '"') return Error("expected a string key");
      std::string key;
      LONGSPEC_RETURN_IF_ERROR(ParseString(&key));
      SkipWhitespace();
      if (p_ == end_ || *p_ != ':') return Error("expected ':' after an object key");
      ++p_;
      SkipWhitespace();
      Json value;
      LONGSPEC_RETURN_IF_ERROR(ParseValue(&value, depth));
      // RFC 8259 leaves duplicate names undefined; for model headers a silent "last one wins"
      // would let two entries disagree about a tensor, so refuse them.
      if (!members.emplace(key, std::move(value)).second) return Error("duplicate object key \"" + key + "\"");
      SkipWhitespace();
      if (p_ == end_) return Error("unexpected end of input inside an object");
      if (*p_ == ',') { ++p_; continue; }
      if (*p_ == '}') { ++p_; break; }
      return Error("expected ',' or '}' in an object");
    }
    *out = Json::MakeObject(std::move(members));
    return Status::OK();
  }

  Status ParseArray(Json* out, int depth) {
    if (depth > kMaxDepth) return Error("nesting deeper than " + std::to_string(kMaxDepth));
    ++p_;  // '['
    std::vector<Json> items;
    SkipWhitespace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      *out = Json::MakeArray(std::move(items));
      return Status::OK();
    }
    while (true) {
      SkipWhitespace();
      Json value;
      LONGSPEC_RETURN_IF_ERROR(ParseValue(&value, depth));
      items.push_back(std::move(value));
      SkipWhitespace();
      if (p_ == end_) return Error("unexpected end of input inside an array");
      if (*p_ == ',') { ++p_; continue; }
      if (*p_ == ']') { ++p_; break; }
      return Error("expected ',' or ']' in an array");
    }
    *out = Json::MakeArray(std::move(items));
    return Status::OK();
  }

  Status ParseHex4(uint32_t* cp) {
    if (end_ - p_ < 4) return Error("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      int h = HexValue(p_[k]);
      if (h < 0) return Error("invalid hex digit in \\u escape");
      v = (v << 4) | static_cast<uint32_t>(h);
    }
    p_ += 4;
    *cp = v;
    return Status::OK();
  }

  Status ParseString(std::string* out) {
    ++p_;  // opening quote
    out->clear();
    while (true) {
      if (p_ == end_) return Error("unterminated string");
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') { ++p_; return Status::OK(); }
      if (c < 0x20) return Error("unescaped control character in string");
      if (c != '\\') {
        size_t len = Utf8SequenceLength(reinterpret_cast<const unsigned char*>(p_), end_ - p_);
        if (len == 0) return Error("invalid UTF-8 in string");
        out->append(p_, len);
        p_ += len;
        continue;
      }
      ++p_;
      if (p_ == end_) return Error("unterminated escape");
      char e = *p_++;
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          LONGSPEC_RETURN_IF_ERROR(ParseHex4(&cp));
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Error("unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return Error("high surrogate not followed by a low surrogate");
            p_ += 2;
            uint32_t lo = 0;
            LONGSPEC_RETURN_IF_ERROR(ParseHex4(&lo));
            if (lo < 0xDC00 || lo > 0xDFFF) return Error("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Error("invalid escape character");
      }
    }
  }

  Status ParseNumber(Json* out) {
    const char* start = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_ || !IsDigit(*p_)) return Error("invalid number");
    if (*p_ == '0') {
      ++p_;
      if (p_ != end_ && IsDigit(*p_)) return Error("leading zeros are not allowed in numbers");
    } else {
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return Error("expected digits after the decimal point");
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return Error("expected digits in the exponent");
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    // The grammar is checked above; strtod needs a terminated string, and the input is not.
    std::string token(start, p_);
    char* stop = nullptr;
    locale_t c_locale = CLocale();
    double v = c_locale != static_cast<locale_t>(nullptr) ? strtod_l(token.c_str(), &stop, c_locale)
                                                          : std::strtod(token.c_str(), &stop);
    if (stop != token.c_str() + token.size()) return Error("could not convert number");
    if (!std::isfinite(v)) return Error("number out of the range of a double");
    *out = Json::MakeNumber(v);
    return Status::OK();
  }

  const char* p_;
  const char* end_;
  const char* begin_;
};

void DumpString(const std::string& s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void DumpValue(const Json& j, std::string* out) {
  switch (j.type()) {
    case Json::Type::kNull: *out += "null"; break;
    case Json::Type::kBool: *out += j.as_bool() ? "true" : "false"; break;
    case Json::Type::kNumber: {
      double v = j.as_number();
      if (!std::isfinite(v)) {  // only reachable through MakeNumber; JSON has no spelling for it
        *out += "null";
      } else if (j.is_integer()) {
        *out += std::to_string(static_cast<int64_t>(v));
      } else {
        char buf[64];
        auto res = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round-trip form
        out->append(buf, res.ptr);
      }
      break;
    }
    case Json::Type::kString: DumpString(j.as_string(), out); break;
    case Json::Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Json& item : j.as_array()) {
        if (!first) out->push_back(',');
        first = false;
        DumpValue(item, out);
      }
      out->push_back(']');
      break;
    }
    case Json::Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : j.as_object()) {
        if (!first) out->push_back(',');
        first = false;
        DumpString(key, out);
        out->push_back(':');
        DumpValue(value, out);
      }
      out->push_back('}');
      break;
    }
  }
}

}  // namespace

StatusOr<Json> Json::Parse(const std::string& text) {
  try {
    Json root;
    Parser parser(text);
    LONGSPEC_RETURN_IF_ERROR(parser.ParseDocument(&root));
    return root;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing JSON");
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
  std::string out;
  DumpValue(*this, &out);
  return out;
}

}  // namespace longspec
