#include "bluewhale/tune/optimizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "bluewhale/tune/test_functions.h"

using namespace bluewhale;
using namespace bluewhale::tune;

namespace {

double median_final_regret(const std::string& fn, const std::string& algo, int evals, int seeds) {
  TestFunction f = test_function(fn);
  std::vector<double> r;
  for (int s = 0; s < seeds; ++s) r.push_back(regret_trace(f, algo, evals, 1000 + s).back());
  std::sort(r.begin(), r.end());
  return r[r.size() / 2];
}

}  // namespace

TEST(Cholesky, FactorsAKnownMatrixAndRejectsIndefinite) {
  std::vector<double> a{4, 12, -16, 12, 37, -43, -16, -43, 98};
  ASSERT_TRUE(tune::detail::cholesky(a, 3));
  const std::vector<double> want{2, 0, 0, 6, 1, 0, -8, 5, 3};
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a[i], want[i], 1e-12);
  std::vector<double> b{1, 2, 2, 1};
  EXPECT_FALSE(tune::detail::cholesky(b, 2));
}

TEST(Matern52, MatchesClosedFormValues) {
  EXPECT_DOUBLE_EQ(tune::detail::matern52(0), 1.0);
  const double r = 0.7, s = std::sqrt(5.0) * r;
  EXPECT_NEAR(tune::detail::matern52(r), (1 + s + s * s / 3) * std::exp(-s), 1e-15);
  EXPECT_LT(tune::detail::matern52(2.0), tune::detail::matern52(1.0));
}

TEST(GaussianProcess, InterpolatesSmoothFunctionAndFitsRelevantLengthScales) {
  // y depends on x0 only; x1 is irrelevant, so its fitted length scale should be much longer.
  Rng rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> x, y;
  for (int i = 0; i < 30; ++i) {
    double a = u(rng), b = u(rng);
    x.push_back(a), x.push_back(b);
    y.push_back(std::sin(6 * a));
  }
  tune::detail::GaussianProcess gp;
  gp.fit(x, y, 2, rng);
  EXPECT_GT(gp.length_scales()[1], 3 * gp.length_scales()[0]);
  double max_err = 0;
  for (int i = 0; i < 50; ++i) {
    double p[2] = {0.05 + 0.9 * i / 49.0, u(rng)}, m, s;
    gp.predict(p, m, s);
    max_err = std::max(max_err, std::abs(m - std::sin(6 * p[0])));
    EXPECT_GT(s, 0);
  }
  EXPECT_LT(max_err, 0.05);
  // The likelihood of the fitted hyperparameters beats a clearly wrong setting.
  std::vector<double> fitted{std::log(gp.length_scales()[0]), std::log(gp.length_scales()[1]), 0.0, std::log(1e-4)};
  std::vector<double> wrong{std::log(0.01), std::log(0.01), 0.0, std::log(1e-4)};
  EXPECT_LT(gp.nll(fitted), gp.nll(wrong));
}

TEST(Optimizers, UnknownNameSuggestsNearest) {
  SearchSpace s(std::vector<ParamSpec>{ParamSpec::real("x", 0, 1)});
  try {
    make_optimizer("tpee", s);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'tpe'"), std::string::npos) << e.what();
  }
}

TEST(Optimizers, SameSeedSameSuggestions) {
  TestFunction f = test_function("branin");
  for (const char* a : {"random", "gp", "tpe"}) EXPECT_EQ(regret_trace(f, a, 15, 5), regret_trace(f, a, 15, 5)) << a;
}

TEST(Optimizers, SuggestionsRespectConditionalAndCategoricalParameters) {
  SearchSpace s(std::vector<ParamSpec>{ParamSpec::categorical("opt", {"sgd", "adam"}), ParamSpec::integer("n", 1, 5),
                                       ParamSpec::real("wd", 1e-5, 1e-1, true).when("opt", {"adam"})});
  // Loss: adam with wd near 1e-3 and n = 4 is best.
  auto loss = [](const json& p) {
    double l = std::abs(p["n"].get<int>() - 4);
    if (p["opt"] == "adam") l += std::abs(std::log10(p["wd"].get<double>()) + 3);
    else l += 3;
    return l;
  };
  for (const char* a : {"gp", "tpe"}) {
    auto opt = make_optimizer(a, s);
    Rng rng(11);
    std::vector<Observation> done;
    double best = 1e9;
    for (int i = 0; i < 30; ++i) {
      json p = opt->suggest(done, {}, rng);
      ASSERT_EQ(p.contains("wd"), p["opt"] == "adam") << a << " " << p.dump();
      ASSERT_TRUE(p["n"].is_number_integer());
      s.encode(p);  // within bounds
      done.push_back({p, loss(p)});
      best = std::min(best, loss(p));
    }
    EXPECT_LT(best, 0.3) << a;
  }
}

TEST(Optimizers, GpWithPendingTrialsProposesDistinctPoints) {
  TestFunction f = test_function("branin");
  auto opt = make_optimizer("gp", f.space);
  Rng rng(2);
  std::vector<Observation> done;
  for (int i = 0; i < 10; ++i) {
    json p = f.space.sample(rng);
    done.push_back({p, f.f(test_point(f, p))});
  }
  Rng r1(9), r2(9);
  json a = opt->suggest(done, {}, r1);
  json b = opt->suggest(done, {a}, r2);
  const double dx = a["x0"].get<double>() - b["x0"].get<double>(), dy = a["x1"].get<double>() - b["x1"].get<double>();
  EXPECT_GT(std::hypot(dx / 15, dy / 15), 0.02) << a.dump() << " " << b.dump();
}

TEST(Optimizers, GpBeatsRandomOnBranin) {
  const double random = median_final_regret("branin", "random", 30, 7);
  const double gp = median_final_regret("branin", "gp", 30, 7);
  EXPECT_LT(gp, 0.5 * random) << "gp " << gp << " random " << random;
  EXPECT_LT(gp, 0.05);
}

TEST(Optimizers, TpeBeatsRandomOverManySeeds) {
  // TPE's gain is smaller and noisier than GP's: compare medians over enough seeds.
  for (const char* fn : {"branin", "hartmann6"}) {
    const double random = median_final_regret(fn, "random", 50, 21);
    const double tpe = median_final_regret(fn, "tpe", 50, 21);
    EXPECT_LT(tpe, 0.8 * random) << fn << ": tpe " << tpe << " random " << random;
  }
}

TEST(Optimizers, GpBeatsRandomOnHartmann6) {
  const double random = median_final_regret("hartmann6", "random", 40, 5);
  const double gp = median_final_regret("hartmann6", "gp", 40, 5);
  EXPECT_LT(gp, 0.5 * random) << "gp " << gp << " random " << random;
}

TEST(TestFunctions, KnownMinimaAreAttained) {
  TestFunction b = test_function("branin");
  EXPECT_NEAR(b.f({M_PI, 2.275}), b.minimum, 1e-6);
  EXPECT_NEAR(b.f({-M_PI, 12.275}), b.minimum, 1e-6);
  TestFunction h = test_function("hartmann6");
  EXPECT_NEAR(h.f({0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573}), h.minimum, 1e-5);
  TestFunction r = test_function("rosenbrock4-noisy");
  EXPECT_EQ(r.f({1, 1, 1, 1}), 0.0);
  EXPECT_EQ(r.noise_sd, 1.0);
  EXPECT_THROW(test_function("ackley"), ConfigError);
}
