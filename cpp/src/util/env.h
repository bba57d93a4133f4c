// Switches read from the environment, for measurements and debugging (each names its variable
// where it is used).
#pragma once

#include <cstdlib>
#include <cstring>
#include <string>

#include "longspec/status.h"

namespace longspec {

// Unset or empty: `fallback`; "0", "false" or "off": false; anything else: true.
inline bool EnvFlag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 || std::strcmp(v, "off") == 0);
}

// Unset or empty: true, *out untouched; a number (the whole value): true, *out set; anything
// else: false (the caller says which variable and what it expected).
inline bool EnvNumber(const char* name, double* out) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return true;
  char* stop = nullptr;
  const double x = std::strtod(v, &stop);
  if (*stop != '\0') return false;
  *out = x;
  return true;
}

// The number in `name` (`fallback` when unset or empty) if it is one and `valid` holds for it;
// otherwise an InvalidArgument error naming the variable, what it expects and what it got.
inline StatusOr<double> EnvNumberSetting(const char* name, double fallback, bool (*valid)(double), const char* expected) {
  double x = fallback;
  if (!EnvNumber(name, &x) || !valid(x)) {
    return InvalidArgumentError(std::string(name) + ": expected " + expected + ", got '" + std::getenv(name) + "'");
  }
  return x;
}

}  // namespace longspec
