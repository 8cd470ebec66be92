// Index files: save/load round trips give identical results; truncated, bit-flipped, foreign, too-new and
// crafted (checksum-valid but inconsistent) files raise FormatError, never a crash or a huge allocation.
#include <gtest/gtest.h>

#include <string>

#include "bluewhale/core/error.h"
#include "bluewhale/data/binary_io.h"
#include "bluewhale/recall/index.h"
#include "recall_test_util.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

std::unique_ptr<Index> build(IndexKind kind, Metric m, const Vectors& base) {
  IndexOptions o;
  o.kind = kind;
  o.metric = m;
  o.dim = base.dim;
  o.m = 8;
  o.ef_construction = 64;
  o.nlist = 16;
  auto idx = make_index(o);
  idx->add(base, 2);
  return idx;
}

class IndexIo : public ::testing::TestWithParam<IndexKind> {};

TEST_P(IndexIo, RoundTripGivesIdenticalResults) {
  TempDir dir;
  Vectors base = testing::random_vectors(1500, 20, 41), queries = testing::random_vectors(30, 20, 42);
  for (int64_t i = 0; i < base.rows; ++i) base.ids.push_back(1000 + 7 * i);
  for (Metric m : {Metric::kL2, Metric::kCosine}) {
    auto idx = build(GetParam(), m, base);
    idx->remove(1000 + 7 * 5);
    idx->save(dir / "a.idx");
    auto back = load_index(dir / "a.idx");
    EXPECT_EQ(back->kind(), GetParam());
    EXPECT_EQ(back->metric(), m);
    EXPECT_EQ(back->dim(), 20);
    EXPECT_EQ(back->size(), idx->size());
    EXPECT_FALSE(back->contains(1000 + 7 * 5));
    SearchOptions so;
    so.k = 10;
    so.ef = 50;
    so.nprobe = 4;
    SearchResult a = idx->search(queries, so), b = back->search(queries, so);
    EXPECT_EQ(a.ids, b.ids);
    EXPECT_EQ(a.distances, b.distances);
    // A loaded index keeps accepting items.
    Vectors more = testing::random_vectors(10, 20, 43);
    back->add(more);
    EXPECT_EQ(back->size(), idx->size() + 10);
  }
}

TEST_P(IndexIo, CorruptedFilesRaiseFormatError) {
  TempDir dir;
  auto idx = build(GetParam(), Metric::kL2, testing::random_vectors(300, 8, 44));
  idx->save(dir / "good.idx");
  const std::string good = read_file(dir / "good.idx");
  // Truncated at many points, from empty to one byte short.
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{20}, good.size() / 2, good.size() - 9,
                          good.size() - 1}) {
    testing::write_text(dir / "cut.idx", good.substr(0, cut));
    EXPECT_THROW(load_index(dir / "cut.idx"), FormatError) << "cut at " << cut;
  }
  // One flipped bit anywhere fails the checksum (or the header checks before it).
  for (std::size_t pos : {std::size_t{0}, std::size_t{9}, good.size() / 3, good.size() / 2, good.size() - 12,
                          good.size() - 1}) {
    std::string bad = good;
    bad[pos] = char(bad[pos] ^ 0x10);
    testing::write_text(dir / "flip.idx", bad);
    EXPECT_THROW(load_index(dir / "flip.idx"), FormatError) << "bit flipped at " << pos;
  }
  // Foreign files: text, an fvecs file, another BlueWhale binary file.
  testing::write_text(dir / "text.idx", "this is not an index\n");
  EXPECT_THROW(load_index(dir / "text.idx"), FormatError);
  Vectors v = testing::random_vectors(4, 4, 45);
  write_fvecs(dir / "v.fvecs", v);
  EXPECT_THROW(load_index(dir / "v.fvecs"), FormatError);
  {
    BinaryWriter w(dir / "other.bin", "op-state", 1);
    w.write<uint64_t>(1);
    w.close();
  }
  try {
    load_index(dir / "other.bin");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("other.bin"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, IndexIo, ::testing::Values(IndexKind::kFlat, IndexKind::kHnsw, IndexKind::kIvfSq8),
                         [](const auto& info) { return std::string(index_kind_name(info.param)); });

// Writes a checksum-valid index file whose header and payload are whatever `body` writes.
template <class Body>
fs::path crafted(const TempDir& dir, const std::string& name, uint32_t version, Body body) {
  BinaryWriter w(dir / name, "bluewhale-index", version);
  body(w);
  w.close();
  return dir / name;
}

void header(BinaryWriter& w, uint32_t kind, int64_t dim, uint64_t n) {
  w.write<uint32_t>(kind);
  w.write<uint32_t>(0);
  w.write<int64_t>(dim);
  w.write<int32_t>(2);   // m
  w.write<int32_t>(10);  // ef_construction
  w.write<int32_t>(0);   // nlist
  w.write<uint64_t>(1);  // seed
  std::vector<int64_t> labels(n);
  for (uint64_t i = 0; i < n; ++i) labels[i] = int64_t(i);
  w.write_vector(labels);
  w.write_vector(std::vector<uint8_t>(n, 0));
  w.write_vector(std::vector<float>(n * uint64_t(dim), 1.0f));
}

void expect_format_error(const fs::path& p, const std::string& fragment) {
  try {
    load_index(p);
    ADD_FAILURE() << "no exception for " << p;
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(IndexIoCrafted, InconsistentContentIsRejectedBeforeUse) {
  TempDir dir;
  expect_format_error(crafted(dir, "v2.idx", 2, [](BinaryWriter& w) { header(w, 0, 2, 1); }), "version");
  expect_format_error(crafted(dir, "kind.idx", 1, [](BinaryWriter& w) { header(w, 9, 2, 1); }), "index kind");
  expect_format_error(crafted(dir, "dim.idx", 1, [](BinaryWriter& w) { header(w, 0, 0, 1); }), "dimension");
  // A length field of 2^60 must fail on the bound, not try to allocate.
  expect_format_error(crafted(dir, "len.idx", 1,
                              [](BinaryWriter& w) {
                                w.write<uint32_t>(0);
                                w.write<uint32_t>(0);
                                w.write<int64_t>(4);
                                w.write<int32_t>(2);
                                w.write<int32_t>(10);
                                w.write<int32_t>(0);
                                w.write<uint64_t>(1);
                                w.write<uint64_t>(uint64_t{1} << 60);
                              }),
                      "vector length");
  // HNSW: a neighbour id past the end of the collection.
  expect_format_error(crafted(dir, "nbr.idx", 1,
                              [](BinaryWriter& w) {
                                header(w, 1, 2, 2);
                                w.write<int64_t>(0);  // entry
                                w.write<int32_t>(0);  // max level
                                w.write_vector(std::vector<uint8_t>{0, 0});
                                // m = 2 -> 1 + 2m = 5 slots per node: node 0 links to node 7.
                                w.write_vector(std::vector<uint32_t>{1, 7, 0, 0, 0, 1, 0, 0, 0, 0});
                                w.write_vector(std::vector<uint32_t>{});
                              }),
                      "hnsw neighbour id");
  // Trailing bytes after a valid flat index.
  expect_format_error(crafted(dir, "tail.idx", 1,
                              [](BinaryWriter& w) {
                                header(w, 0, 2, 1);
                                w.write<uint32_t>(0);
                              }),
                      "");
}

}  // namespace
}  // namespace bluewhale
