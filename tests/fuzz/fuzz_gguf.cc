// libFuzzer target: GgufFile::Parse on arbitrary bytes, then ReadF32 of every tensor that
// parsed. Any crash, sanitizer report or leak is a bug; error statuses are expected.
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
//         -DLONGSPEC_CUDA=OFF -DLONGSPEC_BUILD_TESTS=OFF -DLONGSPEC_BUILD_FUZZERS=ON
//   ninja -C build-fuzz fuzz_gguf && ./build-fuzz/fuzz_gguf -max_total_time=60 CORPUS_DIR
#include <cstddef>
#include <cstdint>
#include <vector>

#include "loader/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longspec;
  auto file = MappedFile::FromBytes("fuzz.gguf", std::vector<uint8_t>(data, data + size));
  StatusOr<std::unique_ptr<GgufFile>> g = GgufFile::Parse(file);
  if (!g.ok()) return 0;
  for (const std::string& name : (*g)->Names()) {
    HostTensor t;
    (void)(*g)->ReadF32(name, &t);
  }
  for (const auto& kv : (*g)->metadata()) {
    (void)(*g)->GetInt(kv.first);
    (void)(*g)->GetFloat(kv.first);
    (void)(*g)->GetString(kv.first);
  }
  return 0;
}
