#include "bluewhale/tune/report.h"

#include <gtest/gtest.h>

#include <cmath>

#include "bluewhale/tune/tuner.h"

using namespace bluewhale;
using namespace bluewhale::tune;

namespace {

SearchSpace space() {
  return SearchSpace(std::vector<ParamSpec>{ParamSpec::real("x", 0, 1), ParamSpec::real("noise", 0, 1),
                                            ParamSpec::categorical("opt", {"a", "b<script>"})});
}

std::vector<Trial> trials(int n) {
  Rng rng(4);
  std::vector<Trial> out;
  SearchSpace s = space();
  for (int i = 0; i < n; ++i) {
    Trial t;
    t.id = i + 1;
    t.params = s.sample(rng);
    const double x = t.params["x"].get<double>();
    // The loss falls with x and is 0.5 higher for opt "a"; "noise" does nothing.
    t.values = {2.0 - x + (t.params["opt"] == "a" ? 0.5 : 0.0), static_cast<double>(i)};
    t.status = i % 7 == 3 ? TrialStatus::kFailed : TrialStatus::kComplete;
    if (t.status == TrialStatus::kFailed) t.values.clear();
    t.intermediate = {{10, t.values.empty() ? 1.0 : t.values[0] + 0.3}, {20, t.values.empty() ? 1.0 : t.values[0]}};
    out.push_back(t);
  }
  return out;
}

}  // namespace

TEST(Importances, RankTheParametersThatMatter) {
  std::vector<ObjectiveSpec> obj{{"loss", Direction::kMinimize}};
  const auto imp = parameter_importances(space(), obj, trials(60));
  ASSERT_EQ(imp.size(), 3u);
  EXPECT_NEAR(imp[0] + imp[1] + imp[2], 1.0, 1e-12);
  EXPECT_GT(imp[0], 2 * imp[1]);
  EXPECT_GT(imp[2], 2 * imp[1]);
  EXPECT_LT(imp[1], 0.15);
  // Too few trials: no claim.
  const auto few = parameter_importances(space(), obj, trials(2));
  EXPECT_EQ(few, (std::vector<double>{0, 0, 0}));
}

TEST(Convergence, IsTheBestSoFarInTheObjectivesDirection) {
  auto t = trials(20);
  std::vector<ObjectiveSpec> mn{{"loss", Direction::kMinimize}}, mx{{"loss", Direction::kMaximize}};
  const auto c = convergence(mn, t), d = convergence(mx, t);
  ASSERT_EQ(c.size(), 20u);
  double best = 1e9, worst = -1e9;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i].status == TrialStatus::kComplete) best = std::min(best, t[i].values[0]), worst = std::max(worst, t[i].values[0]);
    EXPECT_EQ(c[i], best);
    EXPECT_EQ(d[i], worst);
  }
}

TEST(HtmlReport, IsSelfContainedWithPlotsAndEscapedText) {
  std::vector<ObjectiveSpec> obj{{"loss", Direction::kMinimize}, {"seconds", Direction::kMinimize}};
  const std::string html = html_report(study_json(space(), obj, {{"algorithm", "gp"}}), trials(15));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("Convergence"), std::string::npos);
  EXPECT_NE(html.find("Pareto front"), std::string::npos);
  EXPECT_NE(html.find("Parameter importances"), std::string::npos);
  EXPECT_NE(html.find("Learning curves"), std::string::npos);
  std::size_t svgs = 0;
  for (std::size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) ++svgs;
  EXPECT_EQ(svgs, 4u);
  EXPECT_EQ(html.find("<script>"), std::string::npos);  // the choice "b<script>" is escaped
  EXPECT_NE(html.find("b&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);      // nothing loaded from outside
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_NE(html.find("15 trials: 13 complete, 0 pruned, 2 failed"), std::string::npos) << html.substr(0, 600);
}
