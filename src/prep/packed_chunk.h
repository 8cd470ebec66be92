// Private to the prep driver: a parsed chunk kept in memory between passes.
//
// Why not keep the Chunk itself: its dozens of value vectors are fresh allocations, and on the virtual
// machines prep runs on every first touch of a 4 KiB page is a fault that costs microseconds (the cache of
// a 1M-row Criteo run is ~70k pages). Packing copies the values once into one zeroed buffer (huge pages,
// see ZeroBuffer) and lets the parser reuse its chunk; unpacking copies them into a recycled chunk. Two
// memcpys cost far less than the faults they avoid.
#pragma once

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "bluewhale/data/column.h"
#include "core/zero_buffer.h"

namespace bluewhale {

// Hands out 8-byte aligned pieces of big zeroed slabs, so that packed chunks share huge pages instead of
// each rounding up to whole 2 MiB pages (a 4.8 MB Criteo chunk took 6 MB, all of it zeroed by the
// kernel). Thread-safe. Memory is released when the arena is destroyed, so it must outlive the chunks.
class PackArena {
 public:
  explicit PackArena(std::size_t slab_bytes = std::size_t{64} << 20) : slab_bytes_(slab_bytes) {}
  char* allocate(std::size_t bytes) {
    bytes = (bytes + 7) & ~std::size_t{7};
    std::lock_guard<std::mutex> lk(mu_);
    if (slabs_.empty() || used_ + bytes > slabs_.back().size()) {
      slabs_.emplace_back(std::max(bytes, slab_bytes_));
      used_ = 0;
    }
    char* p = slabs_.back().data() + used_;
    used_ += bytes;
    return p;
  }

 private:
  const std::size_t slab_bytes_;
  std::mutex mu_;
  std::vector<ZeroBuffer<char>> slabs_;
  std::size_t used_ = 0;
};

class PackedChunk {
 public:
  // Packs a copy of c into memory of its own, or from `arena` when given (which must outlive this).
  explicit PackedChunk(const Chunk& c, PackArena* arena = nullptr) {
    rows_ = c.rows;
    first_row_ = c.first_row;
    file_index_ = c.file_index;
    first_line_ = c.first_line;
    text_bytes_ = c.text_bytes;
    std::size_t bytes = 0;
    auto plan = [&](std::size_t n, std::size_t elem) {
      sizes_.push_back(n);
      bytes += round8(n * elem);
    };
    for (const Column& col : c.columns) {
      meta_.push_back(ColumnMeta{col.name, col.role, col.kind, col.cardinality});
      plan(col.f.size(), sizeof(float));
      plan(col.i.size(), sizeof(int64_t));
      plan(col.valid.size(), 1);
      plan(col.offsets.size(), sizeof(int64_t));
    }
    plan(c.split.size(), 1);
    plan(c.row_index.size(), sizeof(int64_t));
    if (arena) {
      data_ = arena->allocate(bytes);
    } else {
      own_ = ZeroBuffer<char>(bytes);
      data_ = own_.data();
    }
    bytes_ = bytes;
    char* p = data_;
    std::size_t k = 0;
    auto put = [&](const void* src, std::size_t elem) {
      const std::size_t n = sizes_[k++] * elem;
      if (n) std::memcpy(p, src, n);
      p += round8(n);
    };
    for (const Column& col : c.columns) {
      put(col.f.data(), sizeof(float));
      put(col.i.data(), sizeof(int64_t));
      put(col.valid.data(), 1);
      put(col.offsets.data(), sizeof(int64_t));
    }
    put(c.split.data(), 1);
    put(c.row_index.data(), sizeof(int64_t));
  }

  PackedChunk(const PackedChunk&) = delete;
  PackedChunk& operator=(const PackedChunk&) = delete;

  // Makes `out` equal to the packed chunk, reusing its buffers.
  void unpack(Chunk& out) const {
    out.rows = rows_;
    out.first_row = first_row_;
    out.file_index = file_index_;
    out.first_line = first_line_;
    out.text_bytes = text_bytes_;
    out.columns.resize(meta_.size());
    const char* p = data_;
    std::size_t k = 0;
    auto get = [&](auto& vec) {
      using T = typename std::decay_t<decltype(vec)>::value_type;
      const std::size_t n = sizes_[k++];
      const T* src = reinterpret_cast<const T*>(p);
      vec.assign(src, src + n);  // copies without first zeroing the elements
      p += round8(n * sizeof(T));
    };
    for (std::size_t j = 0; j < meta_.size(); ++j) {
      Column& col = out.columns[j];
      col.name = meta_[j].name;
      col.role = meta_[j].role;
      col.kind = meta_[j].kind;
      col.cardinality = meta_[j].cardinality;
      get(col.f);
      get(col.i);
      get(col.valid);
      get(col.offsets);
    }
    get(out.split);
    get(out.row_index);
  }

  // Memory held, for the cache budget.
  int64_t bytes() const {
    return static_cast<int64_t>(bytes_ + sizes_.size() * sizeof(std::size_t) + meta_.size() * sizeof(ColumnMeta));
  }

 private:
  struct ColumnMeta {
    std::string name;
    Role role;
    ColumnKind kind;
    int64_t cardinality;
  };
  static std::size_t round8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

  int64_t rows_ = 0, first_row_ = 0, first_line_ = 0, text_bytes_ = 0;
  int file_index_ = 0;
  std::vector<ColumnMeta> meta_;
  std::vector<std::size_t> sizes_;  // element counts: per column f, i, valid, offsets; then split, row_index
  ZeroBuffer<char> own_;  // without an arena
  char* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace bluewhale
