// libFuzzer target: the JSON reader as the engine uses it. Arbitrary bytes go through
// Json::Parse; a document that parses is read as a Hugging Face config.json (with itself as the
// generation_config.json) and as a draft config.json. Build as described in fuzz_gguf.cc; the
// target is fuzz_json. Besides crashes and sanitizer reports, one property is checked: what
// parses dumps to text that parses back to the same value (a failure traps).
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/model_config.h"
#include "speculation/draft_config.h"
#include "util/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longspec;
  const std::string text(reinterpret_cast<const char*>(data), size);
  StatusOr<Json> j = Json::Parse(text);
  if (!j.ok()) return 0;
  (void)ModelConfig::FromHfConfig(*j, nullptr);
  (void)ModelConfig::FromHfConfig(*j, &*j);
  (void)DraftConfig::FromJson(*j);
  const std::string dumped = j->Dump();
  StatusOr<Json> again = Json::Parse(dumped);
  if (!again.ok() || again->Dump() != dumped) __builtin_trap();
  return 0;
}
