#include "bluewhale/prep/reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <string_view>
#include <thread>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bluewhale/core/cpu.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/io.h"
#include "bluewhale/prep/input_map.h"
#include "core/zero_buffer.h"
#include "prep/decompress.h"
#include "prep/parse_number.h"
#include "prep/scan_kernels.h"

// XXH3 compiled into this file (the same algorithm and results as hash_string, which calls the shared
// library): a call into the library per field costs more than hashing a short field.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace bluewhale {
namespace {

constexpr std::size_t kNpos = std::numeric_limits<std::size_t>::max();

inline uint64_t load_u64(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

// categorical_key (core/hash.h), inlined into the column loops with XXH3 compiled into this file.
inline int64_t value_key(const char* b, const char* e) {
  const std::size_t n = static_cast<std::size_t>(e - b);
  return n == 8 ? categorical_key8(b) : static_cast<int64_t>(XXH3_64bits(b, n));
}

// hash_string(field), for id fields that are not decimal integers.
inline int64_t hash_field(const char* b, const char* e) {
  return static_cast<int64_t>(XXH3_64bits(b, static_cast<std::size_t>(e - b)));
}

// A header that does not end within this many bytes is not a header (binary file, wrong format).
constexpr std::size_t kMaxHeaderBytes = std::size_t{64} << 20;

// How one field of a record is stored.
enum class FieldKind : uint8_t { kSkip, kFloat, kHash, kList, kInt, kId };

struct FieldPlan {
  FieldKind kind = FieldKind::kSkip;
  int out = -1;         // output column
  int schema_col = -1;  // for error messages
  char separator = '|';
};

// Field index -> what to do with it, for one file (header files may order columns differently).
struct FilePlan {
  std::vector<FieldPlan> fields;
  // Every field is skipped, a number or a hashed string (no list): parse_chunk_fast may take its chunks.
  bool fast = false;
};

bool fast_plan(const FilePlan& p) {
  if (p.fields.empty()) return false;
  for (const FieldPlan& f : p.fields)
    if (f.kind == FieldKind::kList) return false;
  return true;
}

struct OutSpec {
  std::string name;
  Role role;
  ColumnKind kind;
};

FieldKind field_kind(Role r) {
  switch (r) {
    case Role::kLabel:
    case Role::kDense: return FieldKind::kFloat;
    case Role::kCategorical: return FieldKind::kHash;
    case Role::kMulti:
    case Role::kSequence: return FieldKind::kList;
    case Role::kTimestamp: return FieldKind::kInt;
    case Role::kId: return FieldKind::kId;
    case Role::kIgnore: return FieldKind::kSkip;
  }
  return FieldKind::kSkip;
}

ColumnKind column_kind(Role r) {
  switch (field_kind(r)) {
    case FieldKind::kFloat: return ColumnKind::kFloat;
    case FieldKind::kList: return ColumnKind::kList;
    default: return ColumnKind::kInt;
  }
}

inline int64_t count_newlines(const char* b, const char* e) {
  int64_t n = 0;
  while (b < e) {
    const void* p = std::memchr(b, '\n', static_cast<std::size_t>(e - b));
    if (!p) break;
    ++n;
    b = static_cast<const char*>(p) + 1;
  }
  return n;
}

// A record [b, e) (its '\n' included) with no content: blank lines are skipped, not rows.
inline bool is_blank(const char* s, std::size_t b, std::size_t e) {
  std::size_t len = e - b;
  if (len > 0 && s[e - 1] == '\n') --len;
  return len == 0 || (len == 1 && s[b] == '\r');
}

// End (one past its '\n') of the record that starts at `pos`, or kNpos when it is not complete within
// [pos, size). At end of data (eof) an unterminated last record ends at `size`. `newlines` grows by the
// line breaks the record spans. With kQuotes a quote opens a quoted field only at the start of a field,
// "" inside it is an escaped quote, and newlines inside it do not end the record; parse() follows the
// same rules so chunk boundaries and row numbers always agree with it.
template <bool kQuotes>
std::size_t record_end(const char* s, std::size_t pos, std::size_t size, bool eof, char delim, char quote,
                       int64_t& newlines) {
  const char* nl = static_cast<const char*>(std::memchr(s + pos, '\n', size - pos));
  if constexpr (kQuotes) {
    const char* limit = nl ? nl : s + size;
    if (std::memchr(s + pos, quote, static_cast<std::size_t>(limit - (s + pos)))) {
      int64_t inner = 0;
      bool field_start = true;
      std::size_t i = pos;
      while (i < size) {
        const char c = s[i];
        if (c == quote && field_start) {
          ++i;
          for (;;) {
            const char* q = static_cast<const char*>(std::memchr(s + i, quote, size - i));
            if (!q) {
              if (!eof) return kNpos;
              newlines += inner + count_newlines(s + i, s + size);
              return size;  // unterminated quote: parse() reports it
            }
            inner += count_newlines(s + i, q);
            i = static_cast<std::size_t>(q - s) + 1;
            if (i < size && s[i] == quote) {
              ++i;
              continue;
            }
            // A quote as the last byte may be the first half of "": wait for more data.
            if (i >= size && !eof) return kNpos;
            break;
          }
          field_start = false;
          continue;
        }
        if (c == '\n') {
          newlines += inner + 1;
          return i + 1;
        }
        field_start = c == delim;
        ++i;
      }
      if (!eof) return kNpos;
      newlines += inner;
      return size;
    }
  }
  if (nl) {
    ++newlines;
    return static_cast<std::size_t>(nl - s) + 1;
  }
  return eof && pos < size ? size : kNpos;
}

struct ScanResult {
  std::size_t lead = 0;     // bytes of blank lines before the first record
  int64_t lead_lines = 0;   // and their count
  std::size_t end = 0;      // bytes of complete records from the start (lead included)
  int64_t lines = 0;        // line breaks in [lead, end)
  int64_t records = 0;      // non-blank records among them
};

template <bool kQuotes>
ScanResult scan_records(const char* s, std::size_t size, bool eof, char delim, char quote) {
  ScanResult r;
  if constexpr (!kQuotes) {
    // Without quotes every '\n' ends a record: when no line is blank, whole blocks of lines are counted
    // by the line scan kernel instead of one memchr per record.
    const text::LineScan ls = text::scan_lines_for(simd_level())(s, size);
    if (!ls.blank) {
      if (ls.newlines > 0) {
        r.end = ls.last + 1;
        r.lines = r.records = static_cast<int64_t>(ls.newlines);
      }
      if (!eof || r.end == size) return r;
      if (!is_blank(s, r.end, size)) {  // the unterminated last record
        ++r.records;
        r.end = size;
        return r;
      }
      r = ScanResult{};  // a blank unterminated tail: the general loop below decides
    }
  }
  std::size_t pos = 0;
  while (pos < size) {
    int64_t nl = 0;
    std::size_t e = record_end<kQuotes>(s, pos, size, eof, delim, quote, nl);
    if (e == kNpos) break;
    if (!is_blank(s, pos, e)) {
      ++r.records;
    } else if (r.records == 0) {
      r.lead = e;
      r.lead_lines += nl;
      nl = 0;
    }
    r.lines += nl;
    pos = e;
  }
  r.end = pos;
  return r;
}

// Decompressed bytes of one file in a growable window: fill() appends, take() cuts whole records off the
// front. A UTF-8 byte order mark at the start of the file is dropped. Over a mapped file the window is a
// range of the mapping: fill() widens it, take() hands out views (TextBytes::borrow), nothing is copied.
class RecordBuffer {
 public:
  explicit RecordBuffer(std::unique_ptr<text::ByteSource> src) : src_(std::move(src)) {}
  explicit RecordBuffer(InputMaps::View mapped) : map_(mapped.data), map_size_(mapped.size) {}

  // Reads until `want` bytes are buffered or the data ends.
  void fill(std::size_t want) {
    if (map_) {
      if (have_ < want) have_ = std::min(want, map_size_ - off_);
      eof_ = off_ + have_ == map_size_;
      check_bom();
      return;
    }
    if (eof_ || have_ >= want) return;
    if (buf_.size() < want) buf_.resize(want);  // new bytes are not initialised: read over next
    const std::size_t got = src_->read_full(buf_.data() + have_, want - have_);
    if (got < want - have_) eof_ = true;
    have_ += got;
    check_bom();
  }
  // Drops the first n bytes.
  void consume(std::size_t n) {
    if (!map_) std::memmove(buf_.data(), buf_.data() + n, have_ - n);
    off_ += n;
    have_ -= n;
  }
  // Returns the first n bytes and keeps the rest. The big buffer moves out whole so only the (short)
  // partial record after it is copied, into `spare` (a buffer the parser is done with: reusing its memory
  // spares the page faults of a fresh chunk-sized allocation).
  TextBytes take(std::size_t n, TextBytes spare = {}) {
    if (map_) {
      TextBytes out = TextBytes::borrow(map_ + off_, n);
      consume(n);
      return out;
    }
    if (spare.borrowed()) spare = TextBytes();  // a view of a mapped file: its memory is not ours to write
    const std::size_t rest = have_ - n;
    if (spare.size() < rest) spare.resize(rest);
    if (rest > 0) std::memcpy(spare.data(), buf_.data() + n, rest);
    TextBytes out = std::move(buf_);
    buf_ = std::move(spare);
    have_ = rest;
    off_ += n;
    out.resize(n);
    return out;
  }
  // Goes on in `buf`'s memory: what is buffered (a partial record, short) is copied there, and the
  // buffer used until now is returned.
  TextBytes adopt(TextBytes buf) {
    if (map_) return buf;  // nothing buffered outside the mapping
    // A caller's text from a mapped file (the other parsing thread was there last) is a view of the
    // read-only mapping: read into memory of our own instead.
    if (buf.borrowed()) buf = TextBytes();
    if (buf.size() < have_) buf.resize(have_);
    if (have_ > 0) std::memcpy(buf.data(), buf_.data(), have_);
    std::swap(buf, buf_);
    return buf;
  }
  // The buffer, for a file that is done.
  TextBytes release() {
    have_ = 0;
    return std::move(buf_);
  }
  // Where the window starts in the file's (decompressed) bytes: in the mapping, or the bytes read before it.
  std::size_t offset() const { return off_; }
  const char* data() const { return map_ ? map_ + off_ : buf_.data(); }
  std::size_t size() const { return have_; }
  bool eof() const { return eof_; }
  // On-disk bytes consumed so far (compressed bytes for gzip and zstd), for progress.
  int64_t raw_bytes() const { return map_ ? static_cast<int64_t>(off_ + have_) : src_->raw_bytes(); }

 private:
  void check_bom() {
    if (at_start_ && (have_ >= 3 || eof_)) {
      at_start_ = false;
      if (have_ >= 3 && std::memcmp(data(), "\xEF\xBB\xBF", 3) == 0) consume(3);
    }
  }

  std::unique_ptr<text::ByteSource> src_;  // null over a mapped file
  TextBytes buf_;
  const char* map_ = nullptr;
  std::size_t map_size_ = 0, off_ = 0;  // the mapping; where the window starts (see offset())
  std::size_t have_ = 0;
  bool eof_ = false;
  bool at_start_ = true;
};

// Splits one record (header lines only: not a hot path) into unquoted field texts.
std::vector<std::string> split_record(std::string_view rec, bool quotes, char delim, char quote) {
  if (!rec.empty() && rec.back() == '\n') rec.remove_suffix(1);
  if (!rec.empty() && rec.back() == '\r') rec.remove_suffix(1);
  std::vector<std::string> out(1);
  bool field_start = true;
  for (std::size_t i = 0; i < rec.size(); ++i) {
    const char c = rec[i];
    if (quotes && field_start && c == quote) {
      for (++i; i < rec.size(); ++i) {
        if (rec[i] != quote) {
          out.back() += rec[i];
        } else if (i + 1 < rec.size() && rec[i + 1] == quote) {
          out.back() += quote;
          ++i;
        } else {
          break;
        }
      }
      field_start = false;
    } else if (c == delim) {
      out.emplace_back();
      field_start = true;
    } else {
      out.back() += c;
      field_start = false;
    }
  }
  return out;
}

std::string quote_for_message(const char* b, const char* e) {
  constexpr std::ptrdiff_t kMax = 60;
  if (e - b <= kMax) return std::string(b, e);
  return std::string(b, b + kMax) + "...";
}

// Positions of delimiters, '\n' (and quotes when kQuotes) in a text, in increasing order, found 64 bytes
// at a time: one SSE2 compare per 16 bytes and one bit scan per field instead of a test per byte. SSE2 is
// part of baseline x86-64, so this needs no run-time dispatch; other targets use the scalar loop.
template <bool kQuotes>
class SeparatorScan {
 public:
  SeparatorScan(const char* s, std::size_t n, char delim, char quote) : s_(s), n_(n), delim_(delim), quote_(quote) {}

  // The next next() returns the first separator at or after pos.
  void seek(std::size_t pos) {
    base_ = pos & ~std::size_t{63};
    mask_ = block(base_) & (~uint64_t{0} << (pos - base_));
  }
  // Position of the next separator, or n at the end of the text.
  std::size_t next() {
    while (mask_ == 0) {
      base_ += 64;
      if (base_ >= n_) return n_;
      mask_ = block(base_);
    }
    const std::size_t r = base_ + static_cast<std::size_t>(__builtin_ctzll(mask_));
    mask_ &= mask_ - 1;
    return r;
  }

 private:
  uint64_t block(std::size_t at) const {
#if defined(__SSE2__)
    if (at + 64 <= n_) {
      const __m128i d = _mm_set1_epi8(delim_), nl = _mm_set1_epi8('\n'), q = _mm_set1_epi8(quote_);
      uint64_t m = 0;
      for (int k = 0; k < 4; ++k) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s_ + at + 16 * k));
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(x, d), _mm_cmpeq_epi8(x, nl));
        if constexpr (kQuotes) hit = _mm_or_si128(hit, _mm_cmpeq_epi8(x, q));
        m |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(hit))) << (16 * k);
      }
      return m;
    }
#endif
    uint64_t m = 0;
    const std::size_t end = std::min(at + 64, n_);
    for (std::size_t i = at; i < end; ++i) {
      const char c = s_[i];
      if (c == delim_ || c == '\n' || (kQuotes && c == quote_)) m |= uint64_t{1} << (i - at);
    }
    return m;
  }

  const char* s_;
  std::size_t n_;
  char delim_, quote_;
  std::size_t base_ = 0;
  uint64_t mask_ = 0;
};

// v.resize(n) for a value array whose old contents are dead (every slot below n is written next). When
// the capacity is short, the old values are dropped instead of copied into the new allocation, and an
// eighth more is reserved: chunks' row counts vary a little, and a recycled chunk sized exactly for a
// smaller one would otherwise reallocate (and zero-fill fresh memory) again and again.
template <class T>
void size_for_rows(std::vector<T>& v, int64_t n) {
  const std::size_t want = static_cast<std::size_t>(n);
  if (v.capacity() < want) {
    v.clear();
    v.reserve(want + want / 8);
  }
  v.resize(want);
}

enum class FieldError : uint8_t { kNone, kNumber, kInteger, kAfterQuote, kUnterminated };

// Output column storage while a chunk is being filled; raw pointers so the per-field store is one write.
struct OutCol {
  Column* col = nullptr;
  float* f = nullptr;
  int64_t* i = nullptr;
  uint8_t* valid = nullptr;
};

}  // namespace

struct TextReader::Impl {
  std::vector<std::string> files;
  InputSchema schema;
  bool quotes = false;  // csv: quoted fields possible
  char delim = '\t';
  char quote = '"';
  bool skip_bad = false;
  std::size_t chunk_bytes = 4 << 20;
  std::size_t prefetch = 4;
  int64_t total_bytes = 0;
  std::vector<OutSpec> outs;
  std::vector<FilePlan> plans;

  std::mutex mu;
  std::condition_variable not_empty, not_full;
  std::deque<TextChunk> queue;
  std::vector<TextBytes> spare_texts;  // texts of parsed chunks, handed back by next() for reuse
  bool done = false, stop = false;
  std::exception_ptr error;
  std::thread worker;

  void validate_schema();
  FilePlan plan_for_schema_order() const;
  // The plan of a file with a header, read from src (the file at `path`, just opened).
  FilePlan read_header_plan(const std::string& path, std::unique_ptr<text::ByteSource> src) const;

  // Where cutting the input into chunks stands: the open file and the counts that number its chunks.
  struct Cursor {
    int file = -1;  // index of the open file (-1: none opened yet)
    std::unique_ptr<RecordBuffer> rb;
    int64_t line = 1, raw_reported = 0, global_row = 0, pending_raw = 0;
    bool need_header = false;
    std::size_t want = 0;
  } cur;
  // Plain input is cut by the callers of next() themselves (see next()); compressed input on `worker`.
  bool pull = true;
  const InputMaps* maps = nullptr;  // files mapped by the caller, or null
  std::vector<ChunkCut> cuts;        // recorded (pull: every file plain), or being replayed (replaying)
  bool replaying = false;
  std::size_t next_cut = 0;
  std::size_t handed = 0;  // chunks next() handed out (under mu): the next one's index
  std::vector<int> replay_fds;  // replaying: a descriptor per file not mapped (-1 for mapped ones)
  ~Impl() {
    for (int fd : replay_fds)
      if (fd >= 0) ::close(fd);
  }
  // Takes the next cut of a replay (under mu), false past the last.
  bool next_replay_cut(ChunkCut& k);
  // The text of cut k into `out` (without mu): a view of the mapping, or read into out's buffer.
  void replay_text(const ChunkCut& k, TextChunk& out) const;
  TextBytes carry;  // pull: the buffer that holds a partial record between chunks

  // The next chunk into `out`, false once every file is done. `into` (pull) is the caller's buffer: the
  // text is read into its memory. Without it, a buffer from spare_texts takes the partial record after
  // the chunk.
  bool produce_one(TextChunk& out, TextBytes* into);
  // The next chunk of the open file, false at its end.
  template <bool kQuotes>
  bool cut_chunk(TextChunk& out, TextBytes* into);
  void produce();
  bool push(TextChunk&& c);

  bool fast_path = true;  // TextReader::set_fast_path
  mutable std::atomic<int64_t> fast_chunks{0};

  // Sizes out's columns for `rows` rows (value arrays of the column's kind keep their contents) and
  // returns raw pointers to them; parse_chunk regrows through `oc` when a chunk holds more rows.
  void prepare_columns(Chunk& out, std::vector<OutCol>& oc) const;

  template <bool kQuotes>
  void parse_chunk(const std::vector<FilePlan>& fplans, const TextChunk& in, Chunk& out, BadRowStats& stats) const;
  template <bool kQuotes>
  bool parse_chunk_fast(const std::vector<FilePlan>& fplans, const TextChunk& in, Chunk& out) const;
  // Marks the values of `columns` (scalar schema columns that are read) left unconverted in `fplans`.
  void skip_in(std::vector<FilePlan>& fplans, const std::vector<std::string>& columns) const;
};

struct TextReader::ParsePlan {
  std::vector<FilePlan> files;  // per input file, as Impl::plans
};

void TextReader::Impl::validate_schema() {
  const InputFormat& f = schema.format;
  BW_CHECK(f.format == "tsv" || f.format == "csv", ConfigError, "input format must be tsv or csv, got '", f.format, "'");
  BW_CHECK(f.on_bad_rows == "error" || f.on_bad_rows == "skip", ConfigError,
           "input on_bad_rows must be error or skip, got '", f.on_bad_rows, "'");
  BW_CHECK(f.compression == "auto" || f.compression == "none" || f.compression == "gzip" || f.compression == "zstd",
           ConfigError, "input compression must be one of auto, none, gzip, zstd, got '", f.compression, "'");
  BW_CHECK(f.chunk_bytes >= 1, ConfigError, "input chunk_bytes must be at least 1, got ", f.chunk_bytes);
  BW_CHECK(f.delimiter != '\n' && f.delimiter != '\r', ConfigError, "input delimiter cannot be a line break");
  quotes = f.format == "csv";
  BW_CHECK(!quotes || (f.quote != f.delimiter && f.quote != '\n' && f.quote != '\r'), ConfigError,
           "input quote character must differ from the delimiter and from line breaks");
  BW_CHECK(!schema.columns.empty(), ConfigError, "input schema has no columns");
  delim = f.delimiter;
  quote = f.quote;
  skip_bad = f.on_bad_rows == "skip";
  chunk_bytes = static_cast<std::size_t>(f.chunk_bytes);
  for (std::size_t k = 0; k < schema.columns.size(); ++k) {
    const InputColumn& c = schema.columns[k];
    for (std::size_t j = 0; j < k; ++j)
      BW_CHECK(schema.columns[j].name != c.name, ConfigError, "input schema declares column '", c.name, "' twice");
    if (c.role == Role::kIgnore) continue;
    outs.push_back(OutSpec{c.name, c.role, column_kind(c.role)});
  }
}

FilePlan TextReader::Impl::plan_for_schema_order() const {
  FilePlan p;
  int out = 0;
  for (std::size_t k = 0; k < schema.columns.size(); ++k) {
    const InputColumn& c = schema.columns[k];
    FieldPlan fp;
    fp.kind = field_kind(c.role);
    fp.schema_col = static_cast<int>(k);
    fp.separator = c.separator;
    if (fp.kind != FieldKind::kSkip) fp.out = out++;
    p.fields.push_back(fp);
  }
  p.fast = fast_plan(p);
  return p;
}

FilePlan TextReader::Impl::read_header_plan(const std::string& path, std::unique_ptr<text::ByteSource> src) const {
  RecordBuffer rb(std::move(src));
  std::size_t want = 1 << 16;
  std::string_view header;
  for (;;) {
    rb.fill(want);
    std::size_t pos = 0;
    bool incomplete = false;
    while (pos < rb.size()) {
      int64_t nl = 0;
      const std::size_t e = quotes ? record_end<true>(rb.data(), pos, rb.size(), rb.eof(), delim, quote, nl)
                                   : record_end<false>(rb.data(), pos, rb.size(), rb.eof(), delim, quote, nl);
      if (e == kNpos) {
        incomplete = true;
        break;
      }
      if (!is_blank(rb.data(), pos, e)) {
        header = std::string_view(rb.data() + pos, e - pos);
        break;
      }
      pos = e;
    }
    if (!header.empty() || (!incomplete && rb.eof())) break;
    BW_CHECK(want < kMaxHeaderBytes, InputError, path, ": the header line does not end within the first ",
             kMaxHeaderBytes >> 20, " MiB; is this a ", schema.format.format, " file?");
    want *= 2;
  }
  // An empty file has no header and no rows; any plan will do.
  if (header.empty()) return plan_for_schema_order();

  const std::vector<std::string> names = split_record(header, quotes, delim, quote);
  FilePlan p;
  std::vector<int> seen(schema.columns.size(), -1);
  std::vector<int> out_of_schema(schema.columns.size(), -1);
  {
    int out = 0;
    for (std::size_t k = 0; k < schema.columns.size(); ++k)
      if (schema.columns[k].role != Role::kIgnore) out_of_schema[k] = out++;
  }
  for (std::size_t f = 0; f < names.size(); ++f) {
    const std::string& name = names[f];
    int col = -1;
    for (std::size_t k = 0; k < schema.columns.size(); ++k)
      if (schema.columns[k].name == name) col = static_cast<int>(k);
    BW_CHECK(col >= 0, InputError, path, ":1: header column '", name, "' (field ", f + 1, " of ", names.size(),
             ") is not in the schema; declare it (role: ignore to drop it)");
    BW_CHECK(seen[col] < 0, InputError, path, ":1: header names column '", name, "' twice (fields ", seen[col] + 1,
             " and ", f + 1, ")");
    seen[col] = static_cast<int>(f);
    const InputColumn& c = schema.columns[col];
    FieldPlan fp;
    fp.kind = field_kind(c.role);
    fp.schema_col = col;
    fp.separator = c.separator;
    fp.out = out_of_schema[col];
    p.fields.push_back(fp);
  }
  for (std::size_t k = 0; k < schema.columns.size(); ++k)
    BW_CHECK(seen[k] >= 0 || schema.columns[k].role == Role::kIgnore, InputError, path,
             ":1: header has no column '", schema.columns[k].name, "' (role ", role_name(schema.columns[k].role),
             ") that the schema needs; the header has ", names.size(), " columns");
  p.fast = fast_plan(p);
  return p;
}

bool TextReader::Impl::push(TextChunk&& c) {
  std::unique_lock lk(mu);
  not_full.wait(lk, [&] { return stop || queue.size() < prefetch; });
  if (stop) return false;
  queue.push_back(std::move(c));
  lk.unlock();
  not_empty.notify_one();
  return true;
}

template <bool kQuotes>
bool TextReader::Impl::cut_chunk(TextChunk& out, TextBytes* into) {
  RecordBuffer& rb = *cur.rb;
  if (into) carry = rb.adopt(std::move(*into));
  for (;;) {
    rb.fill(cur.want);
    if (cur.need_header) {
      // The header is the first non-blank record; blank lines before it still count as lines.
      std::size_t pos = 0;
      int64_t lines = 0;
      bool found = false;
      while (pos < rb.size()) {
        std::size_t e = record_end<kQuotes>(rb.data(), pos, rb.size(), rb.eof(), delim, quote, lines);
        if (e == kNpos) break;
        const bool blank = is_blank(rb.data(), pos, e);
        pos = e;
        if (!blank) {
          found = true;
          break;
        }
      }
      if (found) {
        rb.consume(pos);
        cur.line += lines;
        cur.need_header = false;
        continue;
      }
      if (rb.eof()) return false;
      cur.want = std::max(cur.want, rb.size()) * 2;
      continue;
    }
    ScanResult r = scan_records<kQuotes>(rb.data(), rb.size(), rb.eof(), delim, quote);
    if (r.lead > 0) {
      // Chunks start at a record so that first_line is the line of their first row.
      rb.consume(r.lead);
      cur.line += r.lead_lines;
      r.end -= r.lead;
    }
    if (r.end == 0) {
      // At end of data every byte left forms complete records, so nothing left means done.
      if (rb.eof()) return false;
      // Otherwise either blank lines were dropped (read on), or one record is longer than the chunk:
      // grow until it fits.
      if (r.lead == 0) cur.want = std::max(cur.want, rb.size()) * 2;
      continue;
    }
    TextBytes spare;
    if (into) {
      spare = std::move(carry);
    } else {
      std::lock_guard lk(mu);
      if (!spare_texts.empty()) {
        spare = std::move(spare_texts.back());
        spare_texts.pop_back();
      }
    }
    TextChunk c;
    if (pull) cuts.push_back(ChunkCut{cur.file, rb.offset(), r.end, cur.line, cur.global_row, r.records, 0});
    c.text = rb.take(r.end, std::move(spare));
    if (c.text.back() != '\n') c.text.push_back('\n');
    c.file_index = cur.file;
    c.first_line = cur.line;
    c.first_row = cur.global_row;
    c.records = r.records;
    cur.line += r.lines;
    cur.global_row += r.records;
    const int64_t raw = rb.raw_bytes();
    cur.pending_raw += raw - cur.raw_reported;
    cur.raw_reported = raw;
    cur.want = chunk_bytes;
    c.raw_bytes = cur.pending_raw;
    if (pull) cuts.back().raw_bytes = c.raw_bytes;
    cur.pending_raw = 0;
    out = std::move(c);
    return true;
  }
}

bool TextReader::Impl::next_replay_cut(ChunkCut& k) {
  if (next_cut == cuts.size()) return false;
  k = cuts[next_cut++];
  return true;
}

void TextReader::Impl::replay_text(const ChunkCut& k, TextChunk& out) const {
  const auto file = static_cast<std::size_t>(k.file_index);
  const InputMaps::View v = maps ? maps->view(file) : InputMaps::View{};
  if (v.data) {
    BW_ASSERT(k.offset + k.size <= v.size && k.size > 0, "replayed cut outside its mapping");
    out.text = TextBytes::borrow(v.data + k.offset, k.size);
  } else {
    // Read where it is parsed, outside the reader's lock: the copy out of the page cache no longer waits
    // for the other thread's, nor the other for it.
    if (out.text.borrowed()) out.text = TextBytes();
    out.text.resize(k.size);
    std::size_t got = 0;
    while (got < k.size) {
      const ssize_t r = ::pread(replay_fds[file], out.text.data() + got, k.size - got, static_cast<off_t>(k.offset + got));
      if (r < 0 && errno == EINTR) continue;
      BW_CHECK(r >= 0, IoError, "cannot read input file '", files[file], "': ", std::strerror(errno));
      BW_CHECK(r > 0, IoError, "input file '", files[file], "' shrank since the first pass read it (", k.offset + got,
               " bytes now, ", k.offset + k.size, " read then): another program rewrote or truncated it");
      got += static_cast<std::size_t>(r);
    }
  }
  if (out.text.back() != '\n') out.text.push_back('\n');  // as cut_chunk: a last record without one
  out.file_index = k.file_index;
  out.first_line = k.first_line;
  out.first_row = k.first_row;
  out.records = k.records;
  out.raw_bytes = k.raw_bytes;
}

bool TextReader::Impl::produce_one(TextChunk& out, TextBytes* into) {
  for (;;) {
    if (!cur.rb) {
      if (cur.file + 1 >= static_cast<int>(files.size())) return false;
      ++cur.file;
      const InputMaps::View mapped = maps ? maps->view(static_cast<std::size_t>(cur.file)) : InputMaps::View{};
      cur.rb = mapped.data ? std::make_unique<RecordBuffer>(mapped)
                           : std::make_unique<RecordBuffer>(text::open_byte_source(files[cur.file], schema.format.compression));
      cur.line = 1;
      cur.raw_reported = 0;
      cur.need_header = schema.format.header;
      cur.want = chunk_bytes;
    }
    if (quotes ? cut_chunk<true>(out, into) : cut_chunk<false>(out, into)) return true;
    if (into) *into = cur.rb->release();  // the caller's buffer serves the next file
    cur.pending_raw += cur.rb->raw_bytes() - cur.raw_reported;
    cur.rb.reset();
  }
}

void TextReader::Impl::produce() {
  try {
    TextChunk c;
    for (;;) {
      {
        std::lock_guard lk(mu);
        if (stop) break;
      }
      if (!produce_one(c, nullptr) || !push(std::move(c))) break;
    }
  } catch (...) {
    std::lock_guard lk(mu);
    error = std::current_exception();
  }
  {
    std::lock_guard lk(mu);
    done = true;
  }
  not_empty.notify_all();
}

void TextReader::Impl::prepare_columns(Chunk& out, std::vector<OutCol>& oc) const {
  const std::size_t ncols = outs.size();
  out.columns.resize(ncols);
  oc.assign(ncols, OutCol{});
  for (std::size_t k = 0; k < ncols; ++k) {
    Column& c = out.columns[k];
    c.name = outs[k].name;
    c.role = outs[k].role;
    c.kind = outs[k].kind;
    c.cardinality = 0;
    // The value arrays of the column's kind keep their size: every stored row writes each of its slots,
    // so zeroing them first (a reused chunk's ~5 MB per chunk) would only be overwritten.
    if (c.kind != ColumnKind::kFloat) c.f.clear();
    if (c.kind != ColumnKind::kInt) {
      c.i.clear();
      c.valid.clear();
    }
    c.offsets.clear();
    oc[k].col = &c;
  }
  out.split.clear();
  out.row_index.clear();
}

template <bool kQuotes>
void TextReader::Impl::parse_chunk(const std::vector<FilePlan>& fplans, const TextChunk& in, Chunk& out,
                                   BadRowStats& stats) const {
  BW_ASSERT(in.file_index >= 0 && static_cast<std::size_t>(in.file_index) < fplans.size(), "chunk of file ",
            in.file_index, " but the reader has ", fplans.size(), " files");
  const std::vector<FieldPlan>& plan = fplans[in.file_index].fields;
  const int nfields = static_cast<int>(plan.size());
  const char* s = in.text.data();
  const std::size_t n = in.text.size();

  std::vector<OutCol> oc;
  prepare_columns(out, oc);

  // Rows are written at index `row` straight into the column vectors, sized ahead from the record count
  // the producer found, and grown by doubling when a hand-made chunk has more.
  int64_t cap = 0;
  auto grow = [&](int64_t want) {
    cap = want;
    for (auto& o : oc) {
      Column& c = *o.col;
      switch (c.kind) {
        case ColumnKind::kFloat:
          c.f.resize(cap);
          o.f = c.f.data();
          break;
        case ColumnKind::kInt:
          c.i.resize(cap);
          c.valid.resize(cap);
          o.i = c.i.data();
          o.valid = c.valid.data();
          break;
        case ColumnKind::kList: c.offsets.resize(cap + 1); break;
      }
    }
  };
  grow(std::max<int64_t>(in.records, 16));
  for (auto& o : oc)
    if (o.col->kind == ColumnKind::kList) o.col->offsets[0] = 0;

  const std::string& file = files[in.file_index];
  int64_t line = in.first_line;
  int64_t row = 0;      // rows stored
  int64_t records = 0;  // records seen, bad ones included
  int64_t first_stored_line = 0;
  bool tracking = false;  // row_index in use (a row was skipped)
  std::string scratch;    // unescaped quoted field ("" inside)

  SeparatorScan<kQuotes> scan(s, n, delim, quote);
  scan.seek(0);
  std::size_t pos = 0;
  while (pos < n) {
    if (row == cap) grow(cap * 2);
    const int64_t rec_line = line;
    std::size_t fstart = pos;
    int field = 0;
    FieldError err = FieldError::kNone;
    int err_field = 0;
    std::string err_text;  // copied: the bytes may live in `scratch`, which a later field reuses
    auto fail = [&](FieldError e, int f, const char* b, const char* end) {
      if (err != FieldError::kNone) return;
      err = e;
      err_field = f;
      err_text = quote_for_message(b, end);
    };
    bool blank = false;
    for (;;) {
      std::size_t sp = scan.next();
      char c = sp < n ? s[sp] : '\n';
      const char* vb = s + fstart;
      const char* ve = s + sp;
      bool quoted = false;
      if constexpr (kQuotes) {
        if (c == quote) {
          // A quote inside an unquoted field is an ordinary byte.
          if (sp != fstart) continue;
          quoted = true;
          std::size_t i = sp + 1;
          bool escaped = false;
          bool closed = false;
          for (;;) {
            const char* q = static_cast<const char*>(std::memchr(s + i, quote, n - i));
            if (!q) break;
            const std::size_t qpos = static_cast<std::size_t>(q - s);
            line += count_newlines(s + i, q);
            if (qpos + 1 < n && s[qpos + 1] == quote) {
              if (!escaped) scratch.clear();
              scratch.append(s + i, qpos + 1 - i);
              escaped = true;
              i = qpos + 2;
              continue;
            }
            if (escaped) scratch.append(s + i, qpos - i);
            ve = q;
            i = qpos + 1;
            closed = true;
            break;
          }
          if (!closed) {
            line += count_newlines(s + i, s + n);
            fail(FieldError::kUnterminated, field, s, s);
            if (escaped) scratch.append(s + i, n - i);
            ve = s + n;
            i = n;
          }
          vb = s + sp + 1;
          if (escaped) {
            vb = scratch.data();
            ve = scratch.data() + scratch.size();
          }
          // The field must end right after its closing quote; text up to the next separator is an error.
          scan.seek(i);
          for (;;) {
            sp = scan.next();
            c = sp < n ? s[sp] : '\n';
            if (c != quote) break;
          }
          const bool clean = sp == i || (c == '\n' && sp == i + 1 && s[i] == '\r');
          if (!clean) fail(FieldError::kAfterQuote, field, s + i, s + sp);
        }
      }
      if (!quoted && c == '\n' && ve > vb && ve[-1] == '\r') --ve;
      if (field < nfields) {
        const FieldPlan& fp = plan[field];
        switch (fp.kind) {
          case FieldKind::kSkip: break;
          case FieldKind::kFloat: {
            float v = kMissingFloat;
            if (vb != ve && !text::parse_float_digits(vb, ve, v) && !text::parse_float(vb, ve, v))
              fail(FieldError::kNumber, field, vb, ve);
            oc[fp.out].f[row] = v;
            break;
          }
          case FieldKind::kHash: {
            const OutCol& o = oc[fp.out];
            const bool present = vb != ve;
            o.i[row] = present ? value_key(vb, ve) : 0;
            o.valid[row] = present;
            break;
          }
          case FieldKind::kList: {
            Column& col = *oc[fp.out].col;
            const char* p = vb;
            while (p < ve) {
              const char* q = static_cast<const char*>(std::memchr(p, fp.separator, ve - p));
              if (!q) q = ve;
              // Empty parts ("a||b", a trailing separator) are not values.
              if (q != p) col.i.push_back(value_key(p, q));
              p = q + 1;
            }
            col.offsets[row + 1] = static_cast<int64_t>(col.i.size());
            break;
          }
          case FieldKind::kInt: {
            const OutCol& o = oc[fp.out];
            int64_t v = 0;
            bool present = vb != ve;
            if (present && !text::parse_int64(vb, ve, v)) {
              present = false;
              fail(FieldError::kInteger, field, vb, ve);
            }
            o.i[row] = v;
            o.valid[row] = present;
            break;
          }
          case FieldKind::kId: {
            const OutCol& o = oc[fp.out];
            int64_t v = 0;
            const bool present = vb != ve;
            if (present && !text::parse_int64(vb, ve, v))
              v = hash_field(vb, ve);
            o.i[row] = v;
            o.valid[row] = present;
            break;
          }
        }
      }
      ++field;
      if (c == '\n') {
        pos = sp + 1;
        ++line;
        blank = field == 1 && !quoted && vb == ve;
        break;
      }
      fstart = sp + 1;
    }
    if (blank) continue;
    ++records;
    std::string message;
    if (field != nfields) {
      message = str_cat(file, ":", rec_line, ": expected ", nfields, " fields, got ", field);
    } else if (err != FieldError::kNone) {
      const FieldPlan& fp = plan[err_field];
      std::string col = fp.schema_col >= 0 ? schema.columns[fp.schema_col].name : std::string("?");
      std::string where = str_cat(file, ":", rec_line, ": column '", col, "' (field ", err_field + 1, " of ", nfields, "): ");
      switch (err) {
        case FieldError::kNumber:
          message = where + "expected a number, got '" + err_text + "'";
          break;
        case FieldError::kInteger:
          message = where + "expected an integer, got '" + err_text + "'";
          break;
        case FieldError::kAfterQuote:
          message = where + "expected a delimiter after the closing quote, got '" + err_text + "'";
          break;
        case FieldError::kUnterminated: message = where + "quoted field is not closed before the end of the file"; break;
        case FieldError::kNone: break;
      }
    }
    if (!message.empty()) {
      if (!skip_bad) throw InputError(message);
      ++stats.skipped;
      const int64_t global = in.first_row + records - 1;
      if (stats.first_error_row < 0 || global < stats.first_error_row) {
        stats.first_error = std::move(message);
        stats.first_error_row = global;
      }
      // Undo the list values this row appended; scalar slots are simply overwritten by the next row.
      for (auto& o : oc)
        if (o.col->kind == ColumnKind::kList) o.col->i.resize(o.col->offsets[row]);
      if (!tracking) {
        tracking = true;
        out.row_index.resize(row);
        for (int64_t r = 0; r < row; ++r) out.row_index[r] = in.first_row + r;
      }
      continue;
    }
    if (tracking) out.row_index.push_back(in.first_row + records - 1);
    if (row == 0) first_stored_line = rec_line;
    ++row;
  }

  for (auto& o : oc) {
    Column& c = *o.col;
    switch (c.kind) {
      case ColumnKind::kFloat: c.f.resize(row); break;
      case ColumnKind::kInt:
        c.i.resize(row);
        c.valid.resize(row);
        break;
      case ColumnKind::kList: c.offsets.resize(row + 1); break;
    }
  }
  out.rows = row;
  out.first_row = in.first_row;
  out.file_index = in.file_index;
  out.first_line = row > 0 ? first_stored_line : in.first_line;
  out.text_bytes = static_cast<int64_t>(in.text.size());
}

// The common case, in loops with no per-field switch: text without quotes (or csv whose chunk holds no
// quote character), every record with exactly the plan's field count, no CRLF, every number well formed,
// no list fields. The text is taken in regions of kRegionBytes: every separator offset of the region is
// listed first (64 bytes per SSE2 mask, all set bits written out), the complete records among them are
// checked (field count, '\n' at the end, no '\r'), and then each column of those records is converted in
// its own loop: the kind is fixed, the iterations independent (the hashes of one column overlap in the
// pipeline), and the common values (missing, 1-8 plain digits, 8-byte strings) go without data-dependent
// branches. Returns false, with `out` in an unspecified state, as soon as anything is unusual (a blank
// line, a bad field count, '\r' before '\n', a quote, a value that does not parse): the caller then
// parses the chunk with parse_chunk, which gives the usual rows, errors and line numbers. Accepted
// chunks give exactly what parse_chunk gives (tests/prep/reader_test.cpp compares them).
template <bool kQuotes>
bool TextReader::Impl::parse_chunk_fast(const std::vector<FilePlan>& fplans, const TextChunk& in, Chunk& out) const {
  const FilePlan& fplan = fplans[in.file_index];
  const std::size_t n = in.text.size();
  if (!fplan.fast || in.records <= 0 || n == 0 || n >= std::numeric_limits<uint32_t>::max() - 64) return false;
  const std::vector<FieldPlan>& plan = fplan.fields;
  const std::size_t nf = plan.size();
  const char* s = in.text.data();
  const char* const end = s + n;
  if (end[-1] != '\n') return false;

  std::vector<OutCol> oc;
  prepare_columns(out, oc);
  const int64_t rows = in.records;
  for (auto& o : oc) {
    Column& c = *o.col;
    if (c.kind == ColumnKind::kFloat) {
      size_for_rows(c.f, rows);
      o.f = c.f.data();
    } else {
      size_for_rows(c.i, rows);
      size_for_rows(c.valid, rows);
      o.i = c.i.data();
      o.valid = c.valid.data();
    }
  }

  constexpr std::size_t kRegionBytes = 16 << 10;  // region text and its offsets stay in L1
  // P[0] is the offset of the '\n' that ends the previous record (2^32 - 1 before the first: offsets
  // are uint32_t, computed modulo 2^32), P[1..k) the separators found after it. Field f of the j-th
  // complete record is [P[j * nf + f] + 1, P[j * nf + f + 1]).
  std::vector<uint32_t> P(kRegionBytes + 2 * 64 + nf + 1);
  P[0] = ~uint32_t{0};
  std::size_t k = 1;
  const text::ScanSeparatorsFn scan_separators = text::scan_separators_for(simd_level());
  const text::DigitsRunFn digits_run = text::digits_run_for(simd_level());
  const text::Key8RunFn key8_run = text::key8_run_for(simd_level());
  std::size_t blk = 0;
  int64_t row = 0;
  std::size_t newlines = 0;
  while (blk < n) {
    const std::size_t target = std::min(n, blk + kRegionBytes);
    const std::size_t room = (target - blk + 63) / 64 * 64 + text::kScanSlack;
    if (k + room > P.size()) P.resize(2 * (k + room));  // records longer than a region
    const text::ScanResult sr =
        scan_separators(s, n, blk, target, delim, kQuotes ? static_cast<unsigned char>(quote) : -1, P.data() + k);
    if (sr.quote) return false;  // quoted fields: the general loop
    newlines += sr.newlines;
    k += sr.count;
    blk = (target + 63) / 64 * 64;
    // The complete records among the offsets: each has nf separators, the last a '\n' without '\r'
    // before it (not a blank line). That the others are delimiters is checked once for the chunk: it
    // holds exactly one '\n' per record (and no quote).
    const std::size_t rec = (k - 1) / nf;
    std::size_t j = 0;
    for (std::size_t r = 0; r < rec; ++r, j += nf) {
      const uint32_t last = P[j + nf];
      if (s[last] != '\n' || last == static_cast<uint32_t>(P[j] + 1u) || s[last - 1] == '\r') return false;
    }
    const std::size_t br = rec;
    if (row + static_cast<int64_t>(br) > rows) return false;
    for (std::size_t f = 0; f < nf; ++f) {
      const FieldPlan& fp = plan[f];
      if (fp.kind == FieldKind::kSkip) continue;
      const OutCol& o = oc[fp.out];
      const uint32_t* ef = P.data() + f;
      switch (fp.kind) {
        case FieldKind::kFloat: {
          float* dst = o.f + row;
          // The common values in digits_run; each other value here, then the run resumes after it.
          for (std::size_t r = digits_run(s, n, ef, nf, 0, br, dst); r < br; r = digits_run(s, n, ef, nf, r + 1, br, dst)) {
            const char* vb = s + static_cast<uint32_t>(ef[r * nf] + 1u);
            const char* ve = s + ef[r * nf + 1];
            float v = kMissingFloat;
            if (vb != ve && !text::parse_float_digits(vb, ve, v) && !text::parse_float(vb, ve, v)) return false;
            dst[r] = v;
          }
          break;
        }
        case FieldKind::kHash: {
          int64_t* dst = o.i + row;
          uint8_t* valid = o.valid + row;
          // The common values in key8_run; each other value here, then the run resumes after it.
          for (std::size_t r = key8_run(s, n, ef, nf, 0, br, dst, valid); r < br;
               r = key8_run(s, n, ef, nf, r + 1, br, dst, valid)) {
            const char* vb = s + static_cast<uint32_t>(ef[r * nf] + 1u);
            const char* ve = s + ef[r * nf + 1];
            dst[r] = vb != ve ? value_key(vb, ve) : 0;
            valid[r] = vb != ve;
          }
          break;
        }
        case FieldKind::kInt: {
          int64_t* dst = o.i + row;
          uint8_t* valid = o.valid + row;
          for (std::size_t r = 0; r < br; ++r, ef += nf) {
            const char* vb = s + static_cast<uint32_t>(ef[0] + 1u);
            const char* ve = s + ef[1];
            int64_t v = 0;
            const bool present = vb != ve;
            if (present && !text::parse_int64(vb, ve, v)) return false;
            dst[r] = v;
            valid[r] = present;
          }
          break;
        }
        case FieldKind::kId: {
          int64_t* dst = o.i + row;
          uint8_t* valid = o.valid + row;
          for (std::size_t r = 0; r < br; ++r, ef += nf) {
            const char* vb = s + static_cast<uint32_t>(ef[0] + 1u);
            const char* ve = s + ef[1];
            int64_t v = 0;
            const bool present = vb != ve;
            if (present && !text::parse_int64(vb, ve, v)) v = hash_field(vb, ve);
            dst[r] = v;
            valid[r] = present;
          }
          break;
        }
        case FieldKind::kSkip:
        case FieldKind::kList: return false;
      }
    }
    row += static_cast<int64_t>(br);
    // The separators of a record not yet complete move to the front, after the '\n' before them.
    std::copy(P.begin() + static_cast<std::ptrdiff_t>(j), P.begin() + static_cast<std::ptrdiff_t>(k), P.begin());
    k -= j;
  }
  // Every separator belongs to a complete record (the text ends with '\n'), and each record holds one
  // '\n' only.
  if (k != 1 || row != rows || newlines != static_cast<std::size_t>(rows)) return false;
  out.rows = row;
  out.first_row = in.first_row;
  out.file_index = in.file_index;
  out.first_line = in.first_line;
  out.text_bytes = static_cast<int64_t>(n);
  return true;
}

TextReader::TextReader(std::vector<std::string> files, InputSchema schema, int prefetch_chunks, const InputMaps* maps)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  BW_ASSERT(!maps || maps->files() == files, "TextReader: the maps were made for other files");
  m.maps = maps;
  m.files = std::move(files);
  m.schema = std::move(schema);
  m.prefetch = static_cast<std::size_t>(std::max(1, prefetch_chunks));
  m.validate_schema();
  BW_CHECK(m.files.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()), ConfigError,
           "too many input files: ", m.files.size());
  for (const auto& path : m.files) {
    // Opening checks readability now rather than after hours of streaming the files before it.
    std::unique_ptr<text::ByteSource> src = text::open_byte_source(path, m.schema.format.compression);
    if (src->compression() != text::Compression::kNone) m.pull = false;
    m.plans.push_back(m.schema.format.header ? m.read_header_plan(path, std::move(src)) : m.plan_for_schema_order());
    m.total_bytes += file_size(path);
  }
  if (!m.pull) m.worker = std::thread([&m] { m.produce(); });
}

TextReader::~TextReader() {
  {
    std::lock_guard lk(impl_->mu);
    impl_->stop = true;
  }
  impl_->not_full.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

bool TextReader::next(TextChunk& out) {
  Impl& m = *impl_;
  if (m.pull) {
    // The caller reads the next chunk itself, into the memory of the text it parsed last: the text is
    // then read where it is parsed, and the buffer rewritten by the core that last read it (a reader
    // thread's copy moved every chunk between cores, slow when the vCPUs of the VMs prep runs on sit on
    // different core complexes). Plain files are read faster than they are parsed, so callers seldom
    // wait for each other here.
    if (m.replaying) {
      ChunkCut k;
      std::size_t index = 0;
      {
        std::lock_guard lk(m.mu);
        if (m.error) std::rethrow_exception(m.error);
        if (m.done) return false;
        if (!m.next_replay_cut(k)) {
          m.done = true;
          return false;
        }
        index = m.handed++;
      }
      try {
        m.replay_text(k, out);
        out.index = index;
        if (m.maps) m.maps->check_all();
      } catch (...) {
        std::lock_guard lk(m.mu);
        if (!m.error) m.error = std::current_exception();
        throw;
      }
      return true;
    }
    std::lock_guard lk(m.mu);
    if (m.error) std::rethrow_exception(m.error);
    if (m.done) return false;
    TextBytes mine = std::move(out.text);
    try {
      const bool got = m.produce_one(out, &mine);
      if (m.maps) m.maps->check_all();
      if (got) {
        out.index = m.handed++;
        return true;
      }
    } catch (...) {
      m.error = std::current_exception();
      throw;
    }
    m.done = true;
    return false;
  }
  std::unique_lock lk(m.mu);
  m.not_empty.wait(lk, [&] { return !m.queue.empty() || m.done; });
  if (!m.queue.empty()) {
    // The caller is done with the text it got last time (the usual loop reuses one TextChunk).
    if (out.text.capacity() > 0 && !out.text.borrowed() && m.spare_texts.size() < m.prefetch + 2)
      m.spare_texts.push_back(std::move(out.text));
    out = std::move(m.queue.front());
    m.queue.pop_front();
    out.index = m.handed++;
    lk.unlock();
    m.not_full.notify_one();
    return true;
  }
  if (m.error) std::rethrow_exception(m.error);
  return false;
}

void TextReader::parse(const TextChunk& in, Chunk& out, BadRowStats& stats, const ParsePlan* plan) const {
  const Impl& m = *impl_;
  const std::vector<FilePlan>& fplans = plan ? plan->files : m.plans;
  BW_ASSERT(in.file_index >= 0 && static_cast<std::size_t>(in.file_index) < fplans.size(), "chunk of file ",
            in.file_index, " but the reader has ", fplans.size(), " files");
  const auto file = static_cast<std::size_t>(in.file_index);
  try {
    if (m.quotes) {
      if (m.fast_path && m.parse_chunk_fast<true>(fplans, in, out)) m.fast_chunks.fetch_add(1, std::memory_order_relaxed);
      else m.parse_chunk<true>(fplans, in, out, stats);
    } else {
      if (m.fast_path && m.parse_chunk_fast<false>(fplans, in, out)) m.fast_chunks.fetch_add(1, std::memory_order_relaxed);
      else m.parse_chunk<false>(fplans, in, out, stats);
    }
  } catch (const Error&) {
    // Zero pages where a shrunk file's text was read as fields: the file's change is the error to report.
    if (m.maps) m.maps->check(file);
    throw;
  }
  if (m.maps) m.maps->check(file);
}

std::shared_ptr<const TextReader::ParsePlan> TextReader::plan_skipping(const std::vector<std::string>& columns) const {
  const Impl& m = *impl_;
  auto plan = std::make_shared<ParsePlan>();
  plan->files = m.plans;
  m.skip_in(plan->files, columns);
  return plan;
}

std::optional<std::vector<ChunkCut>> TextReader::cuts() const {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  if (!m.pull || !m.done || m.replaying) return std::nullopt;
  return m.cuts;
}

void TextReader::replay(std::vector<ChunkCut> cuts) {
  Impl& m = *impl_;
  BW_ASSERT(m.pull, "TextReader::replay of compressed input");
  std::lock_guard lk(m.mu);
  BW_ASSERT(m.cur.file < 0 && !m.done, "TextReader::replay after next()");
  m.replay_fds.assign(m.files.size(), -1);
  for (std::size_t i = 0; i < m.files.size(); ++i) {
    if (m.maps && m.maps->view(i).data) continue;
    m.replay_fds[i] = ::open(m.files[i].c_str(), O_RDONLY | O_CLOEXEC);
    BW_CHECK(m.replay_fds[i] >= 0, IoError, "cannot open input file '", m.files[i], "': ", std::strerror(errno));
  }
  m.cuts = std::move(cuts);
  m.replaying = true;
}

void TextReader::skip_values(const std::vector<std::string>& columns) {
  Impl& m = *impl_;
  m.skip_in(m.plans, columns);
}

void TextReader::Impl::skip_in(std::vector<FilePlan>& fplans, const std::vector<std::string>& columns) const {
  BW_CHECK(!skip_bad || columns.empty(), ConfigError,
           "input: values can be left unparsed only with on_bad_rows: error (skipping bad rows checks every field)");
  for (const std::string& name : columns) {
    int k = -1;
    for (std::size_t j = 0; j < schema.columns.size(); ++j)
      if (schema.columns[j].name == name) k = static_cast<int>(j);
    BW_CHECK(k >= 0, ConfigError, "input: cannot skip the values of '", name, "': no such schema column");
    const Role role = schema.columns[k].role;
    BW_CHECK(role != Role::kIgnore && column_kind(role) != ColumnKind::kList, ConfigError, "input: cannot skip the values of '",
             name, "' (role ", role_name(role), "): only scalar columns that are read");
    for (FilePlan& p : fplans)
      for (FieldPlan& f : p.fields)
        if (f.schema_col == k) f.kind = FieldKind::kSkip;  // its output column stays, sized and unwritten
  }
}

TextBytes::TextBytes(TextBytes&& o) noexcept
    : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)), cap_(std::exchange(o.cap_, 0)), pages_(o.pages_) {}

TextBytes& TextBytes::operator=(TextBytes o) noexcept {
  std::swap(p_, o.p_);
  std::swap(n_, o.n_);
  std::swap(cap_, o.cap_);
  std::swap(pages_, o.pages_);
  return *this;
}

TextBytes::~TextBytes() {
  if (!borrowed()) free_zeroed(p_, cap_, static_cast<Pages>(pages_));
}

TextBytes TextBytes::borrow(const char* p, std::size_t n) {
  TextBytes t;
  t.p_ = const_cast<char*>(p);  // never written through: every change of size copies first
  t.n_ = t.cap_ = n;
  t.pages_ = kBorrowed;
  return t;
}

void TextBytes::reserve(std::size_t cap) {
  if (cap <= cap_ && !borrowed()) return;
  cap = std::max(cap, n_);
  if (cap == 0) {  // an empty borrowed view becomes an empty owned array
    *this = TextBytes();
    return;
  }
  // Big buffers round up to whole pages (what their mapping takes anyway).
  constexpr std::size_t kPage = 4096;
  if (cap >= kHugeThreshold) cap = (cap + kPage - 1) & ~(kPage - 1);
  Pages pages = Pages::kSmall;  // text is written and read in order
  char* p = static_cast<char*>(alloc_zeroed(cap, pages));
  if (n_) std::memcpy(p, p_, n_);
  if (!borrowed()) free_zeroed(p_, cap_, static_cast<Pages>(pages_));
  p_ = p;
  cap_ = cap;
  pages_ = static_cast<unsigned char>(pages);
}

void TextBytes::assign(std::string_view s) {
  n_ = 0;
  resize(s.size());
  if (!s.empty()) std::memcpy(p_, s.data(), s.size());
}

int64_t TextReader::fast_path_chunks() const { return impl_->fast_chunks.load(); }

void TextReader::set_fast_path(bool enabled) { impl_->fast_path = enabled; }

int64_t TextReader::total_bytes() const { return impl_->total_bytes; }
const InputSchema& TextReader::schema() const { return impl_->schema; }
const std::vector<std::string>& TextReader::files() const { return impl_->files; }

}  // namespace bluewhale
