// The tuner's MPI module (see mpi_api.h): thin wrappers over the MPI calls the coordinator and workers
// make, built into libbluewhale_mpi.so against the MPI that CMake found.
#include <mpi.h>

#include "tune/mpi_api.h"

namespace {

int initialized(int* flag) { return MPI_Initialized(flag); }
int init() { return MPI_Init(nullptr, nullptr); }
int finalize() { return MPI_Finalize(); }
int rank(int* r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
int size(int* s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }

int send(const char* data, int len, int dst, int tag) {
  return MPI_Send(data, len, MPI_CHAR, dst, tag, MPI_COMM_WORLD);
}

int probe(int src, int tag, int* source, int* msg_tag, int* len) {
  MPI_Status st;
  if (const int e = MPI_Probe(src, tag, MPI_COMM_WORLD, &st)) return e;
  *source = st.MPI_SOURCE;
  *msg_tag = st.MPI_TAG;
  return MPI_Get_count(&st, MPI_CHAR, len);
}

int recv(char* buf, int len, int src, int tag) {
  return MPI_Recv(buf, len, MPI_CHAR, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const BwMpiApi* bw_mpi_api() {
  static const BwMpiApi api = {BW_MPI_API_VERSION, MPI_ANY_SOURCE, MPI_ANY_TAG, initialized, init, finalize,
                               rank, size, send, probe, recv};
  return &api;
}
