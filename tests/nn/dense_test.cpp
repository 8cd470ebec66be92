#include "bluewhale/nn/dense.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "bluewhale/core/error.h"

namespace bluewhale {
namespace {

std::vector<float> random_vec(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float tol, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1.0f + std::abs(want[i]))) << what << " at " << i;
  }
}

// Central differences of a double-accumulated scalar loss with respect to every element of `param`,
// compared with the analytic gradient.
void expect_fd_gradient(std::vector<float>& param, const std::vector<float>& analytic,
                        const std::function<double()>& loss, float h, float tol, const char* what) {
  ASSERT_EQ(param.size(), analytic.size());
  for (size_t i = 0; i < param.size(); ++i) {
    const float saved = param[i];
    param[i] = saved + h;
    const double up = loss();
    param[i] = saved - h;
    const double down = loss();
    param[i] = saved;
    const double numeric = (up - down) / (2.0 * h);
    ASSERT_NEAR(analytic[i], numeric, tol * (1.0 + std::abs(numeric))) << what << " element " << i;
  }
}

// <a, b> in double: the scalar loss whose gradient with respect to a is b.
double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

struct GemmCase {
  int64_t m, n, k;
};

TEST(Gemm, MatchesReferenceForEveryTransposeOddShapesAndPadding) {
  const GemmCase cases[] = {{1, 1, 1}, {3, 5, 7}, {127, 33, 13}, {13, 1, 256}, {300, 260, 40}, {5, 2000, 64}};
  for (const auto& c : cases) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        // Leading dimensions larger than the logical width, so strides are honoured.
        const int64_t lda = (ta ? c.m : c.k) + 3, ldb = (tb ? c.k : c.n) + 1, ldc = c.n + 2;
        auto a = random_vec((ta ? c.k : c.m) * lda, 1);
        auto b = random_vec((tb ? c.n : c.k) * ldb, 2);
        auto c0 = random_vec(c.m * ldc, 3);
        auto want = c0, got1 = c0, got2 = c0;
        gemm_reference(ta, tb, c.m, c.n, c.k, 0.5f, a.data(), lda, b.data(), ldb, 0.25f, want.data(), ldc);
        gemm(ta, tb, c.m, c.n, c.k, 0.5f, a.data(), lda, b.data(), ldb, 0.25f, got1.data(), ldc, 1);
        gemm(ta, tb, c.m, c.n, c.k, 0.5f, a.data(), lda, b.data(), ldb, 0.25f, got2.data(), ldc, 2);
        expect_close(got1, want, 1e-4f, "gemm");
        EXPECT_EQ(got1, got2) << "1 and 2 threads differ, m=" << c.m << " n=" << c.n << " k=" << c.k;
      }
    }
  }
}

TEST(Gemm, BetaZeroIgnoresNanInOutput) {
  auto a = random_vec(4 * 3, 1), b = random_vec(3 * 5, 2);
  std::vector<float> c(4 * 5, std::nanf("")), want(4 * 5);
  gemm(false, false, 4, 5, 3, 1.0f, a.data(), 3, b.data(), 5, 0.0f, c.data(), 5, 1);
  gemm_reference(false, false, 4, 5, 3, 1.0f, a.data(), 3, b.data(), 5, 0.0f, want.data(), 5);
  expect_close(c, want, 1e-5f, "gemm beta 0");
}

struct LinearCase {
  int64_t batch, in, out;
};
const LinearCase kLinearCases[] = {{1, 13, 7}, {3, 5, 1}, {127, 37, 65}, {128, 13, 512}, {257, 100, 300}};

TEST(Linear, ForwardMatchesReferenceWithAndWithoutBiasAndRelu) {
  for (const auto& c : kLinearCases) {
    auto x = random_vec(c.batch * c.in, 1), w = random_vec(c.out * c.in, 2), bias = random_vec(c.out, 3);
    for (int relu = 0; relu < 2; ++relu) {
      for (int with_bias = 0; with_bias < 2; ++with_bias) {
        const float* bp = with_bias ? bias.data() : nullptr;
        std::vector<float> want(c.batch * c.out), got1(want.size()), got2(want.size());
        linear_forward_reference(x.data(), w.data(), bp, want.data(), c.batch, c.in, c.out, relu);
        linear_forward(x.data(), w.data(), bp, got1.data(), c.batch, c.in, c.out, relu, 1);
        linear_forward(x.data(), w.data(), bp, got2.data(), c.batch, c.in, c.out, relu, 2);
        expect_close(got1, want, 1e-4f, "linear forward");
        EXPECT_EQ(got1, got2) << "threads, batch " << c.batch;
        if (relu) {
          for (float v : got1) ASSERT_GE(v, 0.0f);
        }
      }
    }
  }
}

TEST(Linear, ReluKeepsNanAndInfinityLikeTheReferenceInEveryLane) {
  // A NaN must reach the loss so the trainer's NaN check fires; ReLU must not turn it into 0. Width 6
  // covers a full 4-wide block and a scalar tail.
  const int64_t batch = 2, in = 1, out = 6;
  std::vector<float> x = {1, 1}, w(out, 1.0f), y(batch * out), want(y.size());
  std::vector<float> bias = {std::nanf(""), -INFINITY, INFINITY, -2, 3, std::nanf("")};
  linear_forward_reference(x.data(), w.data(), bias.data(), want.data(), batch, in, out, true);
  linear_forward(x.data(), w.data(), bias.data(), y.data(), batch, in, out, true, 1);
  for (size_t t = 0; t < y.size(); ++t) {
    if (std::isnan(want[t])) {
      EXPECT_TRUE(std::isnan(y[t])) << t;
    } else {
      EXPECT_EQ(y[t], want[t]) << t;
    }
  }
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[5]) && y[1] == 0.0f && y[2] == INFINITY && y[3] == 0.0f && y[4] == 4.0f);
}

TEST(Linear, BackwardMatchesReferenceAndIsThreadIndependent) {
  for (const auto& c : kLinearCases) {
    auto x = random_vec(c.batch * c.in, 1), w = random_vec(c.out * c.in, 2), bias = random_vec(c.out, 3);
    auto dy0 = random_vec(c.batch * c.out, 4);
    for (int relu = 0; relu < 2; ++relu) {
      std::vector<float> y(c.batch * c.out);
      linear_forward(x.data(), w.data(), bias.data(), y.data(), c.batch, c.in, c.out, relu, 1);
      std::vector<float> dx_r(c.batch * c.in), dw_r(c.out * c.in), db_r(c.out);
      auto dy_r = dy0;
      linear_backward_reference(x.data(), w.data(), y.data(), dy_r.data(), dx_r.data(), dw_r.data(), db_r.data(),
                                c.batch, c.in, c.out, relu);
      std::vector<float> dx[2], dw[2], db[2];
      for (int t = 0; t < 2; ++t) {
        dx[t].assign(c.batch * c.in, 0.0f);
        dw[t].assign(c.out * c.in, 0.0f);
        db[t].assign(c.out, 0.0f);
        auto dy = dy0;
        linear_backward(x.data(), w.data(), y.data(), dy.data(), dx[t].data(), dw[t].data(), db[t].data(), c.batch,
                        c.in, c.out, relu, t + 1);
        EXPECT_EQ(dy, dy_r) << "masked dy";
      }
      expect_close(dx[0], dx_r, 1e-4f, "dx");
      expect_close(dw[0], dw_r, 1e-4f, "dw");
      expect_close(db[0], db_r, 1e-4f, "db");
      EXPECT_EQ(dx[0], dx[1]);
      EXPECT_EQ(dw[0], dw[1]);
      EXPECT_EQ(db[0], db[1]);
    }
  }
}

TEST(Linear, BackwardWithoutDxOrBiasStillGivesDw) {
  auto x = random_vec(3 * 4, 1), w = random_vec(2 * 4, 2), dy = random_vec(3 * 2, 3);
  std::vector<float> y(3 * 2), dw(2 * 4), dw_r(2 * 4);
  linear_forward(x.data(), w.data(), nullptr, y.data(), 3, 4, 2, false, 1);
  auto dy_r = dy;
  linear_backward(x.data(), w.data(), y.data(), dy.data(), nullptr, dw.data(), nullptr, 3, 4, 2, false, 1);
  std::vector<float> dx_r(3 * 4), db_r(2);
  linear_backward_reference(x.data(), w.data(), y.data(), dy_r.data(), dx_r.data(), dw_r.data(), db_r.data(), 3, 4, 2,
                            false);
  expect_close(dw, dw_r, 1e-5f, "dw");
}

TEST(Linear, BackwardAgreesWithFiniteDifferences) {
  for (int relu = 0; relu < 2; ++relu) {
    const int64_t batch = 3, in = 5, out = 7;
    auto x = random_vec(batch * in, 11), w = random_vec(out * in, 12), bias = random_vec(out, 13);
    auto r = random_vec(batch * out, 14);  // loss = <y, r>, so dL/dy = r
    std::vector<float> y(batch * out);
    auto loss = [&] {
      std::vector<float> yy(batch * out);
      linear_forward_reference(x.data(), w.data(), bias.data(), yy.data(), batch, in, out, relu);
      return dot(yy, r);
    };
    linear_forward(x.data(), w.data(), bias.data(), y.data(), batch, in, out, relu, 1);
    std::vector<float> dx(batch * in), dw(out * in), db(out);
    auto dy = r;
    linear_backward(x.data(), w.data(), y.data(), dy.data(), dx.data(), dw.data(), db.data(), batch, in, out, relu, 1);
    expect_fd_gradient(x, dx, loss, 1e-3f, 2e-3f, relu ? "relu dx" : "dx");
    expect_fd_gradient(w, dw, loss, 1e-3f, 2e-3f, relu ? "relu dw" : "dw");
    expect_fd_gradient(bias, db, loss, 1e-3f, 2e-3f, relu ? "relu db" : "db");
  }
}

// Embedding outputs in both layouts the interaction accepts.
struct EmbLayout {
  bool table_major;  // (T, B, D) when true, (B, T, D) otherwise
  StridedVectors in(const std::vector<float>& v, int64_t batch, int64_t tables, int64_t dim) const {
    return table_major ? StridedVectors{v.data(), dim, batch * dim} : StridedVectors{v.data(), tables * dim, dim};
  }
  StridedGrads out(std::vector<float>& v, int64_t batch, int64_t tables, int64_t dim) const {
    return table_major ? StridedGrads{v.data(), dim, batch * dim} : StridedGrads{v.data(), tables * dim, dim};
  }
};

TEST(DotInteraction, OrderFollowsDlrmReference) {
  // z0 = 2, e1 = 3, e2 = 5 (dim 1): [z0, e1.z0, e2.z0, e2.e1].
  std::vector<float> z0 = {2}, emb = {3, 5}, out(4);
  dot_interaction_forward(z0.data(), {emb.data(), 2, 1}, out.data(), 1, 2, 1, 1);
  EXPECT_EQ(out, (std::vector<float>{2, 6, 10, 15}));
  EXPECT_EQ(dot_interaction_width(26, 16), 16 + 351);
}

TEST(DotInteraction, ForwardAndBackwardMatchReferenceOnOddShapes) {
  for (int64_t batch : {1, 3, 127}) {
    for (int64_t tables : {1, 3, 26}) {
      for (int64_t dim : {1, 5, 16}) {
        for (bool table_major : {false, true}) {
          EmbLayout layout{table_major};
          const int64_t width = dot_interaction_width(tables, dim);
          auto z0 = random_vec(batch * dim, 1), emb = random_vec(batch * tables * dim, 2);
          auto ev = layout.in(emb, batch, tables, dim);
          std::vector<float> want(batch * width), got1(want.size()), got2(want.size());
          dot_interaction_forward_reference(z0.data(), ev, want.data(), batch, tables, dim);
          dot_interaction_forward(z0.data(), ev, got1.data(), batch, tables, dim, 1);
          dot_interaction_forward(z0.data(), ev, got2.data(), batch, tables, dim, 2);
          // Same summation order as the reference: equal, not just close.
          EXPECT_EQ(got1, want) << batch << "x" << tables << "x" << dim;
          EXPECT_EQ(got1, got2);

          auto dout = random_vec(batch * width, 3);
          std::vector<float> dz0_r(batch * dim), demb_r(emb.size()), dz0[2], demb[2];
          dot_interaction_backward_reference(z0.data(), ev, dout.data(), dz0_r.data(),
                                             layout.out(demb_r, batch, tables, dim), batch, tables, dim);
          for (int t = 0; t < 2; ++t) {
            dz0[t].assign(batch * dim, 0.0f);
            demb[t].assign(emb.size(), 0.0f);
            dot_interaction_backward(z0.data(), ev, dout.data(), dz0[t].data(), layout.out(demb[t], batch, tables, dim),
                                     batch, tables, dim, t + 1);
          }
          expect_close(dz0[0], dz0_r, 1e-5f, "dz0");
          expect_close(demb[0], demb_r, 1e-5f, "demb");
          EXPECT_EQ(dz0[0], dz0[1]);
          EXPECT_EQ(demb[0], demb[1]);
        }
      }
    }
  }
}

TEST(DotInteraction, BackwardAgreesWithFiniteDifferences) {
  const int64_t batch = 2, tables = 4, dim = 3, width = dot_interaction_width(tables, dim);
  for (bool table_major : {false, true}) {
    EmbLayout layout{table_major};
    auto z0 = random_vec(batch * dim, 21), emb = random_vec(batch * tables * dim, 22);
    auto r = random_vec(batch * width, 23);
    auto loss = [&] {
      std::vector<float> out(batch * width);
      dot_interaction_forward_reference(z0.data(), layout.in(emb, batch, tables, dim), out.data(), batch, tables, dim);
      return dot(out, r);
    };
    std::vector<float> dz0(batch * dim), demb(emb.size());
    dot_interaction_backward(z0.data(), layout.in(emb, batch, tables, dim), r.data(), dz0.data(),
                             layout.out(demb, batch, tables, dim), batch, tables, dim, 1);
    expect_fd_gradient(z0, dz0, loss, 1e-2f, 1e-3f, "dz0");
    expect_fd_gradient(emb, demb, loss, 1e-2f, 1e-3f, "demb");
  }
}

TEST(ConcatInteraction, ForwardPlacesVectorsAndBackwardAgreesWithFiniteDifferences) {
  const int64_t batch = 3, tables = 2, dim = 3, width = (tables + 1) * dim;
  for (bool table_major : {false, true}) {
    EmbLayout layout{table_major};
    auto z0 = random_vec(batch * dim, 31), emb = random_vec(batch * tables * dim, 32);
    std::vector<float> out(batch * width);
    concat_interaction_forward(z0.data(), layout.in(emb, batch, tables, dim), out.data(), batch, tables, dim, 2);
    auto ev = layout.in(emb, batch, tables, dim);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t d = 0; d < dim; ++d) {
        EXPECT_EQ(out[b * width + d], z0[b * dim + d]);
        for (int64_t t = 0; t < tables; ++t) {
          EXPECT_EQ(out[b * width + (t + 1) * dim + d], ev.data[b * ev.sample_stride + t * ev.table_stride + d]);
        }
      }
    }
    auto r = random_vec(batch * width, 33);
    auto loss = [&] {
      std::vector<float> o(batch * width);
      concat_interaction_forward(z0.data(), layout.in(emb, batch, tables, dim), o.data(), batch, tables, dim, 1);
      return dot(o, r);
    };
    std::vector<float> dz0(batch * dim), demb(emb.size());
    concat_interaction_backward(r.data(), dz0.data(), layout.out(demb, batch, tables, dim), batch, tables, dim, 2);
    expect_fd_gradient(z0, dz0, loss, 1e-2f, 1e-3f, "dz0");
    expect_fd_gradient(emb, demb, loss, 1e-2f, 1e-3f, "demb");
  }
}

TEST(Bce, MatchesNaiveFormulaAtModerateLogits) {
  auto logits = random_vec(127, 41, -5, 5);
  std::vector<float> labels(127);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<float>(i % 3 == 0);
  double want = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double p = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[i])));
    want -= labels[i] * std::log(p) + (1 - labels[i]) * std::log(1 - p);
  }
  want /= logits.size();
  EXPECT_NEAR(bce_with_logits_forward(logits.data(), labels.data(), 127), want, 1e-9);
  EXPECT_EQ(bce_with_logits_forward(logits.data(), labels.data(), 0), 0.0);
}

TEST(Bce, StableAtHugeLogits) {
  std::vector<float> logits = {100, -100, 100, -100}, labels = {1, 0, 0, 1}, grad(4);
  EXPECT_NEAR(bce_with_logits_forward(logits.data(), labels.data(), 2), 0.0, 1e-30);  // right and confident
  EXPECT_NEAR(bce_with_logits_forward(logits.data() + 2, labels.data() + 2, 2), 100.0, 1e-9);  // confidently wrong
  bce_with_logits_backward(logits.data(), labels.data(), grad.data(), 4);
  for (float g : grad) EXPECT_TRUE(std::isfinite(g));
  EXPECT_NEAR(grad[0], 0.0f, 1e-30f);
  EXPECT_NEAR(grad[1], 0.0f, 1e-30f);
  EXPECT_FLOAT_EQ(grad[2], 0.25f);
  EXPECT_FLOAT_EQ(grad[3], -0.25f);
  EXPECT_EQ(stable_sigmoid(100.0f), 1.0f);
  EXPECT_GT(stable_sigmoid(-80.0f), 0.0f);  // e^-80 is a normal float, not rounded to 0
  EXPECT_NEAR(stable_sigmoid(-80.0f) / std::exp(-80.0f), 1.0f, 1e-5f);
  EXPECT_EQ(stable_sigmoid(-1000.0f), 0.0f);
  EXPECT_EQ(stable_sigmoid(1000.0f), 1.0f);
}

TEST(Bce, BackwardAgreesWithFiniteDifferences) {
  auto logits = random_vec(9, 51, -4, 4);
  std::vector<float> labels = {0, 1, 1, 0, 0.5f, 1, 0, 1, 0}, grad(9);
  bce_with_logits_backward(logits.data(), labels.data(), grad.data(), 9);
  expect_fd_gradient(logits, grad, [&] { return bce_with_logits_forward(logits.data(), labels.data(), 9); }, 1e-3f,
                     1e-4f, "dlogits");
}

TEST(DlrmInit, SeededWithReferenceScales) {
  const int64_t in = 512, out = 256;
  std::vector<float> w(in * out), b(out), w2(in * out), b2(out), w3(in * out), b3(out);
  dlrm_linear_init(w.data(), b.data(), in, out, 7);
  dlrm_linear_init(w2.data(), b2.data(), in, out, 7);
  dlrm_linear_init(w3.data(), b3.data(), in, out, 8);
  EXPECT_EQ(w, w2);
  EXPECT_EQ(b, b2);
  EXPECT_NE(w, w3);
  auto moments = [](const std::vector<float>& v) {
    double s = 0, ss = 0;
    for (float x : v) s += x, ss += static_cast<double>(x) * x;
    const double mean = s / v.size();
    return std::pair{mean, std::sqrt(ss / v.size() - mean * mean)};
  };
  auto [wm, ws] = moments(w);
  EXPECT_NEAR(wm, 0.0, 3e-4);
  EXPECT_NEAR(ws, std::sqrt(2.0 / (in + out)), 0.01 * std::sqrt(2.0 / (in + out)));
  auto [bm, bs] = moments(b);
  EXPECT_NEAR(bm, 0.0, 0.02);
  EXPECT_NEAR(bs, std::sqrt(1.0 / out), 0.1 * std::sqrt(1.0 / out));
  EXPECT_THROW(dlrm_linear_init(w.data(), b.data(), 0, 3, 1), ConfigError);
}

}  // namespace
}  // namespace bluewhale
