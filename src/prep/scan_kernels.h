// Byte scans and field conversions of the text reader, one version per ISA level (scan_kernels.cpp:
// SSE2 baseline, scan_kernels_avx2.cpp, scan_kernels_avx512.cpp), picked through simd_level()
// (core/cpu.h): the separator offsets of the fast parse path (TextReader::Impl::parse_chunk_fast), its
// conversion of short plain-digit fields, and the line count of TextReader::next(), which cuts the input
// into chunks of whole records.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bluewhale/core/cpu.h"

namespace bluewhale::text {

// Entries a kernel may write past the last offset it reports (whole vectors or unrolled groups).
inline constexpr std::size_t kScanSlack = 16;

struct ScanResult {
  std::size_t count = 0;     // offsets written
  std::size_t newlines = 0;  // how many of them are '\n'
  bool quote = false;        // a byte equal to the quote character was seen (quote >= 0 only)
};

// Scans the 64-byte blocks of s that start at begin, begin + 64, ... below end; begin is a multiple of 64
// and bytes at or past n (the text's size, below 2^32 - 64) are never read. Writes to out, in increasing
// order, the offset from s of every byte equal to delim or '\n' and returns how many. out must have room
// for (end - begin rounded up to 64) + kScanSlack entries: entries past the count may be overwritten.
// quote < 0: no quote character.
using ScanSeparatorsFn = ScanResult (*)(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                        int quote, uint32_t* out);

ScanResult scan_separators_baseline(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                    int quote, uint32_t* out);
ScanResult scan_separators_avx2(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                int quote, uint32_t* out);
ScanResult scan_separators_avx512(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                  int quote, uint32_t* out);

// The kernel for a level (the baseline for kScalar).
ScanSeparatorsFn scan_separators_for(SimdLevel level);

struct LineScan {
  std::size_t newlines = 0;  // '\n' bytes in the text
  std::size_t last = 0;      // offset of the last one (newlines > 0)
  bool blank = false;        // a line ended by one of them is blank: empty, or a lone '\r'
};

// Lines of s[0, n), where a line starts at 0 and after each '\n' (so "\n" or "\r\n" at 0 is a blank line).
using ScanLinesFn = LineScan (*)(const char* s, std::size_t n);

LineScan scan_lines_baseline(const char* s, std::size_t n);
LineScan scan_lines_avx2(const char* s, std::size_t n);
LineScan scan_lines_avx512(const char* s, std::size_t n);
ScanLinesFn scan_lines_for(SimdLevel level);

// Converts one float column of the fast parse path's records while the values are common: field f of
// record j is s[(uint32_t)(e[j * nf] + 1), e[j * nf + 1]) (e points at the field's entry of the first
// record in the separator offsets, offsets modulo 2^32 as scan_separators writes them). For j = r, r + 1,
// ... below br, a field of 1 to 8 plain digits becomes its value and an empty field kMissingFloat, stored
// to dst[j], as long as the 8 bytes at the field's start lie within the text (offset + 8 <= n). Returns
// the first j for which that does not hold (a sign, a point, 9+ bytes, any other byte, the text's last
// bytes), with dst[r, j) written and nothing at or past j; br when every field converted. The caller
// converts field j its own way and calls again from j + 1. Every level gives the baseline's values bit
// for bit (the exact integer, rounded once to float). br * nf must be below 2^31: the vector levels index
// e with 32-bit lanes (the reader calls it per region of 16 KiB).
using DigitsRunFn = std::size_t (*)(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                                    std::size_t br, float* dst);

std::size_t digits_run_baseline(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                                std::size_t br, float* dst);
std::size_t digits_run_avx2(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                            std::size_t br, float* dst);
std::size_t digits_run_avx512(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                              std::size_t br, float* dst);
DigitsRunFn digits_run_for(SimdLevel level);

// The same for one key column whose common values are 8 bytes (Criteo's ids) or missing: for j = r, r + 1,
// ... below br, a field of exactly 8 bytes gives dst[j] = categorical_key8 of them and valid[j] = 1, an
// empty one dst[j] = 0 and valid[j] = 0, as long as the 8 bytes at the field's start lie within the text
// (offset + 8 <= n). Returns the first j for which that does not hold (any other length, the text's last
// bytes), with dst and valid written on [r, j) and nothing at or past j; br when every field converted.
// br * nf below 2^31, as for digits_run.
using Key8RunFn = std::size_t (*)(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                                  std::size_t br, int64_t* dst, uint8_t* valid);

std::size_t key8_run_baseline(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                              std::size_t br, int64_t* dst, uint8_t* valid);
std::size_t key8_run_avx512(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                            std::size_t br, int64_t* dst, uint8_t* valid);
Key8RunFn key8_run_for(SimdLevel level);

}  // namespace bluewhale::text
