// Switches read from the environment, for measurements and debugging (each names its variable
// where it is used).
#pragma once

#include <cstdlib>
#include <cstring>

namespace longspec {

// Unset or empty: `fallback`; "0", "false" or "off": false; anything else: true.
inline bool EnvFlag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 || std::strcmp(v, "off") == 0);
}

}  // namespace longspec
