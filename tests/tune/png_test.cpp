#include "bluewhale/tune/png.h"

#include <gtest/gtest.h>

#include <random>

#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "test_util.h"
#include "tune/png_reader.h"

using namespace bluewhale;
using namespace bluewhale::tune;
using bluewhale::testing::decode_png;
using bluewhale::testing::TempDir;

namespace {

// Noise on top of smooth gradients and flat runs, so rows pick different filters.
Image test_image(int w, int h, int channels, unsigned seed) {
  Image img(w, h, channels);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.pixel(x, y);
      for (int c = 0; c < channels; ++c) {
        const int kind = (y / 3) % 3;
        p[c] = kind == 0 ? static_cast<uint8_t>(rng()) : kind == 1 ? static_cast<uint8_t>(x * 7 + y * 3 + c * 50) : 200;
      }
    }
  return img;
}

void expect_round_trip(const Image& img, int level) {
  const auto d = decode_png(encode_png(img, level));
  EXPECT_EQ(d.width, img.width());
  EXPECT_EQ(d.height, img.height());
  EXPECT_EQ(d.channels, img.channels());
  EXPECT_EQ(d.pixels, img.data()) << img.width() << "x" << img.height() << "x" << img.channels() << " level " << level;
}

}  // namespace

TEST(Png, RoundTripsRgbAndRgbaPixelsExactly) {
  for (int channels : {3, 4})
    for (auto [w, h] : {std::pair{1, 1}, {2, 1}, {1, 5}, {7, 3}, {33, 17}, {256, 40}})
      for (int level : {0, 1, 6, 9}) expect_round_trip(test_image(w, h, channels, static_cast<unsigned>(w * h + level)), level);
}

TEST(Png, ChunksAreIhdrIdatIendWithTheImageHeader) {
  const std::string f = encode_png(test_image(20, 10, 3, 1));
  EXPECT_EQ(f.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  const auto d = decode_png(f);  // checks every CRC
  ASSERT_EQ(d.chunk_types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
  // IHDR: width 20, height 10, 8 bits, colour type 2 (RGB).
  EXPECT_EQ(f.substr(8, 8), std::string("\0\0\0\x0dIHDR", 8));
  EXPECT_EQ(f.substr(16, 10), std::string("\0\0\0\x14\0\0\0\x0a\x08\x02", 10));
  EXPECT_EQ(decode_png(encode_png(test_image(3, 3, 4, 1))).channels, 4);
}

TEST(Png, TheReaderCatchesACorruptedByte) {
  // The reader is what the other tests trust; it must notice damage.
  std::string f = encode_png(test_image(16, 16, 3, 2));
  for (std::size_t at : {std::size_t{20}, f.size() / 2, f.size() - 5}) {
    std::string bad = f;
    bad[at] = static_cast<char>(bad[at] ^ 0x40);
    EXPECT_THROW(decode_png(bad), std::runtime_error) << "byte " << at;
  }
  EXPECT_THROW(decode_png(f.substr(0, f.size() - 3)), std::runtime_error);
}

TEST(Png, LargeImagesSplitTheirDataOverSeveralIdatChunks) {
  // Incompressible noise: more than 1 MiB of deflate output.
  Image img(700, 600, 4);
  std::mt19937 rng(3);
  for (auto& b : img.data()) b = static_cast<uint8_t>(rng());
  const std::string f = encode_png(img, 1);
  const auto d = decode_png(f);
  EXPECT_GE(std::count(d.chunk_types.begin(), d.chunk_types.end(), "IDAT"), 2);
  EXPECT_EQ(d.pixels, img.data());
}

TEST(Png, FlatImagesCompressToAFewBytesPerRow) {
  const uint8_t white[3] = {255, 255, 255};
  const Image img(1200, 800, 3, white);
  EXPECT_EQ(img.pixel(1199, 799)[2], 255);
  const std::string f = encode_png(img);
  EXPECT_LT(f.size(), 8000u);
  EXPECT_EQ(decode_png(f).pixels, img.data());
}

TEST(Png, SizesChannelsAndLevelsAreBounded) {
  EXPECT_THROW(Image(0, 10), ConfigError);
  EXPECT_THROW(Image(10, -1), ConfigError);
  EXPECT_THROW(Image(kMaxImageSide + 1, 1), ConfigError);
  EXPECT_NO_THROW(Image(kMaxImageSide, 1));
  try {
    Image(kMaxImageSide, kMaxImageSide);  // each side fine, too many pixels
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("16384x16384"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Image(4, 4, 2), ConfigError);
  EXPECT_THROW(encode_png(Image(2, 2), 10), ConfigError);
  EXPECT_THROW(encode_png(Image(2, 2), -1), ConfigError);
}

TEST(Png, WritesAtomicallyAndNamesAnUnwritablePath) {
  TempDir dir;
  const Image a = test_image(30, 20, 3, 5), b = test_image(10, 40, 4, 6);
  write_png(dir / "p.png", a);
  EXPECT_EQ(decode_png(read_file(dir / "p.png")).pixels, a.data());
  write_png(dir / "p.png", b);  // replaces the whole file
  const auto d = decode_png(read_file(dir / "p.png"));
  EXPECT_EQ(d.width, 10);
  EXPECT_EQ(d.pixels, b.data());
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u);  // no temporary left behind
  try {
    write_png(dir / "missing" / "p.png", a);
    ADD_FAILURE() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  // A path under a regular file cannot be a directory.
  EXPECT_THROW(write_png(dir / "p.png" / "x.png", a), IoError);
  EXPECT_EQ(decode_png(read_file(dir / "p.png")).pixels, b.data());  // the earlier file is untouched
}
