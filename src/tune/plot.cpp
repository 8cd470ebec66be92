#include "bluewhale/tune/plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "bluewhale/core/error.h"

namespace bluewhale::tune {
namespace {

// The font, printable ASCII from ' ' (32) to '~' (126): rows top to bottom separated by '|', 5 columns,
// '#' set. Rows 0-6 stand on the baseline (lowercase x-height is rows 2-6); rows 7-8 are descenders.
constexpr const char* kFont[95] = {
    "",                                                     // space
    "..#..|..#..|..#..|..#..|..#..|.....|..#..",            // !
    ".#.#.|.#.#.",                                          // "
    ".#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#.",            // #
    "..#..|.####|#.#..|.###.|..#.#|####.|..#..",            // $
    "##..#|##..#|...#.|..#..|.#...|#..##|#..##",            // %
    ".##..|#..#.|#.#..|.#...|#.#.#|#..#.|.##.#",            // &
    "..#..|..#..",                                          // '
    "...#.|..#..|.#...|.#...|.#...|..#..|...#.",            // (
    ".#...|..#..|...#.|...#.|...#.|..#..|.#...",            // )
    ".....|..#..|#.#.#|.###.|#.#.#|..#..",                  // *
    ".....|..#..|..#..|#####|..#..|..#..",                  // +
    ".....|.....|.....|.....|.....|..#..|..#..|.#...",      // ,
    ".....|.....|.....|#####",                              // -
    ".....|.....|.....|.....|.....|.....|..#..",            // .
    "....#|....#|...#.|..#..|.#...|#....|#....",            // /
    ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",            // 0
    "..#..|.##..|..#..|..#..|..#..|..#..|.###.",            // 1
    ".###.|#...#|....#|...#.|..#..|.#...|#####",            // 2
    "#####|...#.|..#..|...#.|....#|#...#|.###.",            // 3
    "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",            // 4
    "#####|#....|####.|....#|....#|#...#|.###.",            // 5
    "..##.|.#...|#....|####.|#...#|#...#|.###.",            // 6
    "#####|....#|...#.|..#..|.#...|.#...|.#...",            // 7
    ".###.|#...#|#...#|.###.|#...#|#...#|.###.",            // 8
    ".###.|#...#|#...#|.####|....#|...#.|.##..",            // 9
    ".....|.....|..#..|.....|.....|..#..",                  // :
    ".....|.....|..#..|.....|.....|..#..|..#..|.#...",      // ;
    "...#.|..#..|.#...|#....|.#...|..#..|...#.",            // <
    ".....|.....|#####|.....|#####",                        // =
    ".#...|..#..|...#.|....#|...#.|..#..|.#...",            // >
    ".###.|#...#|....#|...#.|..#..|.....|..#..",            // ?
    ".###.|#...#|....#|.##.#|#.#.#|#.#.#|.###.",            // @
    ".###.|#...#|#...#|#####|#...#|#...#|#...#",            // A
    "####.|#...#|#...#|####.|#...#|#...#|####.",            // B
    ".###.|#...#|#....|#....|#....|#...#|.###.",            // C
    "###..|#..#.|#...#|#...#|#...#|#..#.|###..",            // D
    "#####|#....|#....|####.|#....|#....|#####",            // E
    "#####|#....|#....|####.|#....|#....|#....",            // F
    ".###.|#...#|#....|#.###|#...#|#...#|.####",            // G
    "#...#|#...#|#...#|#####|#...#|#...#|#...#",            // H
    ".###.|..#..|..#..|..#..|..#..|..#..|.###.",            // I
    "..###|...#.|...#.|...#.|...#.|#..#.|.##..",            // J
    "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",            // K
    "#....|#....|#....|#....|#....|#....|#####",            // L
    "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",            // M
    "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#",            // N
    ".###.|#...#|#...#|#...#|#...#|#...#|.###.",            // O
    "####.|#...#|#...#|####.|#....|#....|#....",            // P
    ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",            // Q
    "####.|#...#|#...#|####.|#.#..|#..#.|#...#",            // R
    ".####|#....|#....|.###.|....#|....#|####.",            // S
    "#####|..#..|..#..|..#..|..#..|..#..|..#..",            // T
    "#...#|#...#|#...#|#...#|#...#|#...#|.###.",            // U
    "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..",            // V
    "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.",            // W
    "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",            // X
    "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",            // Y
    "#####|....#|...#.|..#..|.#...|#....|#####",            // Z
    ".###.|.#...|.#...|.#...|.#...|.#...|.###.",            // [
    "#....|#....|.#...|..#..|...#.|....#|....#",            // backslash
    ".###.|...#.|...#.|...#.|...#.|...#.|.###.",            // ]
    "..#..|.#.#.|#...#",                                    // ^
    ".....|.....|.....|.....|.....|.....|.....|#####",      // _
    ".#...|..#..",                                          // `
    ".....|.....|.###.|....#|.####|#...#|.####",            // a
    "#....|#....|####.|#...#|#...#|#...#|####.",            // b
    ".....|.....|.###.|#....|#....|#...#|.###.",            // c
    "....#|....#|.####|#...#|#...#|#...#|.####",            // d
    ".....|.....|.###.|#...#|#####|#....|.###.",            // e
    "..##.|.#..#|.#...|###..|.#...|.#...|.#...",            // f
    ".....|.....|.####|#...#|#...#|#...#|.####|....#|.###.",  // g
    "#....|#....|#.##.|##..#|#...#|#...#|#...#",            // h
    "..#..|.....|.##..|..#..|..#..|..#..|.###.",            // i
    "...#.|.....|..##.|...#.|...#.|...#.|...#.|#..#.|.##..",  // j
    "#....|#....|#..#.|#.#..|##...|#.#..|#..#.",            // k
    ".##..|..#..|..#..|..#..|..#..|..#..|.###.",            // l
    ".....|.....|##.#.|#.#.#|#.#.#|#.#.#|#.#.#",            // m
    ".....|.....|#.##.|##..#|#...#|#...#|#...#",            // n
    ".....|.....|.###.|#...#|#...#|#...#|.###.",            // o
    ".....|.....|####.|#...#|#...#|#...#|####.|#....|#....",  // p
    ".....|.....|.####|#...#|#...#|#...#|.####|....#|....#",  // q
    ".....|.....|#.##.|##..#|#....|#....|#....",            // r
    ".....|.....|.####|#....|.###.|....#|####.",            // s
    ".#...|.#...|###..|.#...|.#...|.#..#|..##.",            // t
    ".....|.....|#...#|#...#|#...#|#..##|.##.#",            // u
    ".....|.....|#...#|#...#|#...#|.#.#.|..#..",            // v
    ".....|.....|#...#|#...#|#.#.#|#.#.#|.#.#.",            // w
    ".....|.....|#...#|.#.#.|..#..|.#.#.|#...#",            // x
    ".....|.....|#...#|#...#|#...#|#...#|.####|....#|.###.",  // y
    ".....|.....|#####|...#.|..#..|.#...|#####",            // z
    "...#.|..#..|..#..|.#...|..#..|..#..|...#.",            // {
    "..#..|..#..|..#..|..#..|..#..|..#..|..#..",            // |
    ".#...|..#..|..#..|...#.|..#..|..#..|.#...",            // }
    ".....|.....|.#...|#.#.#|...#.",                        // ~
};

constexpr int kGlyphRows = 9;

// Row bitmaps (bit 4 = leftmost column) of every glyph, parsed once from kFont.
using Glyph = std::array<uint8_t, kGlyphRows>;
const std::array<Glyph, 95>& glyphs() {
  static const std::array<Glyph, 95> table = [] {
    std::array<Glyph, 95> t{};
    for (std::size_t c = 0; c < t.size(); ++c) {
      int row = 0, col = 0;
      for (const char* p = kFont[c]; *p; ++p) {
        if (*p == '|') {
          BW_ASSERT(col == 5, "font glyph ", c + 32, " row ", row, " has ", col, " columns");
          ++row, col = 0;
          continue;
        }
        BW_ASSERT(row < kGlyphRows && col < 5, "font glyph ", c + 32, " is larger than 5x", kGlyphRows);
        if (*p == '#') t[c][row] |= static_cast<uint8_t>(1u << (4 - col));
        ++col;
      }
      BW_ASSERT(col == 5 || (row == 0 && col == 0), "font glyph ", c + 32, " last row has ", col, " columns");
    }
    return t;
  }();
  return table;
}

// The glyph indices of a UTF-8 string: printable ASCII as itself, anything else as '?', one per sequence.
std::vector<int> glyph_indices(std::string_view s) {
  std::vector<int> out;
  for (unsigned char c : s) {
    if (c >= 0x80 && c < 0xC0) continue;  // continuation byte of a sequence already counted
    out.push_back(c >= 32 && c < 127 ? c - 32 : '?' - 32);
  }
  return out;
}

// floor / ceil of a device coordinate, clamped to [lo, hi] before the conversion: a coordinate far
// outside the image (or NaN) must not overflow int.
int floor_in(double v, int lo, int hi) { return v >= lo ? (v <= hi ? static_cast<int>(std::floor(v)) : hi) : lo; }
int ceil_in(double v, int lo, int hi) { return v >= lo ? (v <= hi ? static_cast<int>(std::ceil(v)) : hi) : lo; }

struct Segment {
  double ax, ay, bx, by;
};

double distance_to_segment(double x, double y, const Segment& s) {
  const double dx = s.bx - s.ax, dy = s.by - s.ay, len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((x - s.ax) * dx + (y - s.ay) * dy) / len2 : 0;
  t = std::clamp(t, 0.0, 1.0);
  return std::hypot(x - (s.ax + t * dx), y - (s.ay + t * dy));
}

// Coverage of a pixel whose centre is `d` pixels from the centre line of a stroke of half-width `hw`
// pixels: a one-pixel ramp across the edge, and strokes thinner than a pixel fade instead of vanishing.
double stroke_coverage(double d, double hw) {
  const double c = std::clamp(hw + 0.5 - d, 0.0, 1.0);
  return 2 * hw < 1 ? c * 2 * hw : c;
}

std::string tick_label(double v, double step) {
  char buf[48];
  const double mag = std::max(std::abs(v), step);
  if (step >= 1e-6 && mag < 1e9) {
    const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  } else {
    std::snprintf(buf, sizeof buf, "%.4g", v);
  }
  return buf;
}

}  // namespace

Rgb parse_color(std::string_view hex) {
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    BW_THROW(ConfigError, "colour '", hex, "': expected #rgb or #rrggbb hex digits");
  };
  BW_CHECK(!hex.empty() && hex[0] == '#' && (hex.size() == 4 || hex.size() == 7), ConfigError, "colour '", hex,
           "': expected #rgb or #rrggbb");
  if (hex.size() == 4)
    return {static_cast<uint8_t>(digit(hex[1]) * 17), static_cast<uint8_t>(digit(hex[2]) * 17),
            static_cast<uint8_t>(digit(hex[3]) * 17)};
  return {static_cast<uint8_t>(digit(hex[1]) * 16 + digit(hex[2])), static_cast<uint8_t>(digit(hex[3]) * 16 + digit(hex[4])),
          static_cast<uint8_t>(digit(hex[5]) * 16 + digit(hex[6]))};
}

std::vector<Tick> nice_ticks(double lo, double hi, int target, bool integers) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo) return {};
  if (hi == lo) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.4g", lo);
    return {{lo, buf}};
  }
  const double raw = (hi - lo) / std::max(1, target);
  if (!std::isfinite(raw)) return {};  // a span beyond the double range has no round step
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag;
  double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  if (integers) step = std::max(step, 1.0);
  std::vector<Tick> out;
  const double first = std::ceil(lo / step - 1e-9);
  for (int k = 0; k < 100; ++k) {
    double v = (first + k) * step;  // from the integer index, so errors do not accumulate
    if (v > hi + step * 1e-9) break;
    if (std::abs(v) < step * 1e-9) v = 0;  // no "-0"
    out.push_back({v, tick_label(v, step)});
  }
  return out;
}

Canvas::Canvas(double width, double height, int scale, Rgb background)
    : width_(width), height_(height), scale_(scale), image_(1, 1) {
  BW_CHECK(scale >= 1 && scale <= kMaxPlotScale, ConfigError, "plot scale must be 1..", kMaxPlotScale, ", got ", scale);
  BW_CHECK(std::isfinite(width) && std::isfinite(height) && width > 0 && height > 0 &&
               width * scale <= kMaxImageSide && height * scale <= kMaxImageSide,
           ConfigError, "canvas of ", width, "x", height, " units at scale ", scale, " is out of bounds (at most ",
           kMaxImageSide, " pixels a side; use a smaller scale)");
  const uint8_t fill[3] = {background.r, background.g, background.b};
  image_ = Image(static_cast<int>(std::ceil(width * scale)), static_cast<int>(std::ceil(height * scale)), 3, fill);
}

void Canvas::blend(int x, int y, Rgb c, double alpha) {
  if (x < 0 || y < 0 || x >= image_.width() || y >= image_.height() || !(alpha > 0)) return;
  uint8_t* p = image_.pixel(x, y);
  if (alpha >= 1) {
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
    return;
  }
  auto mix = [&](uint8_t dst, uint8_t src) {
    return static_cast<uint8_t>(std::lround(dst + (static_cast<double>(src) - dst) * alpha));
  };
  p[0] = mix(p[0], c.r), p[1] = mix(p[1], c.g), p[2] = mix(p[2], c.b);
}

void Canvas::fill_rect(double x, double y, double w, double h, Rgb color) {
  if (!(w > 0 && h > 0)) return;
  const double s = scale_, X0 = x * s, X1 = (x + w) * s, Y0 = y * s, Y1 = (y + h) * s;
  const int i0 = floor_in(X0, 0, image_.width()), i1 = ceil_in(X1, 0, image_.width());
  const int j0 = floor_in(Y0, 0, image_.height()), j1 = ceil_in(Y1, 0, image_.height());
  for (int j = j0; j < j1; ++j) {
    const double cy = std::min<double>(j + 1, Y1) - std::max<double>(j, Y0);
    for (int i = i0; i < i1; ++i) blend(i, j, color, cy * (std::min<double>(i + 1, X1) - std::max<double>(i, X0)));
  }
}

void Canvas::stroke_rect(double x, double y, double w, double h, Rgb color, double lw) {
  const double e = lw / 2;
  // Four disjoint bands, so corners are painted once.
  fill_rect(x - e, y - e, w + lw, lw, color);
  fill_rect(x - e, y + h - e, w + lw, lw, color);
  fill_rect(x - e, y + e, lw, h - lw, color);
  fill_rect(x + w - e, y + e, lw, h - lw, color);
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb color, double lw) {
  polyline({{x0, y0}, {x1, y1}}, color, lw);
}

void Canvas::polyline(const std::vector<std::pair<double, double>>& pts, Rgb color, double lw) {
  if (pts.empty() || !(lw > 0)) return;
  const double s = scale_, hw = lw * s / 2;
  // Non-finite points are skipped, their neighbours joined up; far-away coordinates are pulled in to a
  // million pixels, where the distance arithmetic below stays exact enough.
  constexpr double kFar = 1e6;
  std::vector<std::pair<double, double>> dev;
  for (const auto& [x, y] : pts)
    if (std::isfinite(x) && std::isfinite(y)) dev.emplace_back(std::clamp(x * s, -kFar, kFar), std::clamp(y * s, -kFar, kFar));
  if (dev.empty()) return;
  std::vector<Segment> segs;
  if (dev.size() == 1) segs.push_back(Segment{dev[0].first, dev[0].second, dev[0].first, dev[0].second});  // a dot
  for (std::size_t k = 1; k < dev.size(); ++k)
    segs.push_back(Segment{dev[k - 1].first, dev[k - 1].second, dev[k].first, dev[k].second});
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& [x, y] : dev) xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
  const double pad = hw + 1;
  const int i0 = floor_in(xmin - pad, 0, image_.width()), i1 = ceil_in(xmax + pad, 0, image_.width());
  const int j0 = floor_in(ymin - pad, 0, image_.height()), j1 = ceil_in(ymax + pad, 0, image_.height());
  if (i0 >= i1 || j0 >= j1) return;
  // One row of coverage at a time, the maximum over the segments: the polyline is a single shape, so a
  // join is not darkened by two overlapping semi-transparent edges.
  std::vector<double> row(static_cast<std::size_t>(i1 - i0));
  for (int j = j0; j < j1; ++j) {
    const double cy = j + 0.5;
    int lo = i1, hi = i0;
    for (const Segment& g : segs) {
      if (cy < std::min(g.ay, g.by) - pad || cy > std::max(g.ay, g.by) + pad) continue;
      const int a = floor_in(std::min(g.ax, g.bx) - pad, i0, i1), b = ceil_in(std::max(g.ax, g.bx) + pad, i0, i1);
      for (int i = a; i < b; ++i) {
        const double c = stroke_coverage(distance_to_segment(i + 0.5, cy, g), hw);
        if (c <= 0) continue;
        double& r = row[static_cast<std::size_t>(i - i0)];
        if (i < lo || i >= hi) {
          // Widen the touched range, clearing what it newly covers.
          const int nlo = std::min(lo, i), nhi = std::max(hi, i + 1);
          for (int k = nlo; k < nhi; ++k)
            if (k < lo || k >= hi) row[static_cast<std::size_t>(k - i0)] = 0;
          lo = nlo, hi = nhi;
        }
        r = std::max(r, c);
      }
    }
    for (int i = lo; i < hi; ++i) blend(i, j, color, row[static_cast<std::size_t>(i - i0)]);
  }
}

void Canvas::circle(double cx, double cy, double r, Rgb color) {
  if (!(r > 0) || !std::isfinite(cx) || !std::isfinite(cy)) return;
  const double s = scale_, X = cx * s, Y = cy * s, R = r * s;
  const int i0 = floor_in(X - R - 1, 0, image_.width()), i1 = ceil_in(X + R + 1, 0, image_.width());
  const int j0 = floor_in(Y - R - 1, 0, image_.height()), j1 = ceil_in(Y + R + 1, 0, image_.height());
  for (int j = j0; j < j1; ++j)
    for (int i = i0; i < i1; ++i)
      blend(i, j, color, std::clamp(R + 0.5 - std::hypot(i + 0.5 - X, j + 0.5 - Y), 0.0, 1.0));
}

void Canvas::square(double cx, double cy, double half, Rgb color) {
  fill_rect(cx - half, cy - half, 2 * half, 2 * half, color);
}

double Canvas::text_width(std::string_view s) {
  const std::size_t n = glyph_indices(s).size();
  return n == 0 ? 0 : static_cast<double>(n) * kGlyphAdvance - 1;
}

void Canvas::text(double x, double y, std::string_view s, Rgb color, TextAnchor anchor, bool rotated) {
  const std::vector<int> idx = glyph_indices(s);
  const double w = text_width(s);
  const double shift = anchor == TextAnchor::kStart ? 0 : anchor == TextAnchor::kMiddle ? w / 2 : w;
  // Along the reading direction: t grows rightwards (plain) or upwards (rotated, t = -y).
  const double t0 = std::round(rotated ? -y - shift : x - shift);
  const double base = std::round(rotated ? x : y);
  const auto& font = glyphs();
  for (std::size_t k = 0; k < idx.size(); ++k) {
    const Glyph& g = font[static_cast<std::size_t>(idx[k])];
    for (int gy = 0; gy < kGlyphRows; ++gy)
      for (int gx = 0; gx < 5; ++gx) {
        if (!(g[static_cast<std::size_t>(gy)] & (1u << (4 - gx)))) continue;
        const double u = t0 + static_cast<double>(k) * kGlyphAdvance + gx, v = gy - kTextAscent;
        if (rotated) fill_rect(base + v, -(u + 1), 1, 1, color);
        else fill_rect(u, base + v, 1, 1, color);
      }
  }
}

void Canvas::axes(const PlotFrame& f, const std::vector<Tick>& xt, const std::vector<Tick>& yt, Rgb fill, Rgb stroke,
                  Rgb text_color) {
  fill_rect(f.left, f.top, f.width, f.height, fill);
  // Tick marks snap to whole pixels so one-unit strokes stay sharp.
  auto snap = [&](double v) { return std::round(v * scale_) / scale_; };
  const double bottom = f.top + f.height;
  for (const Tick& t : xt) {
    const double X = f.px(t.value);
    fill_rect(snap(X) - 0.5, bottom, 1, kTickLength, stroke);
    text(X, bottom + kXTickLabelDrop, t.label, text_color, TextAnchor::kMiddle);
  }
  for (const Tick& t : yt) {
    const double Y = f.py(t.value);
    fill_rect(f.left - kTickLength, snap(Y) - 0.5, kTickLength, 1, stroke);
    text(f.left - kYTickLabelGap, Y + kTextAscent / 2, t.label, text_color, TextAnchor::kEnd);
  }
  stroke_rect(f.left, f.top, f.width, f.height, stroke);
}

}  // namespace bluewhale::tune
