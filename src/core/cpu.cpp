#include "bluewhale/core/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace bluewhale {
namespace {

#if defined(__x86_64__)
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

SimdLevel detect() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return SimdLevel::kScalar;
  bool osxsave = c & (1u << 27), fma = c & (1u << 12), avx = c & (1u << 28);
  if (!osxsave || !avx) return SimdLevel::kScalar;
  uint64_t xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return SimdLevel::kScalar;  // XMM and YMM state
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return SimdLevel::kScalar;
  bool avx2 = b & (1u << 5);
  if (!avx2 || !fma) return SimdLevel::kScalar;
  bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  if (f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6) return SimdLevel::kAvx512;  // + opmask and ZMM state
  return SimdLevel::kAvx2;
#else
  return SimdLevel::kScalar;
#endif
}

SimdLevel from_env(SimdLevel detected) {
  const char* v = std::getenv("BW_SIMD");
  if (!v) return detected;
  SimdLevel want = detected;
  if (!std::strcmp(v, "scalar")) want = SimdLevel::kScalar;
  else if (!std::strcmp(v, "avx2")) want = SimdLevel::kAvx2;
  else if (!std::strcmp(v, "avx512")) want = SimdLevel::kAvx512;
  return want < detected ? want : detected;
}

std::atomic<int>& current() {
  static std::atomic<int> level{static_cast<int>(from_env(detected_simd_level()))};
  return level;
}

}  // namespace

SimdLevel detected_simd_level() {
  static const SimdLevel level = detect();
  return level;
}

SimdLevel simd_level() { return static_cast<SimdLevel>(current().load(std::memory_order_relaxed)); }

SimdLevel set_simd_level(SimdLevel level) {
  SimdLevel l = level < detected_simd_level() ? level : detected_simd_level();
  current().store(static_cast<int>(l));
  return l;
}

std::string_view simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512: return "avx512";
  }
  return "?";
}

}  // namespace bluewhale
