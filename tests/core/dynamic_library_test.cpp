#include "core/dynamic_library.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

namespace bluewhale {
namespace {

// zlib is linked by every build, so its runtime library is there to load.
TEST(DlopenFirst, LoadsTheFirstThatLoadsAndNamesEveryFailure) {
  std::string loaded, errors;
  void* lib = dlopen_first({"/nonexistent/libnone.so", "libz.so.1", "libz.so"}, RTLD_LOCAL, loaded, errors);
  ASSERT_NE(lib, nullptr) << errors;
  EXPECT_EQ(loaded, "libz.so.1");
  EXPECT_NE(dlsym(lib, "zlibVersion"), nullptr);
  EXPECT_NE(errors.find("/nonexistent/libnone.so"), std::string::npos) << errors;
  dlclose(lib);

  loaded = "unchanged";
  EXPECT_EQ(dlopen_first({"/nonexistent/a.so", "/nonexistent/b.so"}, RTLD_GLOBAL, loaded, errors), nullptr);
  EXPECT_EQ(loaded, "unchanged");
  const std::size_t a = errors.find("/nonexistent/a.so"), sep = errors.find("; "), b = errors.find("/nonexistent/b.so");
  EXPECT_TRUE(a < sep && sep < b) << errors;

  EXPECT_EQ(dlopen_first({}, RTLD_LOCAL, loaded, errors), nullptr);
  EXPECT_TRUE(errors.empty()) << errors;
}

}  // namespace
}  // namespace bluewhale
