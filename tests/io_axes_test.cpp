// io::arrange_axes: named, given and guessed axes put in cpipc's order
// [Z,] Y, X [, C], time points as frames. Pure: no files.
#include <gtest/gtest.h>

#include <cstring>

#include "cpipc/error.hpp"
#include "cpipc/io/image.hpp"

namespace cpipc {
namespace {

// A uint16 array whose value at each index is its raster index (mod 2^16),
// so a transposition shows in the values.
io::StoredImage stored(std::vector<std::int64_t> shape, std::string axes, std::string source = "") {
  io::StoredImage s;
  s.dtype = ipc::kUInt16;
  s.shape = std::move(shape);
  std::int64_t n = 1;
  for (std::int64_t e : s.shape) n *= e;
  s.data.resize(static_cast<std::size_t>(n) * 2);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto v = static_cast<std::uint16_t>(i);
    std::memcpy(s.data.data() + 2 * i, &v, 2);
  }
  s.axes = std::move(axes);
  s.source = std::move(source);
  return s;
}

std::uint16_t at(const io::Image& img, std::initializer_list<std::int64_t> index) {
  const ipc::TensorDesc& d = img.array.desc;
  std::int64_t off = 0;
  int k = 0;
  for (std::int64_t i : index) off += i * d.strides[static_cast<std::size_t>(k++)];
  std::uint16_t v;
  std::memcpy(&v, img.array.data.data() + off * 2, 2);
  return v;
}

std::vector<std::int64_t> shape_of(const io::Image& img) {
  const ipc::TensorDesc& d = img.array.desc;
  return {d.shape.begin(), d.shape.begin() + d.ndim};
}

std::string refusal(io::StoredImage s, io::AxisOptions o = {}) {
  try {
    (void)io::arrange_axes(std::move(s), o, "x.tif");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    return e.what();
  }
  return "(accepted)";
}

using Shape = std::vector<std::int64_t>;

io::AxisOptions named(std::optional<int> channel_axis, std::optional<int> z_axis) {
  io::AxisOptions o;
  o.channel_axis = channel_axis;
  o.z_axis = z_axis;
  return o;
}

TEST(Axes, GrayIsYX) {
  const io::ImageFile f = io::arrange_axes(stored({4, 5}, "YX", "PNG"), {}, "x.png");
  ASSERT_EQ(f.frames.size(), 1u);
  EXPECT_EQ(f.frames[0].axes, "YX");
  EXPECT_EQ(shape_of(f.frames[0]), (Shape{4, 5}));
  EXPECT_EQ(f.decided_by, "fixed by the format");
}

TEST(Axes, PlanarSamplesGoLast) {
  const io::ImageFile f = io::arrange_axes(stored({3, 4, 5}, "SYX"), {}, "x.tif");
  EXPECT_EQ(f.frames[0].axes, "YXC");
  EXPECT_EQ(shape_of(f.frames[0]), (Shape{4, 5, 3}));
  // element (y=1, x=2, c=2) was stored at (2, 1, 2)
  EXPECT_EQ(at(f.frames[0], {1, 2, 2}), 2 * 20 + 1 * 5 + 2);
}

TEST(Axes, UnknownThreeAxesGuessedAsCellpose) {
  // channels first when the first axis is the smaller
  io::ImageFile f = io::arrange_axes(stored({2, 6, 7}, "QQQ"), {}, "x.npy");
  EXPECT_EQ(f.frames[0].axes, "YXC");
  EXPECT_EQ(shape_of(f.frames[0]), (Shape{6, 7, 2}));
  EXPECT_EQ(f.decided_by, "guessed as Cellpose 4 does");
  // else channels last
  f = io::arrange_axes(stored({6, 7, 3}, "QQQ"), {}, "x.npy");
  EXPECT_EQ(f.frames[0].axes, "YXC");
  EXPECT_EQ(shape_of(f.frames[0]), (Shape{6, 7, 3}));
}

TEST(Axes, PagesOfAKnownPageAreChannelsOrPlanes) {
  io::ImageFile f = io::arrange_axes(stored({3, 8, 9}, "QYX"), {}, "x.tif");
  EXPECT_EQ(f.frames[0].axes, "YXC");
  f = io::arrange_axes(stored({70, 8, 9}, "QYX"), {}, "x.tif");
  EXPECT_EQ(f.frames[0].axes, "ZYX");
  EXPECT_EQ(shape_of(f.frames[0]), (Shape{70, 8, 9}));
}

TEST(Axes, ImageJHyperstackTimeIsFrames) {
  const io::ImageFile f = io::arrange_axes(stored({2, 3, 2, 4, 5}, "TZCYX", "ImageJ"), {}, "x.tif");
  ASSERT_EQ(f.frames.size(), 2u);
  EXPECT_EQ(f.decided_by, "ImageJ metadata");
  for (const io::Image& img : f.frames) {
    EXPECT_EQ(img.axes, "ZYXC");
    EXPECT_EQ(shape_of(img), (Shape{3, 4, 5, 2}));
  }
  // frame 1, z 2, y 3, x 4, c 1 was stored at (1, 2, 1, 3, 4)
  const int stored_index = (((1 * 3 + 2) * 2 + 1) * 4 + 3) * 5 + 4;
  EXPECT_EQ(at(f.frames[1], {2, 3, 4, 1}), stored_index);
}

TEST(Axes, FourUnknownAxesAreZThenChannelsAsCellpose) {
  io::ImageFile f = io::arrange_axes(stored({5, 2, 8, 9}, "QQQQ"), {}, "x.npy");
  EXPECT_EQ(f.frames[0].axes, "ZYXC");
  EXPECT_EQ(shape_of(f.frames[0]), (Shape{5, 8, 9, 2}));
  f = io::arrange_axes(stored({5, 8, 9, 2}, "QQQQ"), {}, "x.npy");
  EXPECT_EQ(shape_of(f.frames[0]), (Shape{5, 8, 9, 2}));
}

TEST(Axes, NamedAxesWinOverMetadataAndGuesses) {
  // the guess would make axis 0 the channels; the user says it is z
  io::ImageFile f = io::arrange_axes(stored({2, 6, 7}, "QQQ"), named({}, 0), "x.npy");
  EXPECT_EQ(f.frames[0].axes, "ZYX");
  EXPECT_EQ(f.decided_by, "--z-axis");
  f = io::arrange_axes(stored({6, 7, 2}, "QQQ"), named(-1, {}), "x.npy");
  EXPECT_EQ(f.frames[0].axes, "YXC");
  // metadata says C at 0, the user says channels are at 1 of a 4-axis array
  f = io::arrange_axes(stored({2, 3, 6, 7}, "CZYX"), named(1, 0), "x.tif");
  EXPECT_EQ(f.frames[0].axes, "ZYXC");
  EXPECT_EQ(shape_of(f.frames[0]), (Shape{2, 6, 7, 3}));
}

TEST(Axes, ContradictionsAreOneLine) {
  EXPECT_NE(refusal(stored({6, 7}, "QQ"), named(0, {})).find("drop --channel-axis"), std::string::npos);
  EXPECT_NE(refusal(stored({2, 6, 7}, "QQQ"), named(3, {})).find("out of range"), std::string::npos);
  EXPECT_NE(refusal(stored({2, 6, 7}, "QQQ"), named(0, 0)).find("same axis"), std::string::npos);
  EXPECT_NE(refusal(stored({2, 2, 2, 6, 7}, "QQQQQ")).find("at most Z, Y, X and C"), std::string::npos);
  EXPECT_NE(refusal(stored({2, 2, 6, 7}, "TTYX")).find("two time axes"), std::string::npos);
}

}  // namespace
}  // namespace cpipc
