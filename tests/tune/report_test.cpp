#include "bluewhale/tune/report.h"

#include <gtest/gtest.h>

#include <cmath>

#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "bluewhale/tune/tuner.h"
#include "test_util.h"
#include "tune/png_reader.h"

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

namespace {

json two_objective_study() {
  return study_json(space(), {{"loss", Direction::kMinimize}, {"seconds", Direction::kMinimize}}, {{"algorithm", "gp"}});
}

std::vector<std::string> names(const std::vector<ReportPlot>& plots) {
  std::vector<std::string> out;
  for (const auto& p : plots) out.push_back(p.name);
  return out;
}

int count_color(const Image& img, Rgb c) {
  int n = 0;
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) {
      const uint8_t* p = img.pixel(x, y);
      n += p[0] == c.r && p[1] == c.g && p[2] == c.b;
    }
  return n;
}

}  // namespace

TEST(ReportPlots, AreComputedOnceAndTheHtmlShowsExactlyThem) {
  const auto plots = report_plots(two_objective_study(), trials(15));
  EXPECT_EQ(names(plots), (std::vector<std::string>{"convergence", "pareto_front", "importances", "learning_curves"}));
  const std::string html = html_report(two_objective_study(), trials(15));
  for (const auto& p : plots) {
    EXPECT_NE(html.find(plot_svg(p)), std::string::npos) << p.name;
    EXPECT_NE(html.find("<b>" + p.title + "</b>"), std::string::npos) << p.name;
  }
  // Convergence: one dot per complete trial (2 of 15 failed), the best-so-far line over all 15.
  ASSERT_EQ(plots[0].series.size(), 2u);
  EXPECT_EQ(plots[0].series[0].points.size(), 13u);
  EXPECT_EQ(plots[0].series[1].points.size(), 15u);
  EXPECT_FALSE(plots[0].x_ticks.empty());
  EXPECT_FALSE(plots[0].y_ticks.empty());
  for (const auto& t : plots[0].y_ticks) {
    EXPECT_GE(t.value, plots[0].y0);
    EXPECT_LE(t.value, plots[0].y1);
    EXPECT_NE(plot_svg(plots[0]).find(">" + t.label + "</text>"), std::string::npos) << t.label;
  }
  // Importances: one bar per parameter, the same numbers as parameter_importances.
  const auto imp = parameter_importances(space(), objectives_from_json(two_objective_study()["objectives"]), trials(15));
  ASSERT_EQ(plots[2].bars.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(plots[2].bars[i].value, imp[i]);
  EXPECT_EQ(plots[2].bars[2].label, "opt");
  // One objective: no Pareto front; no trials: only the importances, all zero.
  EXPECT_EQ(names(report_plots(study_json(space(), {{"loss", Direction::kMinimize}}, {}), trials(15))),
            (std::vector<std::string>{"convergence", "importances", "learning_curves"}));
  EXPECT_EQ(names(report_plots(two_objective_study(), {})), (std::vector<std::string>{"importances"}));
}

TEST(ReportPngs, ExistDecodeAndHaveTheLayoutSizeTimesTheScale) {
  bluewhale::testing::TempDir dir;
  for (int scale : {1, 3}) {
    const fs::path out = dir / ("plots" + std::to_string(scale));
    const auto written = write_report_pngs(two_objective_study(), trials(15), out, scale);
    const auto plots = report_plots(two_objective_study(), trials(15));
    ASSERT_EQ(written.size(), plots.size());
    for (std::size_t i = 0; i < plots.size(); ++i) {
      EXPECT_EQ(written[i], out / (plots[i].name + ".png"));
      const auto png = bluewhale::testing::decode_png(read_file(written[i]));
      // 560 x 300 logical pixels plus a 22-pixel title band; the bar chart is 22 per parameter + 10.
      EXPECT_EQ(png.width, 560 * scale) << plots[i].name;
      EXPECT_EQ(png.height, (plots[i].bar_chart ? 3 * 22 + 10 + 22 : 322) * scale) << plots[i].name;
      EXPECT_EQ(png.channels, 3);
      EXPECT_EQ(png.pixels, plot_image(plots[i], scale).data()) << plots[i].name;
    }
  }
}

TEST(ReportPngs, APlotWithDataDiffersFromAnEmptyOne) {
  const auto plots = report_plots(two_objective_study(), trials(15));
  for (const ReportPlot& p : plots) {
    ReportPlot empty = p;
    for (auto& s : empty.series) s.points.clear();
    for (auto& b : empty.bars) b.value = 0;
    EXPECT_NE(plot_image(p, 1), plot_image(empty, 1)) << p.name;
  }
  // The Pareto front's red markers and the importance bars are there only with data.
  const Rgb red = parse_color("#c33"), bar = parse_color("#48a");
  EXPECT_GT(count_color(plot_image(plots[1], 2), red), 50);
  const auto none = report_plots(two_objective_study(), {});
  EXPECT_GT(count_color(plot_image(plots[2], 2), bar), 1000);
  EXPECT_EQ(count_color(plot_image(none[0], 2), bar), 0);
  // A complete trial's marker is drawn where the frame maps it (frame: x 60..545, y 15..260 below the
  // 22-pixel title band).
  const ReportPlot& front = plots[1];
  const auto& [fx, fy] = front.series[1].points.front();
  const double X = 60 + (fx - front.x0) / (front.x1 - front.x0) * 485, Y = 22 + 15 + (1 - (fy - front.y0) / (front.y1 - front.y0)) * 245;
  const Image img = plot_image(front, 2);
  const uint8_t* px = img.pixel(static_cast<int>(X * 2), static_cast<int>(Y * 2));
  EXPECT_EQ((Rgb{px[0], px[1], px[2]}), red);
}

TEST(ReportPngs, BadScaleOrUnwritableDirectoryIsAClearError) {
  bluewhale::testing::TempDir dir;
  EXPECT_THROW(write_report_pngs(two_objective_study(), trials(5), dir / "p", 0), ConfigError);
  EXPECT_THROW(write_report_pngs(two_objective_study(), trials(5), dir / "p", kMaxPlotScale + 1), ConfigError);
  EXPECT_THROW(plot_image(report_plots(two_objective_study(), trials(5))[0], 9), ConfigError);
  bluewhale::testing::write_text(dir / "file", "x");
  try {
    write_report_pngs(two_objective_study(), trials(5), dir / "file" / "plots", 1);
    ADD_FAILURE() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("file/plots"), std::string::npos) << e.what();
  }
}
