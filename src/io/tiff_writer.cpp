#include "tiff_writer.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/replace_file.hpp"
#include "tiff_handle.hpp"

namespace cpipc::io::detail {

namespace {

// A growable, seekable file in memory for libtiff to write into: the bytes
// then go to the disk in one checked, atomic write.
struct MemoryFile {
  std::vector<char> bytes;
  std::uint64_t pos = 0;
};

MemoryFile& mem(thandle_t h) { return *static_cast<MemoryFile*>(h); }

tmsize_t mem_read(thandle_t h, void* buf, tmsize_t n) {
  MemoryFile& m = mem(h);
  const std::uint64_t left = m.pos < m.bytes.size() ? m.bytes.size() - m.pos : 0;
  const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(left, static_cast<std::uint64_t>(n)));
  std::memcpy(buf, m.bytes.data() + m.pos, k);
  m.pos += k;
  return static_cast<tmsize_t>(k);
}

tmsize_t mem_write(thandle_t h, void* buf, tmsize_t n) {
  MemoryFile& m = mem(h);
  try {
    const std::uint64_t end = m.pos + static_cast<std::uint64_t>(n);
    if (end > m.bytes.size()) m.bytes.resize(end);
    std::memcpy(m.bytes.data() + m.pos, buf, static_cast<std::size_t>(n));
    m.pos = end;
    return n;
  } catch (const std::bad_alloc&) {  // libtiff reports the failed write
    return -1;
  }
}

toff_t mem_seek(thandle_t h, toff_t off, int whence) {
  MemoryFile& m = mem(h);
  const std::uint64_t base = whence == SEEK_CUR ? m.pos : whence == SEEK_END ? m.bytes.size() : 0;
  m.pos = base + off;
  return m.pos;
}

int mem_close(thandle_t) { return 0; }
toff_t mem_size(thandle_t h) { return mem(h).bytes.size(); }
int mem_map(thandle_t, void**, toff_t*) { return 0; }
void mem_unmap(thandle_t, void*, toff_t) {}

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
  throw Error(Errc::invalid_argument, "cannot write '" + path + "': " + why);
}

std::uint16_t sample_format(const std::string& path, ipc::DType d) {
  const bool whole = d.lanes == 1 && (d.bits == 8 || d.bits == 16 || d.bits == 32 || d.bits == 64);
  // numpy's bool is one byte of 0 or 1: written as uint8, the same bytes.
  if (whole && (d.code == ipc::DTypeCode::uint || d.code == ipc::DTypeCode::bool_)) return SAMPLEFORMAT_UINT;
  if (whole && d.code == ipc::DTypeCode::int_) return SAMPLEFORMAT_INT;
  if (whole && d.code == ipc::DTypeCode::float_ && d.bits >= 16) return SAMPLEFORMAT_IEEEFP;
  refuse(path, ipc::to_string(d) + " has no TIFF sample format; save it as .npy");
}

std::string join(const std::vector<std::int64_t>& v) {
  std::string s;
  for (const std::int64_t e : v) s += (s.empty() ? "" : ", ") + std::to_string(e);
  return s;
}

}  // namespace

void write_tiff(const std::string& path, const ipc::HostView& view, std::string_view axes) {
  const ipc::TensorDesc& d = view.desc;
  const std::string_view allowed[] = {"YX",   "YXC",   "ZYX", "ZYXC", "TYX",  "TYXC",
                                      "TZYX", "TZYXC", "YXS", "ZYXS", "TYXS", "TZYXS"};
  if (std::find(std::begin(allowed), std::end(allowed), axes) == std::end(allowed) || axes.size() != d.ndim) {
    refuse(path, "axes '" + std::string(axes) + "' do not fit a " + d.to_string() +
                     " array; give YX, YXC, ZYX or ZYXC (optionally after T), or YXS / ZYXS for RGB");
  }
  const std::uint16_t format = sample_format(path, d.dtype);
  // S: the three samples of an RGB pixel, stored interleaved in each page
  // (PhotometricInterpretation RGB), which Fiji and viewers show in colour.
  const bool rgb = axes.back() == 'S';
  if (rgb && (d.dtype != ipc::kUInt8 || d.shape[d.ndim - 1] != 3 || d.strides[d.ndim - 1] != 1 ||
              d.strides[d.ndim - 2] != 3)) {
    refuse(path, "an RGB TIFF needs uint8 pixels of 3 interleaved samples; got " + d.to_string());
  }
  const auto extent = [&](char letter) -> std::int64_t {
    const std::size_t i = axes.find(letter);
    return i == std::string_view::npos ? 1 : d.shape[i];
  };
  const auto stride = [&](char letter) -> std::int64_t {
    const std::size_t i = axes.find(letter);
    return i == std::string_view::npos ? 0 : d.strides[i];
  };
  const std::int64_t t_n = extent('T'), z_n = extent('Z'), c_n = extent('C'), h = extent('Y'), w = extent('X');
  if (h > 0xffffffffLL || w > 0xffffffffLL) refuse(path, "an image side over 2^32 pixels; save it as .npy");
  if (d.numel() == 0) refuse(path, "an empty " + d.to_string() + " array has no TIFF page; save it as .npy");
  const std::size_t item = d.dtype.itemsize();
  const std::uint64_t bytes = static_cast<std::uint64_t>(d.numel()) * item;

  // ImageJ opens uint8, uint16 and float32 hyperstacks; other dtypes keep
  // their axes through tifffile's description.
  const bool imagej = axes != "YX" && (d.dtype == ipc::kUInt8 || d.dtype == ipc::kUInt16 || d.dtype == ipc::kFloat32);
  std::string description;
  if (imagej && rgb) {  // ImageJ reads RGB pages as RGB slices, never as a hyperstack's channels
    description = "ImageJ=1.11a\nimages=" + std::to_string(t_n * z_n) + "\n";
    if (z_n > 1) description += "slices=" + std::to_string(z_n) + "\n";
    if (t_n > 1) description += "frames=" + std::to_string(t_n) + "\n";
    if (t_n > 1 && z_n > 1) description += "hyperstack=true\n";
    description += "loop=false\n";
  } else if (imagej) {
    description = "ImageJ=1.11a\nimages=" + std::to_string(t_n * z_n * c_n) + "\n";
    if (c_n > 1) description += "channels=" + std::to_string(c_n) + "\n";
    if (z_n > 1) description += "slices=" + std::to_string(z_n) + "\n";
    if (t_n > 1) description += "frames=" + std::to_string(t_n) + "\n";
    description += "hyperstack=true\nmode=grayscale\nloop=false\n";
  } else {  // pages in stored order T, Z, C, then Y, X
    std::vector<std::int64_t> shape;
    std::string letters;
    for (const char l : std::string_view("TZCYX")) {
      if (axes.find(l) != std::string_view::npos) {
        shape.push_back(extent(l));
        letters += l;
      }
    }
    description = "{\"shape\": [" + join(shape) + "], \"axes\": \"" + letters + "\"}";
  }

  MemoryFile file;
  TiffMessages messages;
  const auto options = tiff_options(messages);
  // BigTIFF where the pixels alone come near classic TIFF's 4 GiB offsets.
  const char* mode = bytes > (std::uint64_t{1} << 32) - (std::uint64_t{1} << 28) ? "w8" : "w";
  TiffPtr tif(TIFFClientOpenExt(path.c_str(), mode, &file, mem_read, mem_write, mem_seek, mem_close, mem_size, mem_map,
                                mem_unmap, options.get()));
  const auto failed = [&] {
    throw Error(Errc::io,
                "cannot write '" + path + "': libtiff: " + (messages.error.empty() ? "failed" : messages.error));
  };
  if (!tif) failed();
  TIFF* t = tif.get();
  const std::size_t samples = rgb ? 3 : 1;
  const std::size_t row_bytes = static_cast<std::size_t>(w) * item * samples;
  // Strips of about 256 KiB: large enough that Deflate compresses well and
  // decoding is not dominated by per-strip overhead.
  const auto rows_per_strip = static_cast<std::uint32_t>(std::clamp<std::int64_t>(
      static_cast<std::int64_t>((256u << 10) / std::max<std::size_t>(row_bytes, 1)), 1, std::max<std::int64_t>(h, 1)));
  std::vector<char> strip(static_cast<std::size_t>(rows_per_strip) * row_bytes);
  const auto* base = reinterpret_cast<const char*>(view.data);
  const std::int64_t sy = stride('Y'), sx = stride('X');
  for (std::int64_t ti = 0; ti < t_n; ++ti) {
    for (std::int64_t zi = 0; zi < z_n; ++zi) {
      for (std::int64_t ci = 0; ci < c_n; ++ci) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, static_cast<std::uint32_t>(w));
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, static_cast<std::uint32_t>(h));
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, static_cast<std::uint16_t>(d.dtype.bits));
        TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, format);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, static_cast<std::uint16_t>(samples));
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, rgb ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, rows_per_strip);
        if (ti == 0 && zi == 0 && ci == 0) TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
        const char* plane =
            base + (ti * stride('T') + zi * stride('Z') + ci * stride('C')) * static_cast<std::int64_t>(item);
        for (std::int64_t y0 = 0, k = 0; y0 < h; y0 += rows_per_strip, ++k) {
          const std::int64_t rows = std::min<std::int64_t>(rows_per_strip, h - y0);
          char* out = strip.data();
          for (std::int64_t y = y0; y < y0 + rows; ++y) {
            const char* in = plane + y * sy * static_cast<std::int64_t>(item);
            if (sx == static_cast<std::int64_t>(samples)) {
              std::memcpy(out, in, row_bytes);
              out += row_bytes;
            } else {
              for (std::int64_t x = 0; x < w; ++x, out += item)
                std::memcpy(out, in + x * sx * static_cast<std::int64_t>(item), item);
            }
          }
          const auto n = static_cast<tmsize_t>(static_cast<std::size_t>(rows) * row_bytes);
          if (TIFFWriteEncodedStrip(t, static_cast<std::uint32_t>(k), strip.data(), n) != n) failed();
        }
        if (TIFFWriteDirectory(t) != 1) failed();
      }
    }
  }
  if (messages.errors > 0) failed();
  tif.reset();  // TIFFClose flushes the last directory into `file`
  if (messages.errors > 0) failed();
  write_file(path, {{file.bytes.data(), file.bytes.size()}});
}

void write_uint32_tiff(const std::string& path, std::span<const std::uint32_t> labels, std::uint32_t height,
                       std::uint32_t width) {
  const std::int64_t shape[2] = {height, width};
  const ipc::TensorDesc desc = ipc::TensorDesc::contiguous(ipc::kUInt32, shape);
  if (static_cast<std::size_t>(desc.numel()) != labels.size()) {
    throw Error(Errc::invalid_argument,
                "cannot write '" + path + "': " + std::to_string(labels.size()) + " labels for " + desc.to_string());
  }
  write_tiff(path, {reinterpret_cast<const std::byte*>(labels.data()), desc}, "YX");
}

}  // namespace cpipc::io::detail
