// Element types of tensors on the host and on a backend, and the host-side conversions between
// them. bf16 and f16 conversions round to nearest even, as torch and the CUDA intrinsics do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace longspec {

enum class DType : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2, kI32 = 3 };

constexpr size_t DTypeSize(DType t) {
  return t == DType::kF32 || t == DType::kI32 ? 4 : 2;
}
const char* DTypeName(DType t);  // "f32" | "bf16" | "f16" | "i32"

inline uint16_t F32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float Bf16ToF32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Exact IEEE binary16 -> binary32 (subnormals, infinities and NaN payloads preserved).
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

// Converts n elements between float types (F32 / BF16 / F16); src and dst must not overlap
// unless the types are equal.
void ConvertElements(DType from, const void* src, DType to, void* dst, int64_t n);

}  // namespace longspec
