// Block layout of every ggml tensor type a GGUF file may name, converter or not. The GGUF
// parser needs the layout of all of them to check that a tensor's bytes lie inside the file
// (so a model with, say, IQ2_XXS tensors opens and only reading those tensors fails), while
// GgmlToF32 converts only the types marked `convertible`.
#pragma once

#include <cstdint>

namespace longspec {

struct GgmlTypeTraits {
  const char* name;     // ggml's spelling: "Q4_K"
  int64_t block_elems;  // elements per block (1 for plain scalar types)
  int64_t block_bytes;  // bytes per block on disk
  bool convertible;     // GgmlToF32 has a converter
};

// nullptr for an id ggml does not define (or that it has retired).
const GgmlTypeTraits* GgmlTypeTraitsOf(uint32_t type_id);

}  // namespace longspec
