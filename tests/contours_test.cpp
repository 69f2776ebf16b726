// The border following behind the outlines text (src/io/contours.cpp):
// small masks whose contours were traced by hand, and, where the build has
// OpenCV, thousands of random images traced by it and by cv::findContours,
// compared point for point, both as whole contour lists and as the outline
// that Cellpose's rule picks for each mask.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpipc/io/outlines.hpp"
// The tracer itself is a cpipc_io internal, not public API.
#include "../src/io/contours.hpp"

#ifdef CPIPC_HAVE_OPENCV
#include <opencv2/imgproc.hpp>
#endif

namespace io = cpipc::io;
using io::Polygon;

namespace {

// A binary image written as text rows: '#' object, '.' background.
struct Picture {
  std::vector<std::uint8_t> pixels;
  int height = 0, width = 0;
};

Picture picture(std::initializer_list<std::string> rows) {
  Picture p;
  p.height = static_cast<int>(rows.size());
  p.width = static_cast<int>(rows.begin()->size());
  for (const std::string& row : rows) {
    for (const char c : row) p.pixels.push_back(c == '#' ? 1 : 0);
  }
  return p;
}

std::vector<Polygon> contours_of(const Picture& p) {
  return io::detail::external_contours(p.pixels.data(), p.height, p.width);
}

TEST(Contours, ALonePixelIsOnePoint) {
  EXPECT_EQ(contours_of(picture({"...", ".#.", "..."})), (std::vector<Polygon>{{{1, 1}}}));
}

TEST(Contours, ALineOnePixelWideIsWalkedThereAndBack) {
  EXPECT_EQ(contours_of(picture({"###"})), (std::vector<Polygon>{{{0, 0}, {1, 0}, {2, 0}, {1, 0}}}));
  EXPECT_EQ(contours_of(picture({"#..", ".#.", "..#"})), (std::vector<Polygon>{{{0, 0}, {1, 1}, {2, 2}, {1, 1}}}));
}

TEST(Contours, ABlockGoesDownItsLeftSideFirst) {
  EXPECT_EQ(contours_of(picture({"##", "##"})), (std::vector<Polygon>{{{0, 0}, {0, 1}, {1, 1}, {1, 0}}}));
  EXPECT_EQ(contours_of(picture({"....", ".###", ".###", ".###"})),
            (std::vector<Polygon>{{{1, 1}, {1, 2}, {1, 3}, {2, 3}, {3, 3}, {3, 2}, {3, 1}, {2, 1}}}));
}

TEST(Contours, ARingIsItsOuterBorderAndWhatIsInItsHoleIsNotTraced) {
  const std::vector<Polygon> contours = contours_of(picture({"#####", "#...#", "#.#.#", "#...#", "#####"}));
  ASSERT_EQ(contours.size(), 1u);
  EXPECT_EQ(contours[0], (Polygon{{0, 0},
                                  {0, 1},
                                  {0, 2},
                                  {0, 3},
                                  {0, 4},
                                  {1, 4},
                                  {2, 4},
                                  {3, 4},
                                  {4, 4},
                                  {4, 3},
                                  {4, 2},
                                  {4, 1},
                                  {4, 0},
                                  {3, 0},
                                  {2, 0},
                                  {1, 0}}));
}

TEST(Contours, ThePiecesComeLastFoundFirst) {
  // First pixels in raster order: (3, 0), (0, 1), (2, 3).
  EXPECT_EQ(contours_of(picture({"...##", "#....", "#....", "..#.."})),
            (std::vector<Polygon>{{{2, 3}}, {{0, 1}, {0, 2}}, {{3, 0}, {4, 0}}}));
}

TEST(Contours, AnObjectRightOfAnotherIsFoundOnTheSameRows) {
  // On row 1 the scan meets the ring's left border, its hole, its right
  // border, background and the bar: the bar starts an outer border.
  EXPECT_EQ(contours_of(picture({"###..", "#.#.#", "###.#"})),
            (std::vector<Polygon>{{{4, 1}, {4, 2}}, {{0, 0}, {0, 1}, {0, 2}, {1, 2}, {2, 2}, {2, 1}, {2, 0}, {1, 0}}}));
}

TEST(Contours, AnEmptyImageHasNone) {
  EXPECT_TRUE(contours_of(picture({"....", "...."})).empty());
  EXPECT_TRUE(io::detail::external_contours(nullptr, 0, 0).empty());
}

// Labels written as text rows: '.' background, '1'..'9' a label.
std::vector<std::uint32_t> labels(std::initializer_list<std::string> rows) {
  std::vector<std::uint32_t> out;
  for (const std::string& row : rows) {
    for (const char c : row) out.push_back(c == '.' ? 0 : static_cast<std::uint32_t>(c - '0'));
  }
  return out;
}

TEST(OutlinePolygons, OfEqualPiecesTheOneThatStartsLastIsKept) {
  // Two 3x3 blocks of label 1, 8 points each: findContours lists the lower
  // one first, and np.argmax keeps the first of the longest.
  const auto l = labels({"111.....", "111.....", "111.....", "........", ".....111", ".....111", ".....111"});
  EXPECT_EQ(io::outline_polygons(l.data(), 7, 8, 1),
            (std::vector<Polygon>{{{5, 4}, {5, 5}, {5, 6}, {6, 6}, {7, 6}, {7, 5}, {7, 4}, {6, 4}}}));
}

TEST(OutlinePolygons, ThePieceWithTheMostPointsIsKeptAndFourPointsAreNone) {
  const auto l = labels({"1111...2", "1111..2.", "1111....", "1111....", "......33", ".111..33"});
  EXPECT_EQ(io::outline_polygons(l.data(), 6, 8, 3),
            (std::vector<Polygon>{
                {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 3}, {2, 3}, {3, 3}, {3, 2}, {3, 1}, {3, 0}, {2, 0}, {1, 0}},
                {},    // label 2: a diagonal pair, 2 points
                {}}))  // label 3: a 2x2 block, 4 points
      << "label 1's second piece, a bar of 3, has 4 points";
}

TEST(OutlinePolygons, AMaskInsideAnothersHoleIsOutlinedOnItsOwn) {
  const auto l = labels({"11111", "1...1", "1.2.1", "1...1", "11111"});
  const auto polygons = io::outline_polygons(l.data(), 5, 5, 2);
  ASSERT_EQ(polygons.size(), 2u);
  EXPECT_EQ(polygons[0].size(), 16u);
  EXPECT_TRUE(polygons[1].empty()) << "one pixel";
}

// ---- against OpenCV ----

// Random binary images of the kinds that stress a border follower, `seed`
// choosing kind and size.
class Images {
 public:
  explicit Images(unsigned seed) : rng_(seed) {}

  Picture next() {
    Picture p;
    p.height = size(1, 48);
    p.width = size(1, 48);
    p.pixels.assign(static_cast<std::size_t>(p.height) * p.width, 0);
    switch (size(0, 5)) {
      case 0:
        noise(p, std::uniform_real_distribution<double>(0.05, 0.95)(rng_));
        break;
      case 1:
        blobs_with_holes(p);
        break;
      case 2:
        lines(p);
        break;
      case 3:
        copies(p);
        break;
      case 4:
        noise(p, 0.08);  // mostly lone pixels and pairs
        break;
      default:  // all of it at once
        blobs_with_holes(p);
        lines(p);
        noise(p, 0.03);
        break;
    }
    return p;
  }

 private:
  int size(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  static void put(Picture& p, int x, int y, std::uint8_t v) {
    if (x >= 0 && y >= 0 && x < p.width && y < p.height) p.pixels[static_cast<std::size_t>(y) * p.width + x] = v;
  }
  void ellipse(Picture& p, std::uint8_t v) {
    const int cx = size(-2, p.width + 1), cy = size(-2, p.height + 1), rx = size(0, 12), ry = size(0, 12);
    for (int y = cy - ry; y <= cy + ry; ++y) {
      for (int x = cx - rx; x <= cx + rx; ++x) {
        const double u = (x - cx) / (rx + 0.5), w = (y - cy) / (ry + 0.5);
        if (u * u + w * w <= 1.0) put(p, x, y, v);
      }
    }
  }
  void noise(Picture& p, double density) {
    std::bernoulli_distribution on(density);
    for (auto& v : p.pixels) v |= on(rng_) ? 1 : 0;
  }
  // Blobs, holes cut in them, and pieces dropped into the holes.
  void blobs_with_holes(Picture& p) {
    for (int k = size(1, 4); k > 0; --k) ellipse(p, 1);
    for (int k = size(0, 4); k > 0; --k) ellipse(p, 0);
    for (int k = size(0, 6); k > 0; --k) {
      const int x = size(0, p.width - 1), y = size(0, p.height - 1), s = size(0, 2);
      for (int dy = 0; dy <= s; ++dy) {
        for (int dx = 0; dx <= s; ++dx) put(p, x + dx, y + dy, 1);
      }
    }
  }
  // Straight lines one pixel wide, many diagonal, some closing into rings.
  void lines(Picture& p) {
    for (int k = size(1, 5); k > 0; --k) {
      int x = size(0, p.width - 1), y = size(0, p.height - 1);
      const int dx = size(-1, 1), dy = size(-1, 1);
      for (int n = size(1, 30); n > 0; --n, x += dx, y += dy) put(p, x, y, 1);
    }
    if (size(0, 1) == 0) {  // a diamond: a closed diagonal ring
      const int cx = size(0, p.width - 1), cy = size(0, p.height - 1), r = size(1, 10);
      for (int t = 0; t < r; ++t) {
        put(p, cx + t, cy - r + t, 1);
        put(p, cx + r - t, cy + t, 1);
        put(p, cx - t, cy + r - t, 1);
        put(p, cx - r + t, cy - t, 1);
      }
    }
  }
  // One small random shape stamped several times: pieces of equal length.
  void copies(Picture& p) {
    const int h = size(1, 4), w = size(1, 4);
    std::vector<std::uint8_t> shape(static_cast<std::size_t>(h) * w);
    std::bernoulli_distribution on(0.6);
    for (auto& v : shape) v = on(rng_) ? 1 : 0;
    for (int k = size(2, 6); k > 0; --k) {
      const int x0 = size(-1, p.width - 1), y0 = size(-1, p.height - 1);
      for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
          if (shape[static_cast<std::size_t>(y) * w + x]) put(p, x0 + x, y0 + y, 1);
        }
      }
    }
  }

  std::mt19937 rng_;
};

[[maybe_unused]] std::string show(const Picture& p) {
  std::ostringstream out;
  for (int y = 0; y < p.height; ++y) {
    for (int x = 0; x < p.width; ++x) out << (p.pixels[static_cast<std::size_t>(y) * p.width + x] ? '#' : '.');
    out << '\n';
  }
  return out.str();
}

[[maybe_unused]] std::string show(const std::vector<Polygon>& polygons) {
  std::ostringstream out;
  for (const Polygon& polygon : polygons) {
    out << '[';
    for (const auto& [x, y] : polygon) out << " (" << x << ',' << y << ')';
    out << " ]\n";
  }
  return out.str();
}

#ifdef CPIPC_HAVE_OPENCV

std::vector<Polygon> opencv_contours(const std::uint8_t* pixels, int height, int width) {
  cv::Mat image(height, width, CV_8U);
  std::copy(pixels, pixels + static_cast<std::size_t>(height) * width, image.ptr<std::uint8_t>());
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(image, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
  std::vector<Polygon> out;
  for (const auto& contour : contours) {
    Polygon& polygon = out.emplace_back();
    for (const cv::Point& point : contour) polygon.push_back({point.x, point.y});
  }
  return out;
}

// Cellpose's utils.outlines_list_single, on the whole image as Cellpose
// runs it: each label's mask, findContours, np.argmax of the lengths, and
// nothing for 4 points or fewer.
std::vector<Polygon> cellpose_outlines(const std::vector<std::uint32_t>& labels, int height, int width,
                                       std::uint32_t count) {
  std::vector<Polygon> out;
  std::vector<std::uint8_t> mask(labels.size());
  for (std::uint32_t n = 1; n <= count; ++n) {
    std::transform(labels.begin(), labels.end(), mask.begin(), [n](std::uint32_t v) { return v == n ? 1 : 0; });
    if (std::find(mask.begin(), mask.end(), 1) == mask.end()) continue;
    const std::vector<Polygon> contours = opencv_contours(mask.data(), height, width);
    const auto longest = std::max_element(contours.begin(), contours.end(),
                                          [](const Polygon& a, const Polygon& b) { return a.size() < b.size(); });
    out.push_back(longest->size() > 4 ? *longest : Polygon{});
  }
  return out;
}

#define SKIP_WITHOUT_OPENCV()
#else
#define SKIP_WITHOUT_OPENCV() GTEST_SKIP() << "this cpipc was built without OpenCV: no findContours to compare with"
#endif

TEST(Contours, AreFindContoursPointForPointOnRandomImages) {
  SKIP_WITHOUT_OPENCV();
#ifdef CPIPC_HAVE_OPENCV
  Images images(20240611);
  std::size_t contours = 0, ties = 0;
  for (int i = 0; i < 6000; ++i) {
    const Picture p = images.next();
    const std::vector<Polygon> want = opencv_contours(p.pixels.data(), p.height, p.width);
    const std::vector<Polygon> got = io::detail::external_contours(p.pixels.data(), p.height, p.width);
    ASSERT_EQ(got, want) << "image " << i << ":\n"
                         << show(p) << "ours:\n"
                         << show(got) << "findContours:\n"
                         << show(want);
    contours += want.size();
    for (std::size_t k = 1; k < want.size(); ++k) ties += want[k].size() == want[0].size() ? 1 : 0;
  }
  // What the images held, so that a generator that went flat would show.
  EXPECT_GT(contours, 30000u);
  EXPECT_GT(ties, 3000u);
#endif
}

TEST(OutlinePolygons, AreCellposesOnRandomLabelImages) {
  SKIP_WITHOUT_OPENCV();
#ifdef CPIPC_HAVE_OPENCV
  Images images(77);
  std::mt19937 rng(5);
  std::size_t several_pieces = 0;
  for (int i = 0; i < 1500; ++i) {
    // Labels painted over one another from random binary images: masks of
    // several pieces, inside each other's holes, some painted over entirely.
    const std::uint32_t count = std::uniform_int_distribution<std::uint32_t>(1, 8)(rng);
    Picture first = images.next();
    const int height = first.height, width = first.width;
    std::vector<std::uint32_t> l(first.pixels.size(), 0);
    for (std::uint32_t n = 1; n <= count; ++n) {
      Picture layer = n == 1 ? first : images.next();
      for (int y = 0; y < std::min(height, layer.height); ++y) {
        for (int x = 0; x < std::min(width, layer.width); ++x) {
          if (layer.pixels[static_cast<std::size_t>(y) * layer.width + x])
            l[static_cast<std::size_t>(y) * width + x] = n;
        }
      }
    }
    const std::vector<Polygon> want = cellpose_outlines(l, height, width, count);
    const std::vector<Polygon> got = io::outline_polygons(l.data(), height, width, count);
    ASSERT_EQ(got, want) << "label image " << i << " (" << height << " x " << width << ")";
    for (std::uint32_t n = 1; n <= count; ++n) {
      std::vector<std::uint8_t> mask(l.size());
      std::transform(l.begin(), l.end(), mask.begin(), [n](std::uint32_t v) { return v == n ? 1 : 0; });
      several_pieces += opencv_contours(mask.data(), height, width).size() > 1 ? 1 : 0;
    }
  }
  EXPECT_GT(several_pieces, 1000u);
#endif
}

}  // namespace
