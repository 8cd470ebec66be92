// Loading optional shared libraries at run time (OpenBLAS in nn/blas.cpp, the tuner's MPI module in
// tune/mpi.cpp), so that commands which never use them do not pay for loading them.
#pragma once

#include <string>
#include <vector>

namespace bluewhale {

// dlopen (RTLD_NOW | scope: RTLD_LOCAL or RTLD_GLOBAL) of the first of `names` that loads; `loaded`
// gets its name. Null when none does, with `errors` holding each attempt's dlerror() ("; " between).
// The caller owns the handle (dlclose, or keep it for the life of the process).
void* dlopen_first(const std::vector<std::string>& names, int scope, std::string& loaded, std::string& errors);

}  // namespace bluewhale
