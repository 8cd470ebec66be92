// A small rasterizer for the tuning report's plots: anti-aliased lines and markers, filled rectangles,
// axes with ticks, and text in a built-in 5x7 bitmap font, drawn onto an RGB Image (tune/png.h).
//
// Coordinates are logical units (the report's SVG pixels), x right, y down, (0, 0) the top-left corner of
// the canvas. A canvas of W x H units at scale s is an image of ceil(W*s) x ceil(H*s) pixels: every size
// (line widths, marker radii, glyphs) grows with s, so s = 2 gives the same picture, crisper. Shapes that
// fall partly outside the canvas are clipped. Not thread-safe; one canvas per thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bluewhale/tune/png.h"

namespace bluewhale::tune {

inline constexpr int kMaxPlotScale = 8;

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// "#rgb" or "#rrggbb" (the SVG colours the report uses); ConfigError otherwise.
Rgb parse_color(std::string_view hex);

enum class TextAnchor { kStart, kMiddle, kEnd };  // as SVG's text-anchor

// Font metrics in logical units: glyphs are 5 wide on a 6-unit advance, capitals 7 tall above the
// baseline, descenders (g, j, p, q, y, comma) 2 below it. Characters outside printable ASCII draw as '?'
// (one per UTF-8 sequence).
inline constexpr double kGlyphAdvance = 6, kTextAscent = 7, kTextDescent = 2;

// Maps the data rectangle [x0, x1] x [y0, y1] onto the canvas rectangle (left, top, width, height); data y
// grows upwards, canvas y downwards.
struct PlotFrame {
  double left = 0, top = 0, width = 1, height = 1;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * width; }
  double py(double y) const { return top + (1 - (y - y0) / (y1 - y0)) * height; }
};

// An axis tick: data value and its label.
struct Tick {
  double value = 0;
  std::string label;
};

// About `target` ticks at round values (1, 2 or 5 times a power of ten) inside [lo, hi], labels printed
// with 4 significant digits; `integers` keeps the step at least 1 (trial numbers, steps). Empty when the
// range is empty or not finite.
std::vector<Tick> nice_ticks(double lo, double hi, int target = 5, bool integers = false);

// Tick geometry shared by the PNG and SVG renderers: marks of kTickLength outside the frame, x labels with
// their baseline kXTickLabelDrop below the frame, y labels ending kYTickLabelGap left of it.
inline constexpr double kTickLength = 4, kXTickLabelDrop = 14, kYTickLabelGap = 6;

class Canvas {
 public:
  // width x height logical units at `scale` pixels per unit (1..kMaxPlotScale, ConfigError otherwise),
  // filled with `background`.
  Canvas(double width, double height, int scale, Rgb background = {255, 255, 255});

  int scale() const { return scale_; }
  double width() const { return width_; }
  double height() const { return height_; }
  const Image& image() const { return image_; }

  // Axis-aligned rectangle filled with exact pixel coverage (crisp edges on whole units).
  void fill_rect(double x, double y, double w, double h, Rgb color);
  // Rectangle outline, the stroke centred on the edges as in SVG.
  void stroke_rect(double x, double y, double w, double h, Rgb color, double line_width = 1);
  // Anti-aliased segment / connected polyline of `line_width` units, round joins and caps. A polyline is
  // one shape: where its segments overlap, pixels are not painted twice. Non-finite points are skipped.
  void line(double x0, double y0, double x1, double y1, Rgb color, double line_width = 1);
  void polyline(const std::vector<std::pair<double, double>>& points, Rgb color, double line_width = 1);
  // Anti-aliased filled disc of radius r; filled square of half-side `half`, both centred on (cx, cy).
  void circle(double cx, double cy, double r, Rgb color);
  void square(double cx, double cy, double half, Rgb color);
  // Text with its baseline at y (rotated: at x, reading upwards as SVG's rotate(-90)), anchored at x
  // (rotated: at y) like SVG's text-anchor. The start is rounded to a whole unit so glyphs stay crisp.
  void text(double x, double y, std::string_view s, Rgb color, TextAnchor anchor = TextAnchor::kStart,
            bool rotated = false);
  // Width of `s` in logical units (no trailing gap).
  static double text_width(std::string_view s);

  // The plot frame filled with `fill` and outlined with `stroke`, tick marks and labels (see kTickLength).
  void axes(const PlotFrame& frame, const std::vector<Tick>& x_ticks, const std::vector<Tick>& y_ticks, Rgb fill,
            Rgb stroke, Rgb text_color);

 private:
  // Blends `color` into pixel (x, y) with coverage `alpha` in [0, 1]; outside the image: nothing.
  void blend(int x, int y, Rgb color, double alpha);
  double width_, height_;
  int scale_;
  Image image_;
};

}  // namespace bluewhale::tune
