#include "core/dtype.h"

#include <cmath>

namespace longspec {

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kI32: return "i32";
  }
  return "?";
}

float F16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / NaN, payload kept
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: renormalise; every one of them is a normal float.
    uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t F32ToF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;         // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;        // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                              // below the smallest normal half
    const float a = std::fabs(f);
    const float scaled = a * 16777216.0f;               // units of 2^-24, exact
    const float r = std::nearbyint(scaled);             // round to nearest even
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t mant = abs & 0x7fffffu;
  uint32_t exp = (abs >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return sign | static_cast<uint16_t>(h);
}

void ConvertElements(DType from, const void* src, DType to, void* dst, int64_t n) {
  // An empty tensor may have null buffers; memcpy with a null pointer is undefined even for 0 bytes.
  if (n <= 0) return;
  if (from == to) {
    if (src != dst) std::memcpy(dst, src, static_cast<size_t>(n) * DTypeSize(from));
    return;
  }
  // `src` may be a tensor inside a mapped file, where nothing aligns it (a safetensors header
  // of odd length puts the data at an odd address): read elements with memcpy, which compiles to
  // the same plain load but is defined for any address.
  const auto* bytes = static_cast<const unsigned char*>(src);
  auto load = [&](int64_t i) -> float {
    if (from == DType::kBF16 || from == DType::kF16) {
      uint16_t h;
      std::memcpy(&h, bytes + i * 2, 2);
      return from == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
    }
    float f;
    std::memcpy(&f, bytes + i * 4, 4);
    return f;
  };
  switch (to) {
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = F32ToBf16(load(i));
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = F32ToF16(load(i));
      break;
    default:
      for (int64_t i = 0; i < n; ++i) static_cast<float*>(dst)[i] = load(i);
      break;
  }
}

}  // namespace longspec
