// A stand-in for libbluewhale_mpi.so with another interface version and no MPI behind it: the tuner must
// refuse it before calling anything (tests/cli/tune_cli_test.cpp).
#include "tune/mpi_api.h"

extern "C" __attribute__((visibility("default"))) const BwMpiApi* bw_mpi_api() {
  static const BwMpiApi api = {BW_MPI_API_VERSION + 1, -1, -1, nullptr, nullptr, nullptr,
                               nullptr, nullptr, nullptr, nullptr, nullptr};
  return &api;
}
