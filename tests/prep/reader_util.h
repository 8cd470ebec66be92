// Shared by the text reader's tests: schemas and gzip input (prep's tests link zlib through bw_prep).
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <utility>
#include <vector>

#include "bluewhale/prep/schema.h"

namespace bluewhale::testing {

// An input schema of `cols`: tab-separated unless format is "csv" (comma), with or without a header line.
inline InputSchema make_schema(std::vector<InputColumn> cols, std::string format = "tsv", bool header = false) {
  InputSchema s;
  s.format.format = format;
  s.format.delimiter = format == "csv" ? ',' : '\t';
  s.format.header = header;
  s.columns = std::move(cols);
  return s;
}

// `text` as one gzip member, what `gzip` writes.
inline std::string gzip_bytes(const std::string& text) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, text.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace bluewhale::testing
