#include "bluewhale/tune/plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <set>

#include "bluewhale/core/error.h"

using namespace bluewhale;
using namespace bluewhale::tune;

namespace {

const Rgb kBlack{0, 0, 0}, kRed{0xcc, 0x33, 0x33};

Rgb at(const Canvas& c, int x, int y) {
  const uint8_t* p = c.image().pixel(x, y);
  return {p[0], p[1], p[2]};
}

bool white(const Canvas& c, int x, int y) { return at(c, x, y) == Rgb{255, 255, 255}; }

// Darkness of pixel (x, y) in [0, 1] on a white canvas, from its red channel (0 = untouched).
double ink_at(const Canvas& c, int x, int y) { return (255 - at(c, x, y).r) / 255.0; }

struct InkBox {
  int count = 0, x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;  // x1, y1 exclusive
};
InkBox ink_box(const Canvas& c) {
  InkBox b;
  for (int y = 0; y < c.image().height(); ++y)
    for (int x = 0; x < c.image().width(); ++x)
      if (!white(c, x, y)) ++b.count, b.x0 = std::min(b.x0, x), b.y0 = std::min(b.y0, y), b.x1 = std::max(b.x1, x + 1),
                           b.y1 = std::max(b.y1, y + 1);
  return b;
}

double total_ink(const Canvas& c) {
  double s = 0;
  for (int y = 0; y < c.image().height(); ++y)
    for (int x = 0; x < c.image().width(); ++x) s += ink_at(c, x, y);
  return s;
}

}  // namespace

TEST(PlotColor, ParsesShortAndLongHexAndRejectsTheRest) {
  EXPECT_EQ(parse_color("#c33"), (Rgb{0xcc, 0x33, 0x33}));
  EXPECT_EQ(parse_color("#48A"), (Rgb{0x44, 0x88, 0xaa}));
  EXPECT_EQ(parse_color("#0a1b2c"), (Rgb{0x0a, 0x1b, 0x2c}));
  for (const char* bad : {"", "c33", "#c3", "#c333", "#gg0000", "#12345z"}) EXPECT_THROW(parse_color(bad), ConfigError) << bad;
}

TEST(PlotCanvas, ImageSizeIsTheLogicalSizeTimesTheScale) {
  const Canvas a(100, 50, 1), b(100, 50, 3), c(10.5, 7.2, 2);
  EXPECT_EQ(a.image().width(), 100);
  EXPECT_EQ(a.image().height(), 50);
  EXPECT_EQ(b.image().width(), 300);
  EXPECT_EQ(b.image().height(), 150);
  EXPECT_EQ(c.image().width(), 21);
  EXPECT_EQ(c.image().height(), 15);
  EXPECT_TRUE(white(b, 299, 149));
  EXPECT_THROW(Canvas(10, 10, 0), ConfigError);
  EXPECT_THROW(Canvas(10, 10, kMaxPlotScale + 1), ConfigError);
  EXPECT_THROW(Canvas(0, 10, 1), ConfigError);
  EXPECT_THROW(Canvas(10000, 10, 2), ConfigError);  // 20000 pixels wide
}

TEST(PlotCanvas, AHorizontalLineCoversExactlyItsPixels) {
  Canvas c(40, 20, 1);
  c.line(5, 10.5, 30, 10.5, kBlack, 1);
  for (int x = 5; x < 30; ++x) EXPECT_EQ(at(c, x, 10), kBlack) << x;
  for (int x = 0; x < 40; ++x) {
    EXPECT_TRUE(white(c, x, 9)) << x;
    EXPECT_TRUE(white(c, x, 11)) << x;
  }
  // Round caps reach half a width past the ends, no further.
  EXPECT_TRUE(white(c, 3, 10));
  EXPECT_TRUE(white(c, 31, 10));
  // Endpoints far outside the canvas: still the same line across it.
  Canvas far(40, 20, 2);
  far.line(-1e300, 5.5, 1e300, 5.5, kBlack, 1);
  EXPECT_EQ(ink_box(far).count, 80 * 2);
  EXPECT_EQ(at(far, 0, 10), kBlack);
  EXPECT_EQ(at(far, 79, 11), kBlack);
}

TEST(PlotCanvas, ADiagonalLineIsAntiAliasedAlongTheIdealLine) {
  Canvas c(50, 50, 1);
  c.line(5, 5, 45, 25, kBlack, 1.5);
  int partial = 0;
  for (int x = 6; x < 44; ++x) {
    const double y = 5 + (x + 0.5 - 5) * 0.5;  // the line at this column's centre
    EXPECT_GT(ink_at(c, x, static_cast<int>(y)), 0.5) << x;
    EXPECT_TRUE(white(c, x, static_cast<int>(y) + 3)) << x;
    EXPECT_TRUE(white(c, x, static_cast<int>(y) - 3)) << x;
    for (int dy = -2; dy <= 2; ++dy) {
      const double v = ink_at(c, x, static_cast<int>(y) + dy);
      partial += v > 0.05 && v < 0.95;
    }
  }
  EXPECT_GT(partial, 20);  // edges are blended, not jagged
  // Total ink is close to the stroke's area (length x width).
  EXPECT_NEAR(total_ink(c), std::hypot(40.0, 20.0) * 1.5, 0.1 * std::hypot(40.0, 20.0) * 1.5);
}

TEST(PlotCanvas, APolylineDoesNotPaintItsOverlapsTwice) {
  Canvas once(40, 20, 2), back_and_forth(40, 20, 2);
  once.line(5, 10.3, 30, 10.3, kRed, 1.3);
  back_and_forth.polyline({{5, 10.3}, {30, 10.3}, {5, 10.3}, {30, 10.3}}, kRed, 1.3);
  EXPECT_EQ(once.image(), back_and_forth.image());
  // Two separate semi-transparent lines do darken their edge pixels.
  Canvas twice(40, 20, 2);
  twice.line(5, 10.3, 30, 10.3, kRed, 1.3);
  twice.line(5, 10.3, 30, 10.3, kRed, 1.3);
  EXPECT_NE(once.image(), twice.image());
  // A single point is a dot; non-finite points are skipped.
  Canvas dot(20, 20, 1);
  dot.polyline({{10, 10}, {NAN, 3}}, kBlack, 4);
  const InkBox b = ink_box(dot);
  EXPECT_EQ(at(dot, 10, 10), kBlack);
  EXPECT_GE(b.x0, 7);
  EXPECT_LE(b.x1, 13);
}

TEST(PlotCanvas, CirclesAndSquaresLandWhereTheyAreCentred) {
  Canvas c(40, 20, 1);
  c.circle(10, 10, 4, kRed);
  EXPECT_EQ(at(c, 9, 9), kRed);
  EXPECT_EQ(at(c, 10, 10), kRed);
  EXPECT_TRUE(white(c, 10, 4));   // 5.5 from the centre
  EXPECT_TRUE(white(c, 15, 10));
  EXPECT_NEAR(total_ink(c) / ((255 - 0xcc) / 255.0), std::numbers::pi * 16, 1.5);  // area in red-channel units
  Canvas s(40, 20, 1);
  s.square(20, 10, 3, kBlack);
  const InkBox b = ink_box(s);
  EXPECT_EQ(b.count, 36);  // exactly the 6 x 6 pixels [17, 23) x [7, 13)
  EXPECT_EQ(b.x0, 17);
  EXPECT_EQ(b.y0, 7);
  EXPECT_EQ(b.x1, 23);
  EXPECT_EQ(b.y1, 13);
}

TEST(PlotCanvas, RectanglesBlendPartlyCoveredPixels) {
  Canvas c(10, 4, 1);
  c.fill_rect(2.5, 1, 3, 2, kBlack);
  EXPECT_NEAR(ink_at(c, 2, 1), 0.5, 0.01);
  EXPECT_EQ(at(c, 3, 1), kBlack);
  EXPECT_EQ(at(c, 4, 2), kBlack);
  EXPECT_NEAR(ink_at(c, 5, 2), 0.5, 0.01);
  EXPECT_TRUE(white(c, 3, 0));
  EXPECT_TRUE(white(c, 3, 3));
  Canvas r(20, 20, 1);
  r.stroke_rect(5, 5, 10, 10, kBlack, 2);  // edges centred on the outline: [4, 6) and [14, 16)
  EXPECT_EQ(at(r, 4, 4), kBlack);
  EXPECT_EQ(at(r, 15, 10), kBlack);
  EXPECT_TRUE(white(r, 10, 10));
  EXPECT_TRUE(white(r, 3, 10));
  EXPECT_TRUE(white(r, 16, 10));
}

TEST(PlotText, RendersInsideItsBoxForEveryAnchor) {
  const std::string s = "loss = 0.25 (trial_9)";
  const double w = Canvas::text_width(s);
  EXPECT_EQ(w, 6.0 * static_cast<double>(s.size()) - 1);
  for (auto [anchor, shift] : {std::pair{TextAnchor::kStart, 0.0}, {TextAnchor::kMiddle, 0.5}, {TextAnchor::kEnd, 1.0}}) {
    Canvas c(300, 30, 1);
    c.text(150, 20, s, kBlack, anchor);
    const InkBox b = ink_box(c);
    const double left = std::round(150 - shift * w);
    EXPECT_GT(b.count, 100);
    EXPECT_GE(b.x0, left);
    EXPECT_LE(b.x1, left + w);
    EXPECT_GE(b.y0, 20 - kTextAscent);
    EXPECT_LE(b.y1, 20 + kTextDescent);  // '_' sits below the baseline
    EXPECT_GT(b.y1, 20);
  }
  EXPECT_EQ(Canvas::text_width(""), 0);
}

TEST(PlotText, EveryPrintableCharacterHasItsOwnGlyph) {
  std::set<std::vector<uint8_t>> seen;
  for (char ch = '!'; ch <= '~'; ++ch) {
    Canvas c(10, 12, 1);
    c.text(2, 8, std::string(1, ch), kBlack);
    EXPECT_GT(ink_box(c).count, 0) << ch;
    seen.insert(c.image().data());
  }
  EXPECT_EQ(seen.size(), 94u);  // no two glyphs alike ('l', '1', 'I', '|' included)
  Canvas space(10, 12, 1);
  space.text(2, 8, " ", kBlack);
  EXPECT_EQ(ink_box(space).count, 0);
}

TEST(PlotText, NonAsciiDrawsAsOneQuestionMarkPerCharacter) {
  Canvas a(30, 12, 1), b(30, 12, 1);
  a.text(2, 8, "\xc3\xa9x", kBlack);  // "éx"
  b.text(2, 8, "?x", kBlack);
  EXPECT_EQ(a.image(), b.image());
  EXPECT_EQ(Canvas::text_width("\xc3\xa9x"), Canvas::text_width("?x"));
}

TEST(PlotText, RotatedTextIsThePlainTextTurnedAQuarterAntiClockwise) {
  Canvas plain(12, 12, 1), turned(12, 12, 1);
  plain.text(0, 7, "Fq", kBlack);
  turned.text(7, 12, "Fq", kBlack, TextAnchor::kStart, true);
  ASSERT_GT(ink_box(plain).count, 0);
  // Plain pixel (i, j) lands at (j, 11 - i): reading upwards, glyph tops to the left.
  for (int j = 0; j < 12; ++j)
    for (int i = 0; i < 12; ++i) EXPECT_EQ(at(plain, i, j), at(turned, j, 11 - i)) << i << "," << j;
}

TEST(PlotScale, SizesGrowWithTheScale) {
  Canvas t1(80, 20, 1), t3(80, 20, 3);
  t1.text(5, 12, "Scale 123", kBlack);
  t3.text(5, 12, "Scale 123", kBlack);
  const InkBox a = ink_box(t1), b = ink_box(t3);
  EXPECT_EQ(b.count, 9 * a.count);  // each font unit becomes a crisp 3 x 3 block
  EXPECT_EQ(b.x0, 3 * a.x0);
  EXPECT_EQ(b.x1, 3 * a.x1);
  EXPECT_EQ(b.y1, 3 * a.y1);
  Canvas c1(40, 40, 1), c4(40, 40, 4);
  c1.circle(20, 20, 6, kBlack);
  c4.circle(20, 20, 6, kBlack);
  EXPECT_NEAR(total_ink(c4) / total_ink(c1), 16, 0.5);
  Canvas l1(40, 40, 1), l2(40, 40, 2);
  l1.line(5, 5, 35, 30, kBlack, 2);
  l2.line(5, 5, 35, 30, kBlack, 2);
  EXPECT_NEAR(total_ink(l2) / total_ink(l1), 4, 0.2);
}

TEST(PlotTicks, AreRoundValuesInsideTheRange) {
  auto values = [](const std::vector<Tick>& t) {
    std::vector<double> v;
    for (const auto& x : t) v.push_back(x.value);
    return v;
  };
  auto labels = [](const std::vector<Tick>& t) {
    std::vector<std::string> v;
    for (const auto& x : t) v.push_back(x.label);
    return v;
  };
  const auto a = nice_ticks(0.71, 0.7598, 5);
  EXPECT_EQ(labels(a), (std::vector<std::string>{"0.71", "0.72", "0.73", "0.74", "0.75"}));
  EXPECT_NEAR(a[2].value, 0.73, 1e-12);
  EXPECT_EQ(labels(nice_ticks(1, 30, 6, true)), (std::vector<std::string>{"5", "10", "15", "20", "25", "30"}));
  EXPECT_EQ(values(nice_ticks(1, 4, 6, true)), (std::vector<double>{1, 2, 3, 4}));  // no half trials
  EXPECT_EQ(labels(nice_ticks(-1, 1, 4)), (std::vector<std::string>{"-1.0", "-0.5", "0.0", "0.5", "1.0"}));
  EXPECT_EQ(labels(nice_ticks(0, 250000, 5)), (std::vector<std::string>{"0", "50000", "100000", "150000", "200000", "250000"}));
  ASSERT_EQ(nice_ticks(0.73, 0.73).size(), 1u);
  EXPECT_EQ(nice_ticks(0.73, 0.73)[0].label, "0.73");
  EXPECT_TRUE(nice_ticks(-1e308, 1e308).empty());  // the span overflows
  EXPECT_TRUE(nice_ticks(NAN, 1).empty());
  EXPECT_TRUE(nice_ticks(0, INFINITY).empty());
  EXPECT_TRUE(nice_ticks(3, 1).empty());
  for (const auto& t : nice_ticks(-3.7e-5, 9.1e-5, 5)) {
    EXPECT_GE(t.value, -3.7e-5);
    EXPECT_LE(t.value, 9.1e-5);
  }
}

TEST(PlotAxes, DrawTheFrameTickMarksAndLabels) {
  Canvas c(200, 120, 2);
  const PlotFrame f{40, 10, 150, 80, 0, 10, 0, 1};
  const auto xt = nice_ticks(0, 10, 5, true), yt = nice_ticks(0, 1, 4);
  const Rgb stroke{0x99, 0x99, 0x99};
  c.axes(f, xt, yt, parse_color("#fafafa"), stroke, kBlack);
  EXPECT_EQ(at(c, 2 * 100, 2 * 50), parse_color("#fafafa"));  // inside the frame
  EXPECT_EQ(at(c, 2 * 40, 2 * 50), stroke);                     // left edge
  for (const Tick& t : xt) {
    const int x = static_cast<int>(std::lround(2 * f.px(t.value)));
    EXPECT_EQ(at(c, x, 2 * 92), stroke) << t.label;  // the mark below the frame, 2 units down
  }
  EXPECT_TRUE(white(c, 2 * 45, 2 * 92));  // no mark between ticks 0 and 2
  // Labels: ink under the frame (x labels) and left of it (y labels), none elsewhere outside it.
  Canvas bare(200, 120, 2);
  bare.axes(f, {}, {}, parse_color("#fafafa"), stroke, kBlack);
  int below = 0, left = 0;
  for (int y = 0; y < c.image().height(); ++y)
    for (int x = 0; x < c.image().width(); ++x)
      if (at(c, x, y) == kBlack) {
        if (y > 2 * 95) ++below;
        else if (x < 2 * 35) ++left;
        else ADD_FAILURE() << "label ink at " << x << "," << y;
      }
  EXPECT_GT(below, 50);
  EXPECT_GT(left, 50);
  EXPECT_EQ(ink_box(bare).x0, 2 * 40 - 1);  // without ticks only the frame's own stroke
}
