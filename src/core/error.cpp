#include "bluewhale/core/error.h"

#include <cstdio>
#include <cstdlib>

namespace bluewhale::detail {

void assert_fail(const char* cond, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "bluewhale: internal error: %s:%d: assertion `%s` failed%s%s\n", file, line, cond,
               msg.empty() ? "" : ": ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace bluewhale::detail
