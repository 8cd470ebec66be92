#include "bluewhale/tune/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>

#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "bluewhale/tune/tuner.h"

namespace bluewhale::tune {
namespace {

bool usable(const Trial& t, std::size_t m) {
  if (t.status != TrialStatus::kComplete || t.values.size() < m) return false;
  for (std::size_t i = 0; i < m; ++i)
    if (!std::isfinite(t.values[i])) return false;
  return true;
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (std::size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * static_cast<double>(i + j);  // ties share the mean rank
    i = j + 1;
  }
  return r;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string num(double v, const char* fmt = "%.4g") {
  if (!std::isfinite(v)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// Layout of every x/y plot, in logical (SVG) pixels: W x H with the frame inset by L, R, T, B. Bar
// charts are W wide with one kRow-high row per bar.
constexpr double W = 560, H = 300, L = 60, R = 15, T = 15, B = 40, kRow = 22;
// PNG images carry the title above the plot in a band this high.
constexpr double kTitleBand = 22;
// Colours of the frame and the bars, the same in both renderers (marks carry their own).
constexpr const char* kFrameFill = "#fafafa";
constexpr const char* kFrameStroke = "#999";
constexpr const char* kBarColor = "#48a";

PlotFrame frame_of(const ReportPlot& p, double top) {
  return PlotFrame{L, top + T, W - L - R, H - T - B, p.x0, p.x1, p.y0, p.y1};
}

double bar_chart_height(const ReportPlot& p) { return kRow * static_cast<double>(p.bars.size()) + 10; }

// An x/y plot over [x0, x1] x [y0, y1]; an empty range is widened so every mark has a place.
ReportPlot xy_plot(std::string name, std::string title, std::string caption, std::string xlabel, std::string ylabel,
                   double x0, double x1, double y0, double y1, bool x_integers) {
  ReportPlot p;
  p.name = std::move(name), p.title = std::move(title), p.caption = std::move(caption);
  p.x_label = std::move(xlabel), p.y_label = std::move(ylabel);
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) y0 -= 0.5, y1 += 0.5;
  p.x0 = x0, p.x1 = x1, p.y0 = y0, p.y1 = y1;
  p.x_ticks = nice_ticks(x0, x1, 6, x_integers);
  p.y_ticks = nice_ticks(y0, y1, 5);
  return p;
}

PlotSeries dots(const char* color, double r = 3.5) { return {PlotSeries::Kind::kDots, color, r, {}}; }
PlotSeries line(const char* color, double width = 2) { return {PlotSeries::Kind::kLine, color, width, {}}; }

std::string svg_xy(const ReportPlot& p) {
  const PlotFrame f = frame_of(p, 0);
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(W) + "' height='" + num(H) +
                  "' font-family='sans-serif' font-size='11'>";
  s += "<rect x='" + num(L) + "' y='" + num(T) + "' width='" + num(W - L - R) + "' height='" + num(H - T - B) +
       "' fill='" + kFrameFill + "' stroke='" + kFrameStroke + "'/>";
  // Ticks as Canvas::axes draws them: marks outside the frame, labels below / left of them.
  for (const Tick& t : p.x_ticks) {
    const std::string x = num(f.px(t.value), "%.1f");
    s += "<line x1='" + x + "' y1='" + num(H - B) + "' x2='" + x + "' y2='" + num(H - B + kTickLength) +
         "' stroke='" + kFrameStroke + "'/><text x='" + x + "' y='" + num(H - B + kXTickLabelDrop) + "' text-anchor='middle'>" +
         esc(t.label) + "</text>";
  }
  for (const Tick& t : p.y_ticks) {
    const double y = f.py(t.value);
    s += "<line x1='" + num(L - kTickLength) + "' y1='" + num(y, "%.1f") + "' x2='" + num(L) + "' y2='" + num(y, "%.1f") +
         "' stroke='" + kFrameStroke + "'/><text x='" + num(L - kYTickLabelGap) + "' y='" + num(y + kTextAscent / 2, "%.1f") +
         "' text-anchor='end'>" + esc(t.label) + "</text>";
  }
  s += "<text x='" + num((L + W - R) / 2) + "' y='" + num(H - 8) + "' text-anchor='middle'>" + esc(p.x_label) + "</text>";
  s += "<text x='14' y='" + num((T + H - B) / 2) + "' text-anchor='middle' transform='rotate(-90 14 " +
       num((T + H - B) / 2) + ")'>" + esc(p.y_label) + "</text>";
  for (const PlotSeries& ser : p.series) {
    if (ser.kind == PlotSeries::Kind::kDots) {
      for (const auto& [x, y] : ser.points)
        s += "<circle cx='" + num(f.px(x), "%.1f") + "' cy='" + num(f.py(y), "%.1f") + "' r='" + num(ser.size, "%.1f") +
             "' fill='" + ser.color + "'/>";
    } else if (!ser.points.empty()) {
      std::string d;
      for (const auto& [x, y] : ser.points) d += (d.empty() ? "M" : " L") + num(f.px(x), "%.1f") + " " + num(f.py(y), "%.1f");
      s += "<path d='" + d + "' fill='none' stroke='" + ser.color + "' stroke-width='" + num(ser.size, "%.1f") + "'/>";
    }
  }
  return s + "</svg>";
}

std::string svg_bars(const ReportPlot& p) {
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(W) + "' height='" + num(bar_chart_height(p)) +
                  "' font-family='sans-serif' font-size='11'>";
  for (std::size_t i = 0; i < p.bars.size(); ++i) {
    const double y = 5 + kRow * static_cast<double>(i), v = p.bars[i].value;
    s += "<text x='170' y='" + num(y + 14) + "' text-anchor='end'>" + esc(p.bars[i].label) + "</text>";
    s += "<rect x='176' y='" + num(y + 3) + "' width='" + num(v * (W - 240), "%.1f") + "' height='14' fill='" + kBarColor + "'/>";
    s += "<text x='" + num(180 + v * (W - 240), "%.1f") + "' y='" + num(y + 14) + "'>" + num(v, "%.2f") + "</text>";
  }
  return s + "</svg>";
}

}  // namespace

std::vector<double> parameter_importances(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives,
                                          const std::vector<Trial>& trials) {
  std::vector<double> imp(space.size(), 0.0);
  for (std::size_t p = 0; p < space.size(); ++p) {
    const ParamSpec& spec = space.params()[p];
    std::vector<double> xs, ys;
    std::map<std::string, std::vector<double>> groups;
    for (const Trial& t : trials) {
      if (!usable(t, objectives.size())) continue;
      auto it = t.params.find(spec.name);
      if (it == t.params.end()) continue;
      const double loss = objectives[0].loss(t.values[0]);
      if (spec.type == ParamType::kCategorical) groups[it->is_string() ? it->get<std::string>() : it->dump()].push_back(loss);
      else if (it->is_number()) xs.push_back(space.to_unit(p, it->get<double>())), ys.push_back(loss);
      if (spec.type == ParamType::kCategorical) ys.push_back(loss);
    }
    if (ys.size() < 3) continue;
    if (spec.type == ParamType::kCategorical) {
      const double mean = std::accumulate(ys.begin(), ys.end(), 0.0) / static_cast<double>(ys.size());
      double total = 0, between = 0;
      for (double y : ys) total += (y - mean) * (y - mean);
      for (const auto& [k, g] : groups) {
        const double gm = std::accumulate(g.begin(), g.end(), 0.0) / static_cast<double>(g.size());
        between += static_cast<double>(g.size()) * (gm - mean) * (gm - mean);
      }
      imp[p] = total > 0 ? std::sqrt(between / total) : 0.0;
    } else {
      imp[p] = std::abs(pearson(ranks(xs), ranks(ys)));
    }
  }
  const double s = std::accumulate(imp.begin(), imp.end(), 0.0);
  if (s > 0)
    for (auto& v : imp) v /= s;
  return imp;
}

std::vector<double> convergence(const std::vector<ObjectiveSpec>& objectives, const std::vector<Trial>& trials) {
  std::vector<double> out;
  double best = std::numeric_limits<double>::quiet_NaN();
  for (const Trial& t : trials) {
    if (usable(t, objectives.size()) && (std::isnan(best) || objectives[0].better(t.values[0], best))) best = t.values[0];
    out.push_back(best);
  }
  return out;
}

std::vector<ReportPlot> report_plots(const json& study, const std::vector<Trial>& trials) {
  const auto objectives = objectives_from_json(study.value("objectives", json::array()));
  const SearchSpace space = SearchSpace::from_json(study.value("space", json::array()));
  const auto& o0 = objectives[0];
  std::vector<ReportPlot> plots;
  // Convergence.
  {
    const auto conv = convergence(objectives, trials);
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& t : trials)
      if (usable(t, objectives.size())) lo = std::min(lo, t.values[0]), hi = std::max(hi, t.values[0]);
    if (std::isfinite(lo)) {
      ReportPlot p = xy_plot("convergence", "Convergence", "(dots: trials, line: best so far)", "trial", o0.name, 1,
                             std::max<double>(2, static_cast<double>(trials.size())), lo, hi, true);
      PlotSeries all = dots("#9ab"), best = line("#c33");
      for (std::size_t i = 0; i < trials.size(); ++i) {
        if (usable(trials[i], objectives.size())) all.points.emplace_back(static_cast<double>(i + 1), trials[i].values[0]);
        if (!std::isnan(conv[i])) best.points.emplace_back(static_cast<double>(i + 1), conv[i]);
      }
      p.series = {std::move(all), std::move(best)};
      plots.push_back(std::move(p));
    }
  }
  // Pareto front.
  if (objectives.size() >= 2) {
    double xl = std::numeric_limits<double>::infinity(), xh = -xl, yl = xl, yh = -xl;
    for (const auto& t : trials)
      if (usable(t, objectives.size()))
        xl = std::min(xl, t.values[1]), xh = std::max(xh, t.values[1]), yl = std::min(yl, t.values[0]),
        yh = std::max(yh, t.values[0]);
    if (std::isfinite(xl)) {
      ReportPlot p = xy_plot("pareto_front", "Pareto front", "(red)", objectives[1].name, o0.name, xl, xh, yl, yh, false);
      PlotSeries all = dots("#9ab"), front_dots = dots("#c33", 5), front_line = line("#c33", 1);
      for (const auto& t : trials)
        if (usable(t, objectives.size())) all.points.emplace_back(t.values[1], t.values[0]);
      auto front = pareto_front(trials, objectives);
      std::sort(front.begin(), front.end(), [](const Trial& a, const Trial& b) { return a.values[1] < b.values[1]; });
      for (const auto& t : front) front_dots.points.emplace_back(t.values[1], t.values[0]);
      front_line.points = front_dots.points;
      p.series = {std::move(all), std::move(front_dots), std::move(front_line)};
      plots.push_back(std::move(p));
    }
  }
  // Importances.
  {
    const auto imp = parameter_importances(space, objectives, trials);
    ReportPlot p;
    p.name = "importances", p.title = "Parameter importances", p.caption = "(rank correlation with " + o0.name + ")";
    p.bar_chart = true;
    for (std::size_t i = 0; i < imp.size(); ++i) p.bars.push_back({space.params()[i].name, imp[i]});
    plots.push_back(std::move(p));
  }
  // Learning curves.
  {
    int64_t smax = 1;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& t : trials)
      for (auto [st, v] : t.intermediate)
        if (std::isfinite(v)) smax = std::max(smax, st), lo = std::min(lo, v), hi = std::max(hi, v);
    if (std::isfinite(lo)) {
      ReportPlot p = xy_plot("learning_curves", "Learning curves", "(grey: stopped early)", "step", o0.name, 0,
                             static_cast<double>(smax), lo, hi, true);
      for (const auto& t : trials) {
        PlotSeries c = line(t.status == TrialStatus::kPruned ? "#bbb" : "#48a", 1.2);
        for (auto [st, v] : t.intermediate)
          if (std::isfinite(v)) c.points.emplace_back(static_cast<double>(st), v);
        p.series.push_back(std::move(c));
      }
      plots.push_back(std::move(p));
    }
  }
  return plots;
}

std::string plot_svg(const ReportPlot& plot) { return plot.bar_chart ? svg_bars(plot) : svg_xy(plot); }

Image plot_image(const ReportPlot& p, int scale) {
  const Rgb ink{0, 0, 0};  // SVG's default text colour
  const double height = (p.bar_chart ? bar_chart_height(p) : H) + kTitleBand;
  Canvas c(W, height, scale);
  c.text(8, 15, p.title + " " + p.caption, ink);
  if (p.bar_chart) {
    for (std::size_t i = 0; i < p.bars.size(); ++i) {
      const double y = kTitleBand + 5 + kRow * static_cast<double>(i), v = p.bars[i].value;
      c.text(170, y + 14, p.bars[i].label, ink, TextAnchor::kEnd);
      c.fill_rect(176, y + 3, v * (W - 240), 14, parse_color(kBarColor));
      c.text(180 + v * (W - 240), y + 14, num(v, "%.2f"), ink);
    }
    return c.image();
  }
  const PlotFrame f = frame_of(p, kTitleBand);
  c.axes(f, p.x_ticks, p.y_ticks, parse_color(kFrameFill), parse_color(kFrameStroke), ink);
  c.text((L + W - R) / 2, kTitleBand + H - 8, p.x_label, ink, TextAnchor::kMiddle);
  c.text(14, kTitleBand + (T + H - B) / 2, p.y_label, ink, TextAnchor::kMiddle, true);
  for (const PlotSeries& ser : p.series) {
    const Rgb color = parse_color(ser.color);
    std::vector<std::pair<double, double>> pts;
    for (const auto& [x, y] : ser.points) pts.emplace_back(f.px(x), f.py(y));
    if (ser.kind == PlotSeries::Kind::kDots)
      for (const auto& [x, y] : pts) c.circle(x, y, ser.size, color);
    else
      c.polyline(pts, color, ser.size);
  }
  return c.image();
}

std::vector<fs::path> write_report_pngs(const json& study, const std::vector<Trial>& trials, const fs::path& dir,
                                        int scale) {
  BW_CHECK(scale >= 1 && scale <= kMaxPlotScale, ConfigError, "PNG scale must be 1..", kMaxPlotScale, ", got ", scale);
  std::error_code ec;
  fs::create_directories(dir, ec);
  BW_CHECK(!ec, IoError, "cannot create directory ", dir.string(), ": ", ec.message());
  std::vector<fs::path> written;
  for (const ReportPlot& p : report_plots(study, trials)) {
    const fs::path path = dir / (p.name + ".png");
    Image img(1, 1);
    try {
      img = plot_image(p, scale);
    } catch (const ConfigError& e) {
      BW_THROW(ConfigError, "plot ", p.name, ": ", e.what());  // say which plot was too large
    }
    write_png(path, img);
    written.push_back(path);
  }
  return written;
}

std::string html_report(const json& study, const std::vector<Trial>& trials) {
  const auto objectives = objectives_from_json(study.value("objectives", json::array()));
  const SearchSpace space = SearchSpace::from_json(study.value("space", json::array()));
  std::string h =
      "<!DOCTYPE html><html><head><meta charset='utf-8'><title>BlueWhale tune report</title><style>"
      "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#eee}"
      ".fig{display:inline-block;margin:0 1em 1em 0;vertical-align:top}</style></head><body>";
  h += "<h1>Tuning report</h1>";
  int counts[5] = {0, 0, 0, 0, 0};
  for (const auto& t : trials) ++counts[static_cast<int>(t.status)];
  h += "<p>" + std::to_string(trials.size()) + " trials: " + std::to_string(counts[1]) + " complete, " +
       std::to_string(counts[2]) + " pruned, " + std::to_string(counts[3]) + " failed, " + std::to_string(counts[0]) +
       " running, " + std::to_string(counts[4]) + " interrupted. Algorithm: " + esc(study.value("algorithm", "?")) +
       ". Objectives:";
  for (const auto& o : objectives) h += " " + std::string(o.direction == Direction::kMaximize ? "max " : "min ") + esc(o.name);
  h += ".</p>";
  auto best = best_trial(trials, objectives);
  if (best) {
    h += "<h2>Best configuration (trial " + std::to_string(best->id) + ")</h2><table><tr><th>parameter</th><th>value</th></tr>";
    for (const auto& [k, v] : best->params.items())
      h += "<tr><td>" + esc(k) + "</td><td>" + esc(v.is_string() ? v.get<std::string>() : v.dump()) + "</td></tr>";
    for (std::size_t i = 0; i < objectives.size(); ++i)
      h += "<tr><th>" + esc(objectives[i].name) + "</th><th>" + num(best->values[i], "%.6g") + "</th></tr>";
    h += "</table>";
  }
  h += "<h2>Plots</h2>";
  for (const ReportPlot& p : report_plots(study, trials))
    h += "<div class='fig'><b>" + esc(p.title) + "</b> " + esc(p.caption) + "<br>" + plot_svg(p) + "</div>";
  // Trial table.
  h += "<h2>Trials</h2><table><tr><th>id</th><th>status</th><th>seconds</th>";
  for (const auto& p : space.params()) h += "<th>" + esc(p.name) + "</th>";
  for (const auto& o : objectives) h += "<th>" + esc(o.name) + "</th>";
  h += "<th>error</th></tr>";
  for (const auto& t : trials) {
    h += "<tr><td>" + std::to_string(t.id) + "</td><td>" + status_name(t.status) + "</td><td>" + num(t.seconds, "%.1f") + "</td>";
    for (const auto& p : space.params()) {
      auto it = t.params.find(p.name);
      h += "<td>" + (it == t.params.end() ? std::string() : esc(it->is_string() ? it->get<std::string>() : num(it->get<double>()))) + "</td>";
    }
    for (std::size_t i = 0; i < objectives.size(); ++i)
      h += "<td>" + (i < t.values.size() ? num(t.values[i], "%.5g") : std::string()) + "</td>";
    h += "<td>" + esc(t.error) + "</td></tr>";
  }
  return h + "</table></body></html>\n";
}

}  // namespace bluewhale::tune
