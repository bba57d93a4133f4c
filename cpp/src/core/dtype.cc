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
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(man), -24);  // zero or subnormal, exact
    return sign ? -f : f;
  }
  uint32_t u;
  if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 112) << 23) | (man << 13);
  }
  std::memcpy(&f, &u, 4);
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
  if (from == to) {
    if (src != dst) std::memcpy(dst, src, static_cast<size_t>(n) * DTypeSize(from));
    return;
  }
  auto load = [&](int64_t i) -> float {
    switch (from) {
      case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(src)[i]);
      case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(src)[i]);
      default: return static_cast<const float*>(src)[i];
    }
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
