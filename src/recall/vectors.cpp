#include "bluewhale/recall/vectors.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "bluewhale/core/error.h"

namespace bluewhale {
namespace {

// Reads "int32 dim | dim elements" records, checking every header. Elem is the on-disk element type.
template <class Elem, class Out>
void read_xvecs(const fs::path& path, std::string_view kind, int64_t& rows, int64_t& dim, std::vector<Out>& out) {
  MappedFile map(path);
  const uint8_t* p = map.data();
  const std::size_t size = map.size();
  BW_CHECK(size >= 4, InputError, path.string(), ": empty or truncated ", kind, " file (", size,
           " bytes; expected records of int32 dim + values)");
  int32_t d0;
  std::memcpy(&d0, p, 4);
  BW_CHECK(d0 > 0 && d0 <= kMaxVectorDim, InputError, path.string(), ": record 0 has dimension ", d0,
           ", expected 1..", kMaxVectorDim, " (is this really a ", kind, " file?)");
  const std::size_t rec = 4 + std::size_t(d0) * sizeof(Elem);
  BW_CHECK(size % rec == 0, InputError, path.string(), ": size ", size, " is not a whole number of ", kind,
           " records of dimension ", d0, " (", rec, " bytes each); record ", size / rec, " is truncated");
  rows = int64_t(size / rec);
  dim = d0;
  out.resize(std::size_t(rows) * std::size_t(dim));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* rp = p + std::size_t(r) * rec;
    int32_t d;
    std::memcpy(&d, rp, 4);
    BW_CHECK(d == d0, InputError, path.string(), ": record ", r, " has dimension ", d, ", expected ", d0,
             " (the dimension of record 0)");
    if constexpr (std::is_same_v<Elem, Out>) {
      std::memcpy(out.data() + r * dim, rp + 4, std::size_t(dim) * sizeof(Elem));
    } else {
      for (int64_t j = 0; j < dim; ++j) out[r * dim + j] = static_cast<Out>(rp[4 + j]);
    }
  }
}

bool is_sep(char c) { return c == '\t' || c == ',' || c == ' ' || c == '\r'; }

}  // namespace

Vectors read_fvecs(const fs::path& path) {
  Vectors v;
  read_xvecs<float>(path, "fvecs", v.rows, v.dim, v.data);
  return v;
}

Vectors read_bvecs(const fs::path& path) {
  Vectors v;
  read_xvecs<uint8_t>(path, "bvecs", v.rows, v.dim, v.data);
  return v;
}

IntVectors read_ivecs(const fs::path& path) {
  IntVectors v;
  read_xvecs<int32_t>(path, "ivecs", v.rows, v.dim, v.data);
  return v;
}

Vectors read_raw_f32(const fs::path& path, int64_t dim) {
  BW_CHECK(dim > 0 && dim <= kMaxVectorDim, ConfigError, path.string(), ": a raw float32 matrix needs a dimension in 1..",
           kMaxVectorDim, ", got ", dim);
  MappedFile map(path);
  const std::size_t rec = std::size_t(dim) * 4;
  BW_CHECK(map.size() % rec == 0, InputError, path.string(), ": size ", map.size(),
           " is not a multiple of dim * 4 = ", rec, " bytes (raw float32 rows of dimension ", dim, ")");
  Vectors v;
  v.dim = dim;
  v.rows = int64_t(map.size() / rec);
  v.data.resize(map.size() / 4);
  if (map.size()) std::memcpy(v.data.data(), map.data(), map.size());
  return v;
}

Vectors read_tsv_vectors(const fs::path& path) {
  const std::string text = read_file(path);
  Vectors v;
  std::unordered_set<int64_t> seen;
  std::size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    const std::size_t tab = line.find('\t');
    BW_CHECK(tab != std::string_view::npos, InputError, path.string(), " line ", line_no,
             ": expected 'id<TAB>values', found no TAB");
    int64_t id = 0;
    auto [ip, iec] = std::from_chars(line.data(), line.data() + tab, id);
    BW_CHECK(iec == std::errc() && ip == line.data() + tab, InputError, path.string(), " line ", line_no,
             ": field 1 (id) must be a 64-bit integer, got '", line.substr(0, tab), "'");
    BW_CHECK(seen.insert(id).second, InputError, path.string(), " line ", line_no, ": duplicate id ", id);
    int64_t d = 0;
    std::size_t i = tab + 1;
    while (i < line.size()) {
      while (i < line.size() && is_sep(line[i])) ++i;
      if (i >= line.size()) break;
      std::size_t j = i;
      while (j < line.size() && !is_sep(line[j])) ++j;
      float x = 0;
      auto [fp, fec] = std::from_chars(line.data() + i, line.data() + j, x);
      BW_CHECK(fec == std::errc() && fp == line.data() + j, InputError, path.string(), " line ", line_no,
               ": value ", d + 1, " must be a float, got '", line.substr(i, j - i), "'");
      BW_CHECK(std::isfinite(x), InputError, path.string(), " line ", line_no, ": value ", d + 1, " is not finite");
      v.data.push_back(x);
      ++d;
      i = j;
    }
    BW_CHECK(d > 0, InputError, path.string(), " line ", line_no, ": id ", id, " has no values");
    if (v.rows == 0) {
      BW_CHECK(d <= kMaxVectorDim, InputError, path.string(), " line ", line_no, ": dimension ", d, " above ",
               kMaxVectorDim);
      v.dim = d;
    }
    BW_CHECK(d == v.dim, InputError, path.string(), " line ", line_no, ": ", d, " values, expected ", v.dim,
             " (the dimension of the first vector)");
    v.ids.push_back(id);
    ++v.rows;
  }
  return v;
}

Vectors read_vectors(const fs::path& path, std::string_view format, int64_t dim) {
  std::string f(format);
  if (f == "auto") {
    const std::string ext = path.extension().string();
    if (ext == ".fvecs") f = "fvecs";
    else if (ext == ".bvecs") f = "bvecs";
    else if (ext == ".tsv" || ext == ".txt") f = "tsv";
    else if (ext == ".f32" || ext == ".bin" || ext == ".raw") f = "raw";
    else
      BW_THROW(ConfigError, path.string(), ": cannot tell the vector format from the extension '", ext,
               "'; name it .fvecs/.bvecs/.tsv/.f32 or pass the format (fvecs | bvecs | raw | tsv)");
  }
  Vectors v;
  if (f == "fvecs") v = read_fvecs(path);
  else if (f == "bvecs") v = read_bvecs(path);
  else if (f == "tsv") v = read_tsv_vectors(path);
  else if (f == "raw") v = read_raw_f32(path, dim);
  else BW_THROW(ConfigError, "unknown vector format '", f, "'; expected fvecs | bvecs | raw | tsv | auto");
  check_finite(v.data.data(), v.rows, v.dim, path.string());
  return v;
}

void write_fvecs(const fs::path& path, const Vectors& v) {
  std::string bytes;
  bytes.reserve(std::size_t(v.rows) * (4 + std::size_t(v.dim) * 4));
  const int32_t d = static_cast<int32_t>(v.dim);
  for (int64_t r = 0; r < v.rows; ++r) {
    bytes.append(reinterpret_cast<const char*>(&d), 4);
    bytes.append(reinterpret_cast<const char*>(v.row(r)), std::size_t(v.dim) * 4);
  }
  write_file_atomic(path, bytes);
}

void write_ivecs(const fs::path& path, const IntVectors& v) {
  std::string bytes;
  const int32_t d = static_cast<int32_t>(v.dim);
  for (int64_t r = 0; r < v.rows; ++r) {
    bytes.append(reinterpret_cast<const char*>(&d), 4);
    bytes.append(reinterpret_cast<const char*>(v.row(r)), std::size_t(v.dim) * 4);
  }
  write_file_atomic(path, bytes);
}

void check_finite(const float* data, int64_t rows, int64_t dim, std::string_view what) {
  for (int64_t i = 0; i < rows * dim; ++i) {
    if (!std::isfinite(data[i]))
      BW_THROW(InputError, what, ": row ", i / dim, ", component ", i % dim, " is ",
               std::isnan(data[i]) ? "NaN" : "infinite", "; vectors must be finite");
  }
}

}  // namespace bluewhale
