#include "cpipc/model/planes.hpp"

#include <algorithm>
#include <cstring>

#include "cpipc/error.hpp"

namespace cpipc::model {

std::uint64_t PlaneSegmentation::objects() const noexcept {
  std::uint64_t n = 0;
  for (std::uint32_t c : counts) n += c;
  return n;
}

bool PlaneSegmentation::fits_uint16() const noexcept {
  return std::all_of(counts.begin(), counts.end(), [](std::uint32_t c) { return c < 65536; });
}

PlaneSegmentation segment_planes(const Segmenter& segmenter, const io::Array& stack, SegmentOptions options) {
  const ipc::TensorDesc& d = stack.desc;
  if (d.ndim != 3 && d.ndim != 4) {
    throw Error(Errc::invalid_argument, "a z-stack is [Z, H, W] or [Z, H, W, C], not " + d.to_string());
  }
  options.labels_on_device = false;
  options.keep_flows = false;
  PlaneSegmentation out;
  out.planes = d.shape[0];
  out.height = d.shape[1];
  out.width = d.shape[2];
  const std::size_t plane_pixels = static_cast<std::size_t>(out.height * out.width);
  out.labels.resize(plane_pixels * static_cast<std::size_t>(out.planes));
  io::Array plane;
  plane.desc = ipc::TensorDesc::contiguous(d.dtype, std::span(d.shape.begin() + 1, d.shape.begin() + d.ndim));
  const std::size_t plane_bytes = static_cast<std::size_t>(plane.desc.nbytes());
  plane.data.resize(plane_bytes);
  for (std::int64_t z = 0; z < out.planes; ++z) {
    std::memcpy(plane.data.data(), stack.data.data() + static_cast<std::size_t>(z) * plane_bytes, plane_bytes);
    Segmentation s;
    try {
      s = segmenter.segment(plane, options);
    } catch (const Error& e) {
      throw Error(e.code(), "plane " + std::to_string(z) + ": " + e.what());
    }
    std::copy(s.masks.data.begin(), s.masks.data.end(),
              out.labels.begin() + static_cast<std::ptrdiff_t>(z) * plane_pixels);
    out.counts.push_back(s.masks.count);
    s.masks.data = {};
    if (z == 0) {
      out.first = std::move(s);
    } else {
      out.first.timings.preprocess_s += s.timings.preprocess_s;
      out.first.timings.network_s += s.timings.network_s;
      out.first.timings.dynamics_s += s.timings.dynamics_s;
      out.first.timings.total_s += s.timings.total_s;
    }
  }
  return out;
}

}  // namespace cpipc::model
