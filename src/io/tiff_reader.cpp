#include "tiff_reader.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "cpipc/error.hpp"
#include "cpipc/io/probe.hpp"
#include "tiff_handle.hpp"
#include "tiff_metadata.hpp"

namespace cpipc::io::detail {

namespace {

// One directory, as pass 1 finds it (no pixel decoded).
struct Page {
  std::uint64_t offset = 0;  // of the directory, to come back to it in pass 2
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::uint16_t samples = 1;
  bool separate = false;  // PlanarConfiguration 2: one plane per sample
  bool jpeg_rgb = false;  // JPEG-compressed YCbCr, decoded as RGB
  ipc::DType dtype;
  std::string description;  // ImageDescription, "" when none

  [[nodiscard]] std::vector<std::uint64_t> shape() const {
    if (samples == 1) return {height, width};
    if (separate) return {samples, height, width};
    return {height, width, samples};
  }
  [[nodiscard]] std::string axes() const { return samples == 1 ? "YX" : separate ? "SYX" : "YXS"; }
  // Saturating: a damaged header's sizes must not wrap round to a small
  // number that passes check_decoded_size.
  [[nodiscard]] std::uint64_t bytes() const {
    std::uint64_t n = 0;
    if (__builtin_mul_overflow(std::uint64_t{width} * height, std::uint64_t{samples} * dtype.itemsize(), &n)) {
      return std::numeric_limits<std::uint64_t>::max();
    }
    return n;
  }
  [[nodiscard]] bool same_kind(const Page& o) const {
    return width == o.width && height == o.height && samples == o.samples && separate == o.separate && dtype == o.dtype;
  }
};

// A run of pages and the axes in front of the page axes.
struct Series {
  std::size_t first = 0;
  std::size_t count = 0;
  std::vector<std::uint64_t> shape;  // the whole series' shape, before dropping size-1 axes
  std::string axes;
  std::string source;
};

class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path), source_(RegularFile::open(path)) {
    tif_ = open_tiff(source_);
    if (!tif_) corrupt();
  }

  std::vector<StoredImage> read() {
    std::vector<Page> pages;
    std::size_t directory = 0;
    do {
      // A reduced-resolution copy (a thumbnail, as Zeiss LSM files keep after
      // every page) is not part of the image: tifffile leaves it out too.
      std::uint32_t subfile = 0;
      const bool reduced = TIFFGetField(tif_.get(), TIFFTAG_SUBFILETYPE, &subfile) == 1 &&
                           (subfile & FILETYPE_REDUCEDIMAGE) != 0 && !pages.empty();
      if (!reduced) pages.push_back(inspect(directory));
      ++directory;
    } while (TIFFReadDirectory(tif_.get()) == 1);
    if (source_.messages.errors > 0) corrupt();  // a directory after the last good one is damaged

    std::uint64_t total = 0;
    for (const Page& p : pages) {
      if (__builtin_add_overflow(total, p.bytes(), &total)) total = std::numeric_limits<std::uint64_t>::max();
    }
    check_decoded_size(path_, total);

    std::vector<StoredImage> out;
    for (const Series& s : group(pages)) out.push_back(decode(pages, s));
    return out;
  }

 private:
  // A damaged file, said in cpipc's words (not libtiff's).
  [[noreturn]] void damaged(std::string why) {
    source_.messages.error = std::move(why);
    source_.messages.errors = 1;
    corrupt();
  }
  [[noreturn]] void corrupt() const {
    // libtiff refuses a directory whose BitsPerSample differ per sample.
    if (source_.messages.error.find("different values per sample") != std::string::npos) {
      refuse("a different bit depth per sample", "convert it to one bit depth for all samples (e.g. in Fiji)");
    }
    const std::string why = source_.messages.error.empty() ? "libtiff cannot open it" : source_.messages.error;
    throw Error(Errc::invalid_argument, "cannot read '" + path_ + "': corrupt or truncated TIFF (" + why + ")");
  }
  [[noreturn]] void refuse(const std::string& what, const std::string& fix) const {
    throw Error(Errc::invalid_argument, "cannot read '" + path_ + "': " + what + " is not supported; " + fix);
  }

  template <class T>
  T field(ttag_t tag, T fallback) const {
    T v = fallback;
    return TIFFGetFieldDefaulted(tif_.get(), tag, &v) == 1 ? v : fallback;
  }

  // Before anything is allocated for a page: its strips or tiles must lie
  // in the file, and uncompressed ones must hold every pixel, so that a small
  // damaged file cannot make cpipc allocate gigabytes to fail afterwards.
  // (A compressed page can legitimately decode to ~1000x its bytes; that is
  // bounded by check_decoded_size.)
  void check_data_is_there(const Page& p, std::uint16_t compression, const std::string& where) {
    TIFF* t = tif_.get();
    const std::uint32_t n = TIFFIsTiled(t) ? TIFFNumberOfTiles(t) : TIFFNumberOfStrips(t);
    const std::uint64_t file = source_.file.size();
    std::uint64_t stored = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint64_t at = TIFFGetStrileOffset(t, i);
      const std::uint64_t count = TIFFGetStrileByteCount(t, i);
      // Offset 0 is the header (libtiff pads short offset tables with it).
      if (at == 0) {
        damaged(where + "strip or tile " + std::to_string(i + 1) + " has no offset");
      }
      if (at > file || count > file - at) {
        damaged(where + "strip or tile " + std::to_string(i + 1) + " lies past the end of the file");
      }
      stored += count;
    }
    if (compression == COMPRESSION_NONE && stored < p.bytes()) {  // tiles cover the page, padded
      damaged(where + std::to_string(p.bytes()) + " bytes of pixels, " + std::to_string(stored) +
              " stored in the file");
    }
    // A tile may be larger than a small page (256 x 256 tiles of a 40 x 48
    // image), but not by gigabytes: its buffer is allocated to decode it.
    if (TIFFIsTiled(t) &&
        static_cast<std::uint64_t>(TIFFTileSize64(t)) > std::max<std::uint64_t>(p.bytes(), 64u << 20)) {
      damaged(where + "a tile of " + std::to_string(TIFFTileSize64(t)) + " bytes for a page of " +
              std::to_string(p.bytes()));
    }
    // No codec expands its input without bound: Deflate at most 1032:1,
    // LZW (12-bit codes of strings up to 4096 bytes) under 4096:1, PackBits
    // 64:1; the others (Zstd's RLE blocks reach ~44 000:1) get a generous cap.
    std::uint64_t ratio = 50'000;
    if (compression == COMPRESSION_ADOBE_DEFLATE || compression == COMPRESSION_DEFLATE) ratio = 1'100;
    if (compression == COMPRESSION_LZW) ratio = 4'096;
    if (compression == COMPRESSION_PACKBITS) ratio = 64;
    std::uint64_t most = 0;
    if (__builtin_mul_overflow(stored, ratio, &most)) most = std::numeric_limits<std::uint64_t>::max();
    if (compression != COMPRESSION_NONE && p.bytes() > most + 65'536) {
      damaged(where + std::to_string(p.bytes()) + " bytes of pixels cannot come from " + std::to_string(stored) +
              " compressed bytes");
    }
  }

  Page inspect(std::size_t index) {
    TIFF* t = tif_.get();
    const std::string where = "page " + std::to_string(index + 1) + ": ";
    Page p;
    p.offset = TIFFCurrentDirOffset(t);
    if (TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &p.width) != 1 || TIFFGetField(t, TIFFTAG_IMAGELENGTH, &p.height) != 1) {
      if (source_.messages.errors == 0) source_.messages.error = where + "no image size";
      corrupt();
    }
    p.samples = field<std::uint16_t>(TIFFTAG_SAMPLESPERPIXEL, 1);
    p.separate =
        p.samples > 1 && field<std::uint16_t>(TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) == PLANARCONFIG_SEPARATE;
    const auto bits = field<std::uint16_t>(TIFFTAG_BITSPERSAMPLE, 1);
    const auto format = field<std::uint16_t>(TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
    const auto compression = field<std::uint16_t>(TIFFTAG_COMPRESSION, COMPRESSION_NONE);
    const auto photometric = field<std::uint16_t>(TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    if (std::uint32_t depth = 1; TIFFGetField(t, TIFFTAG_IMAGEDEPTH, &depth) == 1 && depth > 1) {
      refuse(where + "an SGI volume (ImageDepth " + std::to_string(depth) + ")", "save it as a stack of pages");
    }
    if (format == SAMPLEFORMAT_COMPLEXINT || format == SAMPLEFORMAT_COMPLEXIEEEFP) {
      refuse(where + "SampleFormat " + std::to_string(format) + " (complex samples)",
             "save the real and imaginary parts as separate images");
    }
    if (bits != 8 && bits != 16 && bits != 32 && bits != 64) {
      refuse(where + "BitsPerSample " + std::to_string(bits) + " (" + std::to_string(bits) +
                 "-bit samples; cpipc reads 8, 16, 32 and 64 bits exactly)",
             "convert it to 8 or 16 bits per sample (e.g. in Fiji) and save it again");
    }
    if (format == SAMPLEFORMAT_IEEEFP && bits == 8) refuse(where + "8-bit floating point", "save it as float32");
    if (format != SAMPLEFORMAT_UINT && format != SAMPLEFORMAT_INT && format != SAMPLEFORMAT_IEEEFP &&
        format != SAMPLEFORMAT_VOID) {
      refuse(where + "SampleFormat " + std::to_string(format), "save it as integers or floats");
    }
    if (TIFFIsCODECConfigured(compression) != 1) {
      const TIFFCodec* codec = TIFFFindCODEC(compression);
      refuse(
          where + "compression " + std::to_string(compression) + (codec ? std::string(" (") + codec->name + ")" : ""),
          "this libtiff lacks its codec; save it uncompressed or with Deflate (zlib)");
    }
    if (photometric == PHOTOMETRIC_YCBCR) {
      if (compression == COMPRESSION_JPEG) {
        p.jpeg_rgb = true;
        TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
      } else {
        std::uint16_t h = 1, v = 1;
        TIFFGetFieldDefaulted(t, TIFFTAG_YCBCRSUBSAMPLING, &h, &v);
        if (h != 1 || v != 1) refuse(where + "subsampled YCbCr without JPEG", "save it as RGB");
      }
    }
    p.dtype = ipc::DType{format == SAMPLEFORMAT_IEEEFP ? ipc::DTypeCode::float_
                         : format == SAMPLEFORMAT_INT  ? ipc::DTypeCode::int_
                                                       : ipc::DTypeCode::uint,
                         static_cast<std::uint8_t>(bits), 1};
    check_data_is_there(p, compression, where);
    if (index == 0) {
      const char* d = nullptr;
      if (TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &d) == 1 && d) p.description = d;
    } else {  // later pages matter only for tifffile's shaped JSON, which starts with '{'
      const char* d = nullptr;
      if (TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &d) == 1 && d && d[0] == '{') p.description = d;
    }
    return p;
  }

  // How many pages from `first` share its shape and dtype, stopping where a
  // page starts a tifffile series of its own.
  static std::size_t run(const std::vector<Page>& pages, std::size_t first) {
    std::size_t n = 1;
    while (first + n < pages.size() && pages[first + n].same_kind(pages[first]) &&
           !shaped_axes(pages[first + n].description)) {
      ++n;
    }
    return n;
  }

  std::vector<Series> group(const std::vector<Page>& pages) const {
    std::vector<Series> out;
    std::size_t i = 0;
    // ImageJ and OME name the axes of the first series only. A description
    // whose counts do not fit the pages (a file edited after it was written)
    // is ignored: the pages are then read as if it were not there.
    const Page& p0 = pages.front();
    std::optional<PageAxes> named = imagej_axes(p0.description, p0.samples);
    std::string source = "ImageJ";
    if (!named) {
      named = ome_axes(p0.description, p0.samples);
      source = "OME";
    }
    // ImageJ past 4 GiB writes one directory and the other images after
    // its pixels: refused, as reading one page of them would lose the rest.
    if (const auto images = imagej_images(p0.description); images && *images > pages.size() && pages.size() == 1) {
      refuse("an ImageJ stack of " + std::to_string(*images) +
                 " images with one page directory (ImageJ's layout past 4 GiB)",
             "save it as BigTIFF or OME-TIFF (Fiji: File > Save As > OME-TIFF)");
    }
    if (named && named->pages() >= 1 && named->pages() <= run(pages, 0)) {
      Series s{0, named->pages(), named->counts, named->letters, source};
      const auto shape = p0.shape();
      s.shape.insert(s.shape.end(), shape.begin(), shape.end());
      s.axes += p0.axes();
      out.push_back(std::move(s));
      i = out.back().count;
    }
    while (i < pages.size()) {
      const Page& p = pages[i];
      const std::size_t same = run(pages, i);
      if (const auto shaped = shaped_axes(p.description)) {
        std::uint64_t numel = 1;
        for (const std::uint64_t e : shaped->shape) numel *= e;
        const std::uint64_t page_numel = p.bytes() / p.dtype.itemsize();
        // tifffile's shape wins over the page layout: a [32, 48, 2] array
        // is 32 pages of 48 x 2 pixels.
        if (page_numel > 0 && numel % page_numel == 0 && numel / page_numel >= 1 && numel / page_numel <= same) {
          out.push_back({i, static_cast<std::size_t>(numel / page_numel), shaped->shape, shaped->letters, "tifffile"});
          i += out.back().count;
          continue;
        }
      }
      Series s{i, same, {}, same > 1 ? "Q" : "", ""};
      if (same > 1) s.shape.push_back(same);
      const auto shape = p.shape();
      s.shape.insert(s.shape.end(), shape.begin(), shape.end());
      s.axes += p.axes();
      out.push_back(std::move(s));
      i += same;
    }
    return out;
  }

  StoredImage decode(const std::vector<Page>& pages, const Series& s) {
    // Size-1 axes go, but never Y or X (nor, where no letter says which
    // they are, the last two).
    const bool named_yx = s.axes.find('Y') != std::string::npos;
    std::vector<std::int64_t> shape;
    StoredImage out;
    for (std::size_t d = 0; d < s.shape.size(); ++d) {
      const char l = s.axes[d];
      const bool keep = s.shape[d] != 1 || l == 'Y' || l == 'X' || (!named_yx && d + 2 >= s.shape.size());
      if (!keep) continue;
      shape.push_back(static_cast<std::int64_t>(s.shape[d]));
      out.axes += l;
    }
    out.source = s.source;
    out.dtype = pages[s.first].dtype;
    out.shape = std::move(shape);
    std::uint64_t bytes = 0;
    for (std::size_t i = s.first; i < s.first + s.count; ++i) bytes += pages[i].bytes();
    out.data.resize(bytes);
    auto* dst = reinterpret_cast<unsigned char*>(out.data.data());
    for (std::size_t i = s.first; i < s.first + s.count; ++i) {
      decode_page(pages[i], i, dst);
      dst += pages[i].bytes();
    }
    return out;
  }

  // Decodes one page straight into `dst` (its bytes(), in page-axes order):
  // strips land in place; tiles go through one tile-sized buffer.
  void decode_page(const Page& p, std::size_t index, unsigned char* dst) {
    TIFF* t = tif_.get();
    if (TIFFSetSubDirectory(t, p.offset) != 1) corrupt();
    if (p.jpeg_rgb) TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    const std::size_t item = p.dtype.itemsize();
    const std::uint32_t planes = p.separate ? p.samples : 1;
    const std::size_t pixel = item * (p.separate ? 1 : p.samples);
    const std::size_t row = pixel * p.width;
    const std::size_t plane = row * p.height;
    const std::string where = "page " + std::to_string(index + 1);
    const auto failed = [&] {
      if (source_.messages.errors == 0) source_.messages.error = where + ": cannot be decoded";
      corrupt();
    };
    if (TIFFIsTiled(t) == 0) {
      std::uint32_t rows = field<std::uint32_t>(TIFFTAG_ROWSPERSTRIP, p.height);
      rows = std::clamp<std::uint32_t>(rows, 1, std::max<std::uint32_t>(p.height, 1));
      const std::uint32_t strips = (p.height + rows - 1) / rows;
      if (TIFFNumberOfStrips(t) < strips * planes) failed();
      for (std::uint32_t s = 0; s < planes; ++s) {
        for (std::uint32_t k = 0; k < strips; ++k) {
          const std::size_t n = row * std::min<std::uint32_t>(rows, p.height - k * rows);
          unsigned char* at = dst + s * plane + std::size_t{k} * rows * row;
          if (TIFFReadEncodedStrip(t, s * strips + k, at, static_cast<tmsize_t>(n)) != static_cast<tmsize_t>(n)) {
            failed();
          }
        }
      }
      return;
    }
    const auto tw = field<std::uint32_t>(TIFFTAG_TILEWIDTH, 0);
    const auto th = field<std::uint32_t>(TIFFTAG_TILELENGTH, 0);
    const tmsize_t tile_bytes = TIFFTileSize(t);
    if (tw == 0 || th == 0 || tile_bytes < static_cast<tmsize_t>(std::size_t{tw} * th * pixel)) failed();
    std::vector<unsigned char> tile(static_cast<std::size_t>(tile_bytes));
    for (std::uint32_t s = 0; s < planes; ++s) {
      for (std::uint32_t y = 0; y < p.height; y += th) {
        for (std::uint32_t x = 0; x < p.width; x += tw) {
          if (TIFFReadEncodedTile(t, TIFFComputeTile(t, x, y, 0, static_cast<std::uint16_t>(s)), tile.data(),
                                  tile_bytes) < 0) {
            failed();
          }
          const std::size_t cols = pixel * std::min(tw, p.width - x);
          for (std::uint32_t r = 0; r < th && y + r < p.height; ++r) {
            std::memcpy(dst + s * plane + (y + r) * row + x * pixel, tile.data() + std::size_t{r} * tw * pixel, cols);
          }
        }
      }
    }
  }

  std::string path_;
  TiffSource source_;
  TiffPtr tif_;
};

}  // namespace

std::vector<StoredImage> read_tiff(const std::string& path) { return Reader(path).read(); }

}  // namespace cpipc::io::detail
