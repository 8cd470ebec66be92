// The hash tables' probe loops must keep their prefetches. GCC 12 once deleted every call of
// CountTable::prefetch (a body of only __builtin_prefetch looked free of side effects to its
// interprocedural analysis), which left KeyCounter::add_many's loop without any prefetch and made counting
// ~30 % slower without changing a result: no other test could see it. This one disassembles its own
// executable (objdump, from binutils, which the compiler needs anyway) and checks that every compiled
// copy of the counting and lookup loops holds a prefetch instruction.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "bluewhale/core/hash.h"
#include "prep/ops/flat_map.h"
#include "prep/ops/key_counter.h"
#include "test_util.h"

namespace bluewhale::prep_ops {
namespace {

// Prefetch instructions per function whose demangled name contains one of `names`, over every copy
// (clones such as ".isra.0" included); empty when objdump cannot be run.
std::map<std::string, int> prefetches_in(const std::vector<std::string>& names) {
  std::map<std::string, int> out;
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();  // not the shell's
  if (ec || self.find('\'') != std::string::npos) return out;
  const std::string cmd = "objdump -d --no-show-raw-insn -C '" + self + "' 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) return out;
  static const std::regex kStart(R"(^[0-9a-f]+ <(.*)>:$)");
  std::string current;
  bool inside = false;
  char buf[4096];
  while (fgets(buf, sizeof buf, p.get())) {
    std::string line(buf);
    if (!line.empty() && line.back() == '\n') line.pop_back();
    std::smatch m;
    if (std::regex_match(line, m, kStart)) {
      current = m[1];
      inside = false;
      for (const auto& n : names) inside = inside || current.find(n) != std::string::npos;
      if (inside) out.emplace(current, 0);
      continue;
    }
    if (inside && line.find("prefetch") != std::string::npos) ++out[current];
  }
  return out;
}

// Out of line so that the loops, inlined here or called from here, exist in this executable by these names.
[[gnu::noinline]] void count_for_codegen(KeyCounter& kc, const std::vector<int64_t>& keys) {
  kc.add_many(0, 0, keys.data(), nullptr, keys.size());
}
[[gnu::noinline]] void lookup_for_codegen(const KeyIndex& index, const std::vector<int64_t>& keys,
                                          std::vector<int64_t>& ids) {
  index.find_batch(keys.data(), keys.size(), ids.data(), 1);
}

TEST(Codegen, CountingAndLookupLoopsKeepTheirPrefetches) {
#ifndef __OPTIMIZE__
  GTEST_SKIP() << "an unoptimised build (the sanitizer build) compiles no loop the way a release does";
#endif
  testing::TempDir dir;
  std::vector<int64_t> keys;
  for (int k = 0; k < 5000; ++k) keys.push_back(categorical_key(std::to_string(k)));
  KeyCounter kc("codegen");
  kc.begin(1, 1, int64_t{1} << 30, dir.path().string(), false);
  count_for_codegen(kc, keys);
  int64_t distinct = 0;
  kc.finish(1, [&](std::size_t, const KeyCount&) { ++distinct; });
  EXPECT_EQ(distinct, 5000);
  KeyIndex index;
  ASSERT_TRUE(index.assign(keys.data(), keys.size(), 2));
  std::vector<int64_t> ids(keys.size());
  lookup_for_codegen(index, keys, ids);
  EXPECT_EQ(ids[4999], 5001);

  // Each loop is either a function of its own (every copy must prefetch) or inlined into the wrapper
  // that calls it (which must then prefetch).
  const std::map<std::string, int> got = prefetches_in(
      {"KeyCounter::add_many_impl", "KeyIndex::find_batch_impl", "count_for_codegen", "lookup_for_codegen"});
  // The two wrappers above are always there to be found: nothing at all means objdump did not run.
  if (got.empty()) GTEST_SKIP() << "objdump is not available";
  int counting = 0, lookups = 0;
  for (const auto& [name, count] : got) {
    // A ".cold" part is the function's rarely taken paths moved out of line, not a copy of its loop.
    const bool impl = name.find("_impl") != std::string::npos && name.find("lambda") == std::string::npos &&
                      name.find(".cold") == std::string::npos;
    if (impl) {
      EXPECT_GT(count, 0) << name << " has no prefetch instruction";
    }
    const bool is_counting =
        name.find("add_many_impl") != std::string::npos || name.find("count_for_codegen") != std::string::npos;
    (is_counting ? counting : lookups) += count;
  }
  EXPECT_GT(counting, 0) << "KeyCounter::add_many's loop has no prefetch instruction";
  EXPECT_GT(lookups, 0) << "KeyIndex::find_batch's loop has no prefetch instruction";
}

}  // namespace
}  // namespace bluewhale::prep_ops
