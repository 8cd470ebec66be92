// Study analysis and the HTML report of `bluewhale tune report`.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "bluewhale/tune/plot.h"
#include "bluewhale/tune/png.h"
#include "bluewhale/tune/space.h"
#include "bluewhale/tune/store.h"

namespace bluewhale::tune {

// Importance of each parameter for the first objective over the complete trials, normalised to sum 1
// (all zero with fewer than 3 usable trials): |Spearman correlation| between a numeric parameter's unit
// coordinate and the loss, the correlation ratio (eta, between-group over total spread) for a categorical
// one. A first look, not a causal measure: correlated parameters share their importance.
std::vector<double> parameter_importances(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives,
                                          const std::vector<Trial>& trials);

// Best value of the first objective after each trial (in id order), NaN before the first usable trial.
std::vector<double> convergence(const std::vector<ObjectiveSpec>& objectives, const std::vector<Trial>& trials);

// One layer of marks of an x/y plot, in data coordinates, drawn in order.
struct PlotSeries {
  enum class Kind { kLine, kDots };
  Kind kind = Kind::kLine;
  std::string color;  // "#rgb" or "#rrggbb"
  double size = 2;    // line width or dot radius, in logical (SVG) pixels
  std::vector<std::pair<double, double>> points;
};

// One bar of a horizontal bar chart: a label and a value in [0, 1].
struct PlotBar {
  std::string label;
  double value = 0;
};

// A plot of the report, computed once from the study and drawn both as inline SVG (html_report) and as
// PNG (plot_image, write_report_pngs), so the two always show the same thing.
struct ReportPlot {
  std::string name;     // file stem: convergence, pareto_front, importances, learning_curves
  std::string title;    // "Convergence"
  std::string caption;  // "(dots: trials, line: best so far)"; plain text, escaped by the HTML renderer
  bool bar_chart = false;
  // x/y plots: axis labels, data range (never empty: a single value is widened), ticks, marks.
  std::string x_label, y_label;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  std::vector<Tick> x_ticks, y_ticks;
  std::vector<PlotSeries> series;
  // Bar charts: one row per bar.
  std::vector<PlotBar> bars;
};

// The plots of the report, in page order: convergence (when a trial completed), Pareto front (two or
// more objectives and a completed trial), parameter importances (always), learning curves (when trials
// reported intermediate values). `study` is TrialStore::study().
std::vector<ReportPlot> report_plots(const json& study, const std::vector<Trial>& trials);

// The plot as a standalone SVG element (logical pixels = SVG pixels), without its title.
std::string plot_svg(const ReportPlot& plot);

// The plot as an RGB image with its title and caption above it, at `scale` pixels per logical pixel
// (1..kMaxPlotScale, ConfigError otherwise).
Image plot_image(const ReportPlot& plot, int scale);

// Writes dir/<name>.png for every plot of report_plots() (creating dir), each atomically; returns the
// paths in page order. IoError when dir cannot be created or a file cannot be written.
std::vector<std::filesystem::path> write_report_pngs(const json& study, const std::vector<Trial>& trials,
                                                     const std::filesystem::path& dir, int scale = 2);

// A self-contained HTML page (no external resources): summary, best configuration, convergence curve,
// Pareto front (two or more objectives), parameter importances, learning curves and the trial table,
// plots (report_plots) as inline SVG. `study` is TrialStore::study().
std::string html_report(const json& study, const std::vector<Trial>& trials);

}  // namespace bluewhale::tune
