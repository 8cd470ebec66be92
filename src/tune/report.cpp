#include "bluewhale/tune/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>

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

// A minimal SVG plot: axes with min/max labels, then the caller's marks in data coordinates.
struct Plot {
  double x0, x1, y0, y1;
  std::string body;
  static constexpr double W = 560, H = 300, L = 60, R = 15, T = 15, B = 40;
  Plot(double xa, double xb, double ya, double yb) : x0(xa), x1(xb), y0(ya), y1(yb) {
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y0 -= 0.5, y1 += 0.5;
  }
  double px(double x) const { return L + (x - x0) / (x1 - x0) * (W - L - R); }
  double py(double y) const { return T + (1 - (y - y0) / (y1 - y0)) * (H - T - B); }
  void dot(double x, double y, const char* color, double r = 3.5) {
    body += "<circle cx='" + num(px(x), "%.1f") + "' cy='" + num(py(y), "%.1f") + "' r='" + num(r, "%.1f") + "' fill='" +
            color + "'/>";
  }
  void line(const std::vector<std::pair<double, double>>& pts, const char* color, double width = 2) {
    if (pts.empty()) return;
    std::string d;
    for (const auto& [x, y] : pts) d += (d.empty() ? "M" : " L") + num(px(x), "%.1f") + " " + num(py(y), "%.1f");
    body += "<path d='" + d + "' fill='none' stroke='" + color + "' stroke-width='" + num(width, "%.1f") + "'/>";
  }
  std::string svg(const std::string& xlabel, const std::string& ylabel) const {
    std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(W) + "' height='" + num(H) +
                    "' font-family='sans-serif' font-size='11'>";
    s += "<rect x='" + num(L) + "' y='" + num(T) + "' width='" + num(W - L - R) + "' height='" + num(H - T - B) +
         "' fill='#fafafa' stroke='#999'/>";
    s += "<text x='" + num(L) + "' y='" + num(H - B + 14) + "'>" + num(x0) + "</text>";
    s += "<text x='" + num(W - R) + "' y='" + num(H - B + 14) + "' text-anchor='end'>" + num(x1) + "</text>";
    s += "<text x='" + num(L - 4) + "' y='" + num(H - B) + "' text-anchor='end'>" + num(y0) + "</text>";
    s += "<text x='" + num(L - 4) + "' y='" + num(T + 10) + "' text-anchor='end'>" + num(y1) + "</text>";
    s += "<text x='" + num((L + W - R) / 2) + "' y='" + num(H - 8) + "' text-anchor='middle'>" + esc(xlabel) + "</text>";
    s += "<text x='14' y='" + num((T + H - B) / 2) + "' text-anchor='middle' transform='rotate(-90 14 " +
         num((T + H - B) / 2) + ")'>" + esc(ylabel) + "</text>";
    return s + body + "</svg>";
  }
};

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

std::string html_report(const json& study, const std::vector<Trial>& trials) {
  const auto objectives = objectives_from_json(study.value("objectives", json::array()));
  const SearchSpace space = SearchSpace::from_json(study.value("space", json::array()));
  const auto& o0 = objectives[0];
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
  // Convergence.
  {
    const auto conv = convergence(objectives, trials);
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& t : trials)
      if (usable(t, objectives.size())) lo = std::min(lo, t.values[0]), hi = std::max(hi, t.values[0]);
    if (std::isfinite(lo)) {
      Plot p(1, std::max<double>(2, static_cast<double>(trials.size())), lo, hi);
      std::vector<std::pair<double, double>> pts;
      for (std::size_t i = 0; i < trials.size(); ++i) {
        if (usable(trials[i], objectives.size())) p.dot(static_cast<double>(i + 1), trials[i].values[0], "#9ab");
        if (!std::isnan(conv[i])) pts.emplace_back(static_cast<double>(i + 1), conv[i]);
      }
      p.line(pts, "#c33");
      h += "<div class='fig'><b>Convergence</b> (dots: trials, line: best so far)<br>" + p.svg("trial", o0.name) + "</div>";
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
      Plot p(xl, xh, yl, yh);
      for (const auto& t : trials)
        if (usable(t, objectives.size())) p.dot(t.values[1], t.values[0], "#9ab");
      auto front = pareto_front(trials, objectives);
      std::sort(front.begin(), front.end(), [](const Trial& a, const Trial& b) { return a.values[1] < b.values[1]; });
      std::vector<std::pair<double, double>> pts;
      for (const auto& t : front) p.dot(t.values[1], t.values[0], "#c33", 5), pts.emplace_back(t.values[1], t.values[0]);
      p.line(pts, "#c33", 1);
      h += "<div class='fig'><b>Pareto front</b> (red)<br>" + p.svg(objectives[1].name, o0.name) + "</div>";
    }
  }
  // Importances.
  {
    const auto imp = parameter_importances(space, objectives, trials);
    const double W = 560, row = 22;
    std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(W) + "' height='" +
                    num(row * static_cast<double>(imp.size()) + 10) + "' font-family='sans-serif' font-size='11'>";
    for (std::size_t i = 0; i < imp.size(); ++i) {
      const double y = 5 + row * static_cast<double>(i);
      s += "<text x='170' y='" + num(y + 14) + "' text-anchor='end'>" + esc(space.params()[i].name) + "</text>";
      s += "<rect x='176' y='" + num(y + 3) + "' width='" + num(imp[i] * (W - 240), "%.1f") + "' height='14' fill='#48a'/>";
      s += "<text x='" + num(180 + imp[i] * (W - 240), "%.1f") + "' y='" + num(y + 14) + "'>" + num(imp[i], "%.2f") + "</text>";
    }
    h += "<div class='fig'><b>Parameter importances</b> (rank correlation with " + esc(o0.name) + ")<br>" + s + "</svg></div>";
  }
  // Learning curves.
  {
    int64_t smax = 1;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& t : trials)
      for (auto [st, v] : t.intermediate)
        if (std::isfinite(v)) smax = std::max(smax, st), lo = std::min(lo, v), hi = std::max(hi, v);
    if (std::isfinite(lo)) {
      Plot p(0, static_cast<double>(smax), lo, hi);
      for (const auto& t : trials) {
        std::vector<std::pair<double, double>> pts;
        for (auto [st, v] : t.intermediate)
          if (std::isfinite(v)) pts.emplace_back(static_cast<double>(st), v);
        p.line(pts, t.status == TrialStatus::kPruned ? "#bbb" : "#48a", 1.2);
      }
      h += "<div class='fig'><b>Learning curves</b> (grey: stopped early)<br>" + p.svg("step", o0.name) + "</div>";
    }
  }
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
