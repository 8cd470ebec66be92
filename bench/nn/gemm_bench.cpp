// GEMM library comparison on DLRM's fully connected shapes: OpenBLAS (cblas_sgemm) against oneDNN
// (dnnl_sgemm), 1 and 2 threads, forward, backward-data and backward-weight products.
//
// Two ways to use 2 threads are measured for each library:
//   lib   - the library's own threads (openblas_set_num_threads / omp_set_num_threads);
//   split - our parallel_for cuts M into row blocks and each block calls the library with 1 thread, so
//           no second thread pool spins next to ours (nn/dense.cpp gemm() does this, with shape-fixed blocks).
// Prints GFLOP/s (2*M*N*K per product), best of several timed repetitions.
//
//   bench/nn/gemm_bench [--quick]
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/core/parallel.h"

namespace {

using bluewhale::parallel_for;

struct Shape {
  const char* layer;
  const char* pass;  // fwd: Y = X W^T; bwd_data: dX = dY W; bwd_weight: dW = dY^T X
  bool trans_a, trans_b;
  int m, n, k;
};

enum class Lib { kOpenBlas, kOneDnn };

void call(Lib lib, bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
          int ldc) {
  if (lib == Lib::kOpenBlas) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b,
                ldb, 0.0f, c, ldc);
  } else {
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  }
}

void set_lib_threads(int threads) {
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);
}

// One product, with `threads` used either inside the library or by splitting rows of C.
void run(Lib lib, bool split, int threads, const Shape& s, const float* a, const float* b, float* c) {
  int lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
  if (!split || threads == 1) {
    call(lib, s.trans_a, s.trans_b, s.m, s.n, s.k, a, lda, b, ldb, c, s.n);
    return;
  }
  parallel_for(s.m, threads, [&](int64_t r0, int64_t r1, int) {
    // Each worker sets its own (thread-local for OpenMP) count; OpenBLAS's is process-wide and already 1.
    omp_set_num_threads(1);
    const float* a_blk = s.trans_a ? a + r0 : a + r0 * lda;
    call(lib, s.trans_a, s.trans_b, static_cast<int>(r1 - r0), s.n, s.k, a_blk, lda, b, ldb, c + r0 * s.n, s.n);
  });
}

double gflops(Lib lib, bool split, int threads, const Shape& s, double min_seconds) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> a(static_cast<size_t>(s.m) * s.k), b(static_cast<size_t>(s.k) * s.n),
      c(static_cast<size_t>(s.m) * s.n);
  for (auto& v : a) v = u(rng);
  for (auto& v : b) v = u(rng);
  set_lib_threads(split ? 1 : threads);
  run(lib, split, threads, s, a.data(), b.data(), c.data());  // warm-up: library init, page faults
  double flop = 2.0 * s.m * s.n * s.k, best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    int iters = 0;
    auto t0 = std::chrono::steady_clock::now();
    double sec = 0;
    do {
      run(lib, split, threads, s, a.data(), b.data(), c.data());
      ++iters;
      sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (sec < min_seconds);
    best = std::max(best, flop * iters / sec / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  double min_seconds = quick ? 0.02 : 0.1;
  // DLRM Criteo Kaggle: bottom 13-512-256-64-16, top (16 + 27*26/2 = 367)-512-256-1.
  const int layers[][2] = {{13, 512}, {512, 256}, {256, 64}, {64, 16}, {367, 512}, {512, 256}, {256, 1}};
  const char* names[] = {"bot 13x512", "bot 512x256", "bot 256x64", "bot 64x16", "top 367x512", "top 512x256",
                         "top 256x1"};
  std::printf("GFLOP/s, best of 3; split = our parallel_for over rows of C with 1 library thread each\n");
  std::printf("%-6s %-12s %-10s %5s %5s %5s | %9s %9s %9s %9s | %9s %9s %9s %9s\n", "batch", "layer", "pass", "M", "N",
              "K", "oblas/1", "oblas/2", "oblas/2s", "", "dnnl/1", "dnnl/2", "dnnl/2s", "");
  for (int batch : {128, 2048}) {
    double tot[2][3] = {};  // seconds for every shape of this batch once, per library and mode
    for (int l = 0; l < 7; ++l) {
      int in = layers[l][0], out = layers[l][1];
      Shape shapes[] = {{names[l], "fwd", false, true, batch, out, in},
                        {names[l], "bwd_data", false, false, batch, in, out},
                        {names[l], "bwd_weight", true, false, out, in, batch}};
      for (const Shape& s : shapes) {
        double r[2][3];
        for (int li = 0; li < 2; ++li) {
          Lib lib = li == 0 ? Lib::kOpenBlas : Lib::kOneDnn;
          r[li][0] = gflops(lib, false, 1, s, min_seconds);
          r[li][1] = gflops(lib, false, 2, s, min_seconds);
          r[li][2] = gflops(lib, true, 2, s, min_seconds);
          for (int mode = 0; mode < 3; ++mode) tot[li][mode] += 2.0 * s.m * s.n * s.k / (r[li][mode] * 1e9);
        }
        std::printf("%-6d %-12s %-10s %5d %5d %5d | %9.1f %9.1f %9.1f %9s | %9.1f %9.1f %9.1f\n", batch, s.layer, s.pass,
                    s.m, s.n, s.k, r[0][0], r[0][1], r[0][2], "", r[1][0], r[1][1], r[1][2]);
      }
    }
    std::printf("batch %d, ms for one pass over its shapes (lower is better):\n", batch);
    std::printf("  OpenBLAS: 1 thread %.3f, 2 threads %.3f, 2 threads split %.3f\n", tot[0][0] * 1e3, tot[0][1] * 1e3,
                tot[0][2] * 1e3);
    std::printf("  oneDNN:   1 thread %.3f, 2 threads %.3f, 2 threads split %.3f\n", tot[1][0] * 1e3, tot[1][1] * 1e3,
                tot[1][2] * 1e3);
  }
  return 0;
}
