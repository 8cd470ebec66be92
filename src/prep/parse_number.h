// Private to the text reader: strict decimal parsing of one field, with a fast path for the short plain
// integers that dominate click logs (Criteo dense features, labels, timestamps).
//
// Accepted: optional '+' or '-', then what std::from_chars accepts in general format ("12", "1.5",
// ".5", "3e-4"). Rejected: empty input, surrounding spaces, "nan", "inf", hex, anything left over, and
// values beyond the range of the target type.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <system_error>

namespace bluewhale::text {

// Parses [b, e) as a float. Plain integers of up to 18 digits skip from_chars: an int64 to float
// conversion rounds once, to nearest, exactly as from_chars would.
inline bool parse_float(const char* b, const char* e, float& out) {
  const char* p = b;
  bool neg = false;
  if (p < e && (*p == '-' || *p == '+')) {
    neg = *p == '-';
    ++p;
  }
  // from_chars would take a second '-' ("--5"), so a sign after the sign is rejected here.
  if (p == e || *p == '-' || *p == '+') return false;
  const char* digits_end = e - p > 18 ? p + 18 : e;
  uint64_t v = 0;
  const char* q = p;
  for (; q < digits_end; ++q) {
    unsigned d = static_cast<unsigned char>(*q) - static_cast<unsigned>('0');
    if (d > 9) break;
    v = v * 10 + d;
  }
  if (q == e) {
    float f = static_cast<float>(static_cast<int64_t>(v));
    out = neg ? -f : f;
    return true;
  }
  // from_chars takes no '+'; the sign is applied after so both signs go through one path.
  float f = 0;
  auto r = std::from_chars(p, e, f, std::chars_format::general);
  if (r.ptr != e) return false;
  if (r.ec == std::errc::result_out_of_range) {
    // Underflow is fine (the value rounds to zero or a subnormal); overflow is an error.
    double d = 0;
    auto rd = std::from_chars(p, e, d, std::chars_format::general);
    if (rd.ec != std::errc() || rd.ptr != e || std::fabs(d) >= 1.0) return false;
    f = static_cast<float>(d);
  } else if (r.ec != std::errc()) {
    return false;
  }
  if (!std::isfinite(f)) return false;  // "nan", "inf", "infinity" are not numbers here
  out = neg ? -f : f;
  return true;
}

// The common case of parse_float, small enough to inline into the reader's field loop: 1 to 9 plain
// digits (counts, labels), no sign. Returns false for anything else (the caller then calls parse_float);
// when it returns true, `out` is exactly what parse_float gives.
inline bool parse_float_digits(const char* b, const char* e, float& out) {
  if (e - b < 1 || e - b > 9) return false;
  uint32_t v = 0;
  for (const char* p = b; p < e; ++p) {
    const unsigned d = static_cast<unsigned char>(*p) - static_cast<unsigned>('0');
    if (d > 9) return false;
    v = v * 10 + d;
  }
  out = static_cast<float>(static_cast<int64_t>(v));  // parse_float's conversion for plain integers
  return true;
}

// The value of a field of `len` (1 to 8) plain digits held in the low bytes of x (little-endian: the
// field's first byte is the lowest; bytes above the field are ignored), converted all at once in the
// 64-bit word (SWAR) rather than a digit per iteration: no data-dependent branch. Returns whether every
// byte of the field is a digit; `value` is meaningful only then.
inline bool digits8(uint64_t x, std::size_t len, uint32_t& value) {
  // Keep the field's bytes only, moved to the top of the word, and pad below them with '0': the lowest
  // byte becomes the most significant digit of an 8-digit number with leading zeros.
  x <<= 8 * (8 - len);
  x |= uint64_t{0x3030303030303030} >> 1 >> (8 * len - 1);  // two shifts: no shift by 64 when len == 8
  // Every byte 0x30..0x39: its high nibble is 3 and adding 6 does not carry out of its low nibble.
  const uint64_t hi = x & 0xF0F0F0F0F0F0F0F0;
  const uint64_t carry = (x + 0x0606060606060606) & 0xF0F0F0F0F0F0F0F0;
  const bool ok = (hi | (carry >> 4)) == 0x3333333333333333;
  x -= 0x3030303030303030;
  x = x * 10 + (x >> 8);  // pairs of digits
  x = (((x & 0x000000FF000000FF) * (100 + (uint64_t{1000000} << 32))) +
       (((x >> 16) & 0x000000FF000000FF) * (1 + (uint64_t{10000} << 32)))) >> 32;
  value = static_cast<uint32_t>(x);
  return ok;
}

// parse_float_digits for 1 to 8 plain digits through digits8. Reads the 8 bytes at b whatever the
// field's length, so b + 8 must be readable. Returns false for anything else (empty, 9+ bytes, any
// non-digit); when it returns true, `out` is exactly what parse_float_digits gives.
inline bool parse_float_digits8(const char* b, const char* e, float& out) {
  const std::size_t len = static_cast<std::size_t>(e - b);
  if (len - 1 >= 8) return false;  // 0 or 9+ (unsigned wrap for 0)
  uint64_t x;
  std::memcpy(&x, b, 8);
  uint32_t v = 0;
  if (!digits8(x, len, v)) return false;
  out = static_cast<float>(static_cast<int64_t>(v));  // parse_float_digits' conversion
  return true;
}

// Parses [b, e) as a decimal int64 (optional sign, digits only).
inline bool parse_int64(const char* b, const char* e, int64_t& out) {
  const char* p = b;
  bool neg = false;
  if (p < e && (*p == '-' || *p == '+')) {
    neg = *p == '-';
    ++p;
  }
  if (p == e || e - p > 19) return false;
  uint64_t v = 0;
  for (; p < e; ++p) {
    unsigned d = static_cast<unsigned char>(*p) - static_cast<unsigned>('0');
    if (d > 9) return false;
    v = v * 10 + d;  // at most 19 digits: below 2^64, no wrap
  }
  const uint64_t limit = neg ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (v > limit) return false;
  out = neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

}  // namespace bluewhale::text
