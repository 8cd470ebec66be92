// The C interface between the tuner (mpi.cpp) and its MPI module (mpi_module.cpp, built as the shared
// object libbluewhale_mpi.so next to the bluewhale binary). The tuner loads the module with dlopen only
// when the process was started by an MPI launcher: linking MPI into every binary made each command pay
// for loading and initialising OpenMPI's libraries (~5 ms of start-up) though only `tune` under mpirun
// uses them. Only the module is compiled against mpi.h, so nothing here depends on an MPI's ABI.
#pragma once

extern "C" {

// Bumped whenever BwMpiApi changes; the tuner refuses a module of another version.
#define BW_MPI_API_VERSION 1

// Every function returns the MPI error code of the call it wraps (0: success). Messages are bytes in
// MPI_COMM_WORLD; `src`/`tag` accept the module's any_source/any_tag.
struct BwMpiApi {
  int version;  // BW_MPI_API_VERSION
  int any_source, any_tag;
  int (*initialized)(int* flag);
  int (*init)();  // MPI_Init without arguments
  int (*finalize)();
  int (*rank)(int* rank);  // in MPI_COMM_WORLD
  int (*size)(int* size);
  int (*send)(const char* data, int len, int dst, int tag);
  // Waits for a message matching src/tag; its source, tag and length in bytes.
  int (*probe)(int src, int tag, int* source, int* msg_tag, int* len);
  int (*recv)(char* buf, int len, int src, int tag);
};

// The module's one exported symbol.
typedef const BwMpiApi* (*BwMpiApiFn)();
#define BW_MPI_API_SYMBOL "bw_mpi_api"
}
