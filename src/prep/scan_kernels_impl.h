// The loops shared by the scan kernels of every ISA level (scan_kernels.h), written once over an `Isa`
// policy that each kernel file defines in its own anonymous namespace, so that every instantiation is
// compiled with that file's instruction set and none leaks into another (no ODR clash between levels;
// the helpers below are static for the same reason).
// Isa provides, for one full 64-byte block at p:
//   static void separator_masks(const char* p, char delim, int quote, uint64_t& sep, uint64_t& nl, bool& quote_seen);
//   static void line_masks(const char* p, uint64_t& nl, uint64_t& cr);
//   static uint32_t* write_offsets(uint64_t sep, uint32_t base, uint32_t* out);  // returns the new end
//   static std::size_t popcount(uint64_t x);
// Include only from scan_kernels*.cpp.
#pragma once

#include <algorithm>

#include "prep/scan_kernels.h"

namespace bluewhale::text::scan_impl {

// Masks of a text's last, partial block [at, n), byte by byte (a vector load would read past the text).
static inline void tail_separator_masks(const char* s, std::size_t at, std::size_t n, char delim, int quote, uint64_t& sep,
                                        uint64_t& nl, bool& quote_seen) {
  for (std::size_t i = at; i < n; ++i) {
    const char c = s[i];
    sep |= static_cast<uint64_t>(c == delim || c == '\n') << (i - at);
    nl |= static_cast<uint64_t>(c == '\n') << (i - at);
    quote_seen = quote_seen || (quote >= 0 && c == static_cast<char>(quote));
  }
}
static inline void tail_line_masks(const char* s, std::size_t at, std::size_t n, uint64_t& nl, uint64_t& cr) {
  for (std::size_t i = at; i < n; ++i) {
    nl |= static_cast<uint64_t>(s[i] == '\n') << (i - at);
    cr |= static_cast<uint64_t>(s[i] == '\r') << (i - at);
  }
}

// The blank-line test of a 64-byte block. nl and cr: bit i set when byte i of the block is '\n' / '\r'.
// `prev_nl` and `prev_cr` are the previous block's masks (for the first block: prev_nl = 1 << 63, a line
// starts at 0).
// A '\n' at i ends a blank line when byte i - 1 is '\n', or it is '\r' and byte i - 2 is '\n'.
static inline bool blank_line_in_block(uint64_t nl, uint64_t cr, uint64_t prev_nl, uint64_t prev_cr) {
  const uint64_t nl1 = (nl << 1) | (prev_nl >> 63), cr1 = (cr << 1) | (prev_cr >> 63);
  const uint64_t nl2 = (nl << 2) | (prev_nl >> 62);
  return (nl & (nl1 | (cr1 & nl2))) != 0;
}

// Offsets of the set bits of sep, eight at a time whether or not that many bits are set (tzcnt of 0
// writes junk past the count, overwritten later): fewer mispredicted loop exits than one bit per
// iteration. At most 7 entries of slack.
static inline uint32_t* write_offsets_by_bits(uint64_t sep, std::size_t count, uint32_t base, uint32_t* out) {
  for (std::size_t i = 0; i < count; i += 8)
    for (int u = 0; u < 8; ++u) {
      out[i + u] = base + static_cast<uint32_t>(__builtin_ctzll(sep | uint64_t{1} << 63));
      sep &= sep - 1;
    }
  return out + count;
}

template <class Isa>
ScanResult scan_separators(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim, int quote,
                           uint32_t* out) {
  uint32_t* o = out;
  bool quote_seen = false;
  std::size_t newlines = 0;  // a local, not a field of the result: it stays in a register
  for (std::size_t at = begin; at < end; at += 64) {
    uint64_t sep = 0, nl = 0;
    if (at + 64 <= n)
      Isa::separator_masks(s + at, delim, quote, sep, nl, quote_seen);
    else
      tail_separator_masks(s, at, n, delim, quote, sep, nl, quote_seen);
    newlines += Isa::popcount(nl);
    o = Isa::write_offsets(sep, static_cast<uint32_t>(at), o);
  }
  ScanResult r;
  r.newlines = newlines;
  r.quote = quote_seen;
  r.count = static_cast<std::size_t>(o - out);
  return r;
}

template <class Isa>
LineScan scan_lines(const char* s, std::size_t n) {
  LineScan r;
  uint64_t prev_nl = uint64_t{1} << 63, prev_cr = 0;
  for (std::size_t at = 0; at < n; at += 64) {
    uint64_t nl = 0, cr = 0;
    if (at + 64 <= n)
      Isa::line_masks(s + at, nl, cr);
    else
      tail_line_masks(s, at, n, nl, cr);
    if (nl) {
      r.newlines += Isa::popcount(nl);
      r.last = at + 63 - static_cast<std::size_t>(__builtin_clzll(nl));
      r.blank = r.blank || blank_line_in_block(nl, cr, prev_nl, prev_cr);
    }
    prev_nl = nl;
    prev_cr = cr;
  }
  return r;
}

}  // namespace bluewhale::text::scan_impl
