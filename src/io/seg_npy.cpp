#include "cpipc/io/seg_npy.hpp"

#include <algorithm>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/io/replace_file.hpp"
#include "cpipc/ipc/tensor.hpp"
#include "cpipc/post/flow_picture.hpp"
#include "cpipc/post/outlines.hpp"
#include "pickle_writer.hpp"

namespace cpipc::io {

namespace {

constexpr ipc::DType kBool{ipc::DTypeCode::bool_, 8, 1};

template <class T>
ipc::HostView view_of(const T* data, ipc::DType dtype, std::initializer_list<std::int64_t> shape) {
  return {reinterpret_cast<const std::byte*>(data),
          ipc::TensorDesc::contiguous(dtype, std::span<const std::int64_t>(shape.begin(), shape.size()))};
}

// The .npy header np.save writes for a 0-d object array (format 1.0),
// padded as numpy's _wrap_header pads it: 1 to 64 spaces, then '\n', so
// that the pickle starts on a multiple of 64.
std::string object_npy_header() {
  const std::string dict = "{'descr': '|O', 'fortran_order': False, 'shape': (), }";
  const std::size_t hlen = dict.size() + 1;
  const std::size_t pad = 64 - (10 + hlen) % 64;
  const std::size_t len = hlen + pad;
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>(len >> 8);
  out += dict;
  out.append(pad, ' ');
  out += '\n';
  return out;
}

// The length of the valid UTF-8 sequence at `s[i]`, or 0 (Python's strict
// decoder: no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto at = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  const unsigned b = at(0);
  const auto cont = [&](std::size_t k) { return (at(k) & 0xc0u) == 0x80u; };
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    const unsigned lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf;
    return at(1) >= lo && at(1) <= hi && cont(2) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    const unsigned lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf;
    return at(1) >= lo && at(1) <= hi && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

// A file name as the str Python makes of it (os.fsdecode: each byte that is
// not UTF-8 becomes U+DC80..U+DCFF) in the encoding pickle gives such a str
// ('surrogatepass': three bytes each), so that any path loads back.
std::string python_path_string(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = utf8_length(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
      continue;
    }
    const auto b = static_cast<unsigned char>(bytes[i++]);  // U+DC00 + b
    out += '\xed';
    out += static_cast<char>(0x80 | (((0xdc00 + b) >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (b & 0x3f));
  }
  return out;
}

// masks and outlines as Cellpose stores them: uint16 unless the largest
// outline label is 65535 or more (`wide`), then uint32.
struct LabelArray {
  std::vector<std::uint16_t> narrow;
  const std::uint32_t* wide = nullptr;
};

ipc::HostView label_view(const LabelArray& a, std::int64_t h, std::int64_t w) {
  return a.wide != nullptr ? view_of(a.wide, ipc::kUInt32, {h, w}) : view_of(a.narrow.data(), ipc::kUInt16, {h, w});
}

}  // namespace

void write_seg_npy(const std::string& path, const SegNpyContent& c) {
  const std::size_t n =
      static_cast<std::size_t>(std::max(c.height, 0)) * static_cast<std::size_t>(std::max(c.width, 0));
  if (c.height < 0 || c.width < 0 || (n > 0 && (c.labels == nullptr || c.flows == nullptr))) {
    throw Error(Errc::invalid_argument, "write_seg_npy: need labels and flows for " + std::to_string(c.height) + " x " +
                                            std::to_string(c.width) + " pixels");
  }
  const std::int64_t h = c.height;
  const std::int64_t w = c.width;

  // outlines = masks * utils.masks_to_outlines(masks)
  const std::vector<std::uint8_t> on_outline = post::outline_mask(c.labels, c.height, c.width);
  std::vector<std::uint32_t> outlines(n);
  std::uint32_t max_label = 0;
  std::uint32_t max_outline = 0;
  for (std::size_t i = 0; i < n; ++i) {
    outlines[i] = on_outline[i] != 0 ? c.labels[i] : 0;
    max_label = std::max(max_label, c.labels[i]);
    max_outline = std::max(max_outline, outlines[i]);
  }
  const bool wide = max_outline >= 65535;  // Cellpose: outlines.max() < 2**16 - 1 -> uint16
  LabelArray masks;
  LabelArray outline_labels;
  if (wide) {
    masks.wide = c.labels;
    outline_labels.wide = outlines.data();
  } else {  // astype(np.uint16)
    masks.narrow.assign(c.labels, c.labels + n);
    outline_labels.narrow.assign(outlines.begin(), outlines.end());
    outlines = {};
  }

  // flows: [dx_to_circ(dP)[None], cellprob as uint8 [None], zeros like the
  // picture [None], [], concatenate((dP, cellprob[None]))].
  const float* dp = c.flows;
  const float* cellprob = c.flows + 2 * n;
  const std::vector<std::uint8_t> picture = post::flow_picture(dp, dp + n, n);
  const std::vector<std::uint8_t> probability = post::normalized_u8(cellprob, n);
  const std::vector<std::uint8_t> zeros(n * 3, 0);
  const std::vector<std::uint8_t> ismanual(max_label, 0);

  const std::string header = object_npy_header();
  write_replacing(path, [&](const std::string& to) {
    OutputFile file(to);
    file.write(header.data(), header.size());
    detail::PickleWriter p([&file](const char* data, std::size_t size) { file.write(data, size); });
    p.numpy_object_scalar([&] {
      p.empty_dict();
      p.mark();
      p.string("outlines");
      p.numpy_array(label_view(outline_labels, h, w));
      p.string("masks");
      p.numpy_array(label_view(masks, h, w));
      p.string("chan_choose");
      p.empty_list();
      p.mark();
      p.integer(c.chan_choose[0]);
      p.integer(c.chan_choose[1]);
      p.appends();
      p.string("ismanual");
      p.numpy_array(view_of(ismanual.data(), kBool, {static_cast<std::int64_t>(max_label)}));
      p.string("filename");
      p.string(python_path_string(c.filename));
      p.string("flows");
      p.empty_list();
      p.mark();
      p.numpy_array(view_of(picture.data(), ipc::kUInt8, {1, h, w, 3}));
      p.numpy_array(view_of(probability.data(), ipc::kUInt8, {1, h, w}));
      p.numpy_array(view_of(zeros.data(), ipc::kUInt8, {1, h, w, 3}));
      p.empty_list();
      p.numpy_array(view_of(c.flows, ipc::kFloat32, {3, h, w}));
      p.appends();
      p.string("diameter");
      p.real(c.diameter);
      p.setitems();
    });
    p.finish();
    file.close();
  });
}

}  // namespace cpipc::io
