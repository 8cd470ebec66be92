#include "core/dynamic_library.h"

#include <dlfcn.h>

#include "bluewhale/core/error.h"

namespace bluewhale {

void* dlopen_first(const std::vector<std::string>& names, int scope, std::string& loaded, std::string& errors) {
  errors.clear();
  for (const std::string& name : names) {
    if (void* lib = ::dlopen(name.c_str(), RTLD_NOW | scope)) {
      loaded = name;
      return lib;
    }
    const char* e = ::dlerror();
    errors += str_cat(errors.empty() ? "" : "; ", e ? std::string(e) : name);
  }
  return nullptr;
}

}  // namespace bluewhale
