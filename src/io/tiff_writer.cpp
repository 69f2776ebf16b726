#include "tiff_writer.hpp"

#include <bit>
#include <limits>

#include "cpipc/error.hpp"
#include "cpipc/io/replace_file.hpp"

namespace cpipc::io::detail {

namespace {

template <class T>
void put(std::string& b, T v) {
  static_assert(std::endian::native == std::endian::little);
  b.append(reinterpret_cast<const char*>(&v), sizeof v);
}

}  // namespace

void write_uint32_tiff(const std::string& path, std::span<const std::uint32_t> labels, std::uint32_t height,
                       std::uint32_t width) {
  const std::uint64_t bytes = std::uint64_t{height} * width * 4;
  constexpr std::uint32_t kDataOffset = 160;  // after the header and the 11-entry IFD, 32-byte aligned
  if (bytes + kDataOffset > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(Errc::invalid_argument, "cannot write '" + path + "': over 4 GiB of masks; save them as .npy");
  }
  std::string b;
  b += "II";
  put<std::uint16_t>(b, 42);
  put<std::uint32_t>(b, 8);
  const auto entry = [&](std::uint16_t tag, bool long_value, std::uint32_t value) {
    put<std::uint16_t>(b, tag);
    put<std::uint16_t>(b, long_value ? 4 : 3);  // LONG or SHORT
    put<std::uint32_t>(b, 1);
    if (long_value) {
      put<std::uint32_t>(b, value);
    } else {
      put<std::uint16_t>(b, static_cast<std::uint16_t>(value));
      put<std::uint16_t>(b, 0);
    }
  };
  put<std::uint16_t>(b, 11);
  entry(256, true, width);                              // ImageWidth
  entry(257, true, height);                             // ImageLength
  entry(258, false, 32);                                // BitsPerSample
  entry(259, false, 1);                                 // Compression: none
  entry(262, false, 1);                                 // Photometric: BlackIsZero
  entry(273, true, kDataOffset);                        // StripOffsets
  entry(277, false, 1);                                 // SamplesPerPixel
  entry(278, true, height);                             // RowsPerStrip
  entry(279, true, static_cast<std::uint32_t>(bytes));  // StripByteCounts
  entry(284, false, 1);                                 // PlanarConfiguration: contiguous
  entry(339, false, 1);                                 // SampleFormat: unsigned integer
  put<std::uint32_t>(b, 0);                             // no next IFD
  b.resize(kDataOffset, '\0');
  write_file(path, {b, {reinterpret_cast<const char*>(labels.data()), static_cast<std::size_t>(bytes)}});
}

}  // namespace cpipc::io::detail
