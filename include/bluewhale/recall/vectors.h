// Vector collections and their file formats, the inputs of the recall indexes.
//
// Formats (all little-endian):
//   fvecs  each record: int32 dim | dim float32      (TEXMEX / SIFT convention)
//   ivecs  each record: int32 dim | dim int32        (ground-truth neighbour lists)
//   bvecs  each record: int32 dim | dim uint8        (read as float)
//   raw    a bare row-major float32 matrix; the dimension comes from the caller
//   tsv    one vector per line: item id, TAB, then the values separated by TABs, commas or spaces
// Every reader checks the whole file before returning and throws InputError naming the file and the
// record (or line and field) that is wrong: a dimension that changes, a truncated record, a bad number.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bluewhale/core/io.h"

namespace bluewhale {

// Largest dimension any reader or index accepts; bounds allocations driven by file headers.
inline constexpr int64_t kMaxVectorDim = 1 << 16;

// A dense (rows, dim) float32 matrix with optional 64-bit item ids (one per row; empty means the ids are
// the row numbers 0..rows-1). Owns its storage.
struct Vectors {
  int64_t rows = 0;
  int64_t dim = 0;
  std::vector<float> data;   // (rows, dim), row-major
  std::vector<int64_t> ids;  // (rows) or empty

  const float* row(int64_t i) const { return data.data() + i * dim; }
};

// A dense (rows, dim) int32 matrix, e.g. ground truth: row q holds the ids of query q's nearest neighbours.
struct IntVectors {
  int64_t rows = 0;
  int64_t dim = 0;
  std::vector<int32_t> data;  // (rows, dim), row-major

  const int32_t* row(int64_t i) const { return data.data() + i * dim; }
};

Vectors read_fvecs(const fs::path& path);
Vectors read_bvecs(const fs::path& path);
IntVectors read_ivecs(const fs::path& path);
// A raw float32 matrix of the given dimension; the file size must be a multiple of dim * 4.
Vectors read_raw_f32(const fs::path& path, int64_t dim);
// TSV of "id<TAB>v1<TAB>v2..." (values may also be separated by commas or spaces). Blank lines and lines
// starting with '#' are skipped. Ids are signed 64-bit integers and must be unique.
Vectors read_tsv_vectors(const fs::path& path);

// Dispatches on `format` (fvecs | bvecs | raw | tsv | auto); auto picks by extension (.fvecs, .bvecs,
// .tsv/.txt, .f32/.bin/.raw). `dim` is needed only for raw files.
Vectors read_vectors(const fs::path& path, std::string_view format = "auto", int64_t dim = 0);

// Writers (atomic: temp file + rename). write_fvecs ignores ids.
void write_fvecs(const fs::path& path, const Vectors& v);
void write_ivecs(const fs::path& path, const IntVectors& v);

// Throws InputError "<what>: row R, component C is NaN/inf" for the first non-finite value.
void check_finite(const float* data, int64_t rows, int64_t dim, std::string_view what);

}  // namespace bluewhale
