// Classic TIFF files put together byte by byte from the TIFF 6.0 spec, for
// the tests of cpipc's baseline reader: uncompressed strips in either byte
// order, any number of pages, and tags that can be replaced to make the
// damaged or unsupported files a reader meets.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cpipc/io/array.hpp"

namespace cpipc::test {

// A directory entry written as given: `value` is the value itself when
// count x size fits in 4 bytes, else an offset. One or two SHORTs are
// left-justified; two hold `value` twice.
struct TiffTag {
  std::uint16_t type = 4;  // 3 SHORT, 4 LONG
  std::uint32_t count = 1;
  std::uint32_t value = 0;
};

struct TiffPage {
  TiffPage(io::Array pixels_, std::uint16_t photometric_ = 1, std::uint32_t rows_per_strip_ = 0,
           bool strips_backwards_ = false)
      : pixels(std::move(pixels_)),
        photometric(photometric_),
        rows_per_strip(rows_per_strip_),
        strips_backwards(strips_backwards_) {}

  io::Array pixels;                       // [H, W] or [H, W, C], native byte order
  std::uint16_t photometric = 1;          // BlackIsZero; 2 for RGB
  std::uint32_t rows_per_strip = 0;       // 0: the whole image in one strip
  bool strips_backwards = false;          // the last strip first in the file
  bool extra_samples = false;             // ExtraSamples (unspecified) for the samples past gray or RGB
  std::map<std::uint16_t, TiffTag> tags;  // added or replacing the ones written
};

class TiffBytes {
 public:
  explicit TiffBytes(bool big_endian) : big_(big_endian) {}
  void u16(std::uint32_t v) { put(v, 2); }
  void u32(std::uint32_t v) { put(v, 4); }
  void patch32(std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) s_[at + i] = static_cast<char>(v >> 8 * (big_ ? 3 - i : i));
  }
  // A sample of `size` bytes stored natively (little-endian) at `p`.
  void sample(const std::byte* p, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) s_ += static_cast<char>(p[big_ ? size - 1 - i : i]);
  }
  void align() {
    if (s_.size() % 2) s_ += '\0';
  }
  [[nodiscard]] std::size_t size() const { return s_.size(); }
  [[nodiscard]] std::string& str() { return s_; }

 private:
  void put(std::uint32_t v, int n) {
    for (int i = 0; i < n; ++i) s_ += static_cast<char>(v >> 8 * (big_ ? n - 1 - i : i));
  }
  bool big_;
  std::string s_;
};

// The file: "II" or "MM", then per page its strips, out-of-line values and
// directory. With `loop`, the last directory points back at the first.
inline std::string tiff_file(bool big_endian, const std::vector<TiffPage>& pages, bool loop = false) {
  TiffBytes b(big_endian);
  b.str() = big_endian ? "MM" : "II";
  b.u16(42);
  std::size_t next_at = b.size();
  b.u32(0);
  std::uint32_t first_ifd = 0;
  for (const TiffPage& page : pages) {
    const auto& d = page.pixels.desc;
    const auto height = static_cast<std::uint32_t>(d.shape[0]);
    const auto width = static_cast<std::uint32_t>(d.shape[1]);
    const auto samples = static_cast<std::uint32_t>(d.ndim == 3 ? d.shape[2] : 1);
    const std::size_t item = d.dtype.itemsize();
    const std::size_t row_bytes = std::size_t{width} * samples * item;
    const std::uint32_t rps = page.rows_per_strip ? page.rows_per_strip : height;
    const std::uint32_t strips = (height + rps - 1) / rps;
    std::vector<std::uint32_t> offsets(strips), counts(strips);
    for (std::uint32_t k = 0; k < strips; ++k) {
      const std::uint32_t s = page.strips_backwards ? strips - 1 - k : k;
      const std::uint32_t rows = std::min(rps, height - s * rps);
      offsets[s] = static_cast<std::uint32_t>(b.size());
      counts[s] = static_cast<std::uint32_t>(rows * row_bytes);
      const std::byte* p = page.pixels.data.data() + s * rps * row_bytes;
      for (std::size_t i = 0; i < rows * row_bytes; i += item) b.sample(p + i, item);
    }
    b.align();
    // Values too long for their entry, stored before the directory.
    const auto out_of_line = [&](const std::vector<std::uint32_t>& v, int size) {
      const auto at = static_cast<std::uint32_t>(b.size());
      for (const std::uint32_t x : v) size == 2 ? b.u16(x) : b.u32(x);
      b.align();
      return at;
    };
    std::map<std::uint16_t, TiffTag> tags;
    const auto per_sample = [&](std::uint32_t v) {
      if (samples <= 2) return TiffTag{3, samples, v};
      return TiffTag{3, samples, out_of_line(std::vector<std::uint32_t>(samples, v), 2)};
    };
    const auto strip_array = [&](const std::vector<std::uint32_t>& v) {
      return strips == 1 ? TiffTag{4, 1, v[0]} : TiffTag{4, strips, out_of_line(v, 4)};
    };
    const std::uint32_t format = d.dtype.code == ipc::DTypeCode::uint   ? 1
                                 : d.dtype.code == ipc::DTypeCode::int_ ? 2
                                                                        : 3;
    tags[256] = {4, 1, width};
    tags[257] = {4, 1, height};
    tags[258] = per_sample(static_cast<std::uint32_t>(item * 8));
    tags[259] = {3, 1, 1};
    tags[262] = {3, 1, page.photometric};
    tags[273] = strip_array(offsets);
    tags[277] = {3, 1, samples};
    tags[278] = {4, 1, rps};
    tags[279] = strip_array(counts);
    tags[284] = {3, 1, 1};
    tags[339] = per_sample(format);
    // What tifffile writes for a channels-last image of more than 4 samples.
    const std::uint32_t extra = samples - (page.photometric == 2 ? 3 : 1);
    if (page.extra_samples && extra > 0) {
      tags[338] =
          extra <= 2 ? TiffTag{3, extra, 0} : TiffTag{3, extra, out_of_line(std::vector<std::uint32_t>(extra, 0), 2)};
    }
    for (const auto& [tag, value] : page.tags) tags[tag] = value;

    const auto ifd = static_cast<std::uint32_t>(b.size());
    if (first_ifd == 0) first_ifd = ifd;
    b.patch32(next_at, ifd);
    b.u16(static_cast<std::uint32_t>(tags.size()));
    for (const auto& [tag, t] : tags) {
      b.u16(tag);
      b.u16(t.type);
      b.u32(t.count);
      if (t.type == 3 && t.count <= 2) {
        b.u16(t.value);
        b.u16(t.count == 2 ? t.value : 0);
      } else {
        b.u32(t.value);
      }
    }
    next_at = b.size();
    b.u32(0);
  }
  if (loop) b.patch32(next_at, first_ifd);
  return std::move(b.str());
}

}  // namespace cpipc::test
