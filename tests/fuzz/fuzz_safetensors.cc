// libFuzzer target: SafetensorsFile::Parse on arbitrary bytes, then ReadF32 of every tensor
// that parsed. Build as described in fuzz_gguf.cc; the target is fuzz_safetensors.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "loader/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longspec;
  auto file = MappedFile::FromBytes("fuzz.safetensors", std::vector<uint8_t>(data, data + size));
  StatusOr<std::unique_ptr<SafetensorsFile>> st = SafetensorsFile::Parse(file);
  if (!st.ok()) return 0;
  for (const std::string& name : (*st)->Names()) {
    HostTensor t;
    (void)(*st)->ReadF32(name, &t);
  }
  return 0;
}
