// A strict JSON reader (RFC 8259) for config.json, safetensors headers and draft configs.
// nlohmann/json parses; this type is the small value tree the loaders walk, so nlohmann stays
// out of every header. Untrusted input: depth-limited (64), duplicate keys, numbers beyond a
// double, invalid UTF-8, unpaired surrogates, a byte-order mark, NUL bytes and trailing garbage
// are rejected with a Status (nothing throws out of Parse).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "longspec/status.h"

namespace longspec {

class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;  // null
  static StatusOr<Json> Parse(const std::string& text);
  static StatusOr<Json> ParseFile(const std::string& path);

  static Json MakeBool(bool b);
  static Json MakeNumber(double d);
  static Json MakeString(std::string s);
  static Json MakeArray(std::vector<Json> a);
  static Json MakeObject(std::map<std::string, Json> o);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool as_bool() const { return bool_; }
  double as_number() const { return number_; }
  const std::string& as_string() const { return string_; }
  const std::vector<Json>& as_array() const { return array_; }
  const std::map<std::string, Json>& as_object() const { return object_; }

  // Object member or nullptr (also nullptr when this is not an object).
  const Json* Find(const std::string& key) const;
  // True when the number is an integer exactly representable in int64.
  bool is_integer() const;

  // Serialises (compact; numbers that are integers print without a fraction).
  std::string Dump() const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::vector<Json> array_;
  std::map<std::string, Json> object_;
};

}  // namespace longspec
