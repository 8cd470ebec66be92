// Typed errors and check macros.
//
// Two channels, as in DEVELOPERS.md:
//  - problems caused by user input (files, recipes, command lines, model files) throw a subclass of
//    bluewhale::Error through BW_CHECK / BW_THROW; the message names the file, line, column or field and
//    what was expected;
//  - broken internal invariants are BW_ASSERT: they abort with the condition, file and line, in every
//    build type, because continuing would corrupt data silently.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace bluewhale {

// Base of every exception the library throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A user-supplied text input (TSV/CSV row, field, value) is malformed.
class InputError : public Error {
 public:
  using Error::Error;
};

// A recipe or command-line parameter is unknown, mistyped or out of bounds.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// The operating system refused a file operation (open, read, write, rename, mmap).
class IoError : public Error {
 public:
  using Error::Error;
};

// A binary file we wrote earlier (dataset shard, metadata, fitted state) is corrupted, truncated,
// foreign or from an incompatible version.
class FormatError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
[[noreturn]] void assert_fail(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace detail

// Concatenates any streamable values into a string: str_cat("line ", 12, ": ", msg).
using detail::str_cat;

}  // namespace bluewhale

// Throws ErrorType with the streamed message when cond is false:
//   BW_CHECK(n > 0, ConfigError, path, ": batch_size must be positive, got ", n);
#define BW_CHECK(cond, ErrorType, ...)                                \
  do {                                                                \
    if (!(cond)) throw ErrorType(::bluewhale::str_cat(__VA_ARGS__)); \
  } while (0)

// Throws ErrorType with the streamed message unconditionally.
#define BW_THROW(ErrorType, ...) throw ErrorType(::bluewhale::str_cat(__VA_ARGS__))

// Internal invariant: aborts with a message in every build type. Never for user input.
#define BW_ASSERT(cond, ...)                                                                        \
  do {                                                                                              \
    if (!(cond)) ::bluewhale::detail::assert_fail(#cond, __FILE__, __LINE__,                        \
                                                  ::bluewhale::str_cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
