#include "cpipc/model/preprocess.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <type_traits>

#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/util/order_statistics.hpp"

namespace cpipc::model {

namespace {

[[noreturn]] void bad(const std::string& message) { throw Error(Errc::invalid_argument, message); }

int parse_channel(const std::string& text, const std::string& spec) {
  std::size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || v < 0 || v > 64) {
    bad("bad channel spec '" + spec + "': expected SEG,NUC as 1-based channel numbers (0,0 = grayscale), or 'first'");
  }
  return v;
}

}  // namespace

ChannelSpec ChannelSpec::parse(const std::string& text) {
  if (text == "first") return {Kind::first, 0, 0};
  const auto comma = text.find(',');
  if (comma == std::string::npos) {
    bad("bad channel spec '" + text + "': expected SEG,NUC as 1-based channel numbers (0,0 = grayscale), or 'first'");
  }
  return {Kind::cellpose3, parse_channel(text.substr(0, comma), text), parse_channel(text.substr(comma + 1), text)};
}

std::string ChannelSpec::to_string() const {
  return kind == Kind::first ? "first" : std::to_string(seg) + "," + std::to_string(nuc);
}

namespace {

// Whether every value equals the first: numpy's ptp(v) == 0 (with -0 == +0)
// for finite values. Compared in blocks, so the loop vectorises and a varied
// plane stops at its first block.
bool all_equal(const float* v, std::size_t n) {
  constexpr std::size_t kBlock = 4096;
  for (std::size_t start = 0; start < n; start += kBlock) {
    const std::size_t end = std::min(n, start + kBlock);
    int differ = 0;
    for (std::size_t i = start; i < end; ++i) differ |= static_cast<int>(v[i] != v[0]);
    if (differ != 0) return false;
  }
  return true;
}

// numpy 2 keeps float32 data in float32: the virtual index q/100 * (n - 1),
// its floor, and the lerp (from the upper end when gamma >= 0.5).
struct PercentileIndex {
  float index;
  float below_f;
  std::size_t below;
  std::size_t above;
};

PercentileIndex percentile_index(std::size_t n, float q) {
  const float index = static_cast<float>(q / 100.0) * static_cast<float>(n - 1);
  const float below_f = std::floor(index);
  const std::size_t below = std::min(static_cast<std::size_t>(below_f), n - 1);
  return {index, below_f, below, std::min(below + 1, n - 1)};
}

float lerp_numpy(const PercentileIndex& at, float a, float b) {
  const float gamma = at.index - at.below_f;
  const float diff = b - a;
  return gamma >= 0.5f ? b - diff * (1.0f - gamma) : a + diff * gamma;
}

}  // namespace

float percentile(const std::vector<float>& values, float q) {
  return percentiles(values.data(), values.size(), q, q).first;
}

std::pair<float, float> percentiles(const float* values, std::size_t n, float q_low, float q_high) {
  if (n == 0) bad("percentile of no values");
  const PercentileIndex lo = percentile_index(n, q_low);
  const PercentileIndex hi = percentile_index(n, q_high);
  const auto v = util::order_statistics<4>(values, n, {lo.below, lo.above, hi.below, hi.above});
  return {lerp_numpy(lo, v[0], v[1]), lerp_numpy(hi, v[2], v[3])};
}

bool normalize_plane(float* plane, int height, int width, const Normalization& norm) {
  return normalize_volume(plane, 1, height, width, norm);
}

bool normalize_volume(float* data, int depth, int height, int width, const Normalization& norm) {
  const std::size_t n = static_cast<std::size_t>(depth) * static_cast<std::size_t>(height) * width;
  if (all_equal(data, n)) return false;  // Cellpose leaves a constant channel as it is
  // normalize99's downsample: above 224^3 pixels the percentiles come from
  // every (Z/50)-th plane, (H/224)-th row and (W/224)-th column.
  std::vector<float> sample;
  if (n > std::size_t{224} * 224 * 224) {
    const int sz = std::max(1, depth / 50);
    const int sy = std::max(1, height / 224);
    const int sx = std::max(1, width / 224);
    sample.reserve(static_cast<std::size_t>((depth + sz - 1) / sz) * ((height + sy - 1) / sy) *
                   ((width + sx - 1) / sx));
    for (int z = 0; z < depth; z += sz) {
      const float* plane = data + static_cast<std::size_t>(z) * height * width;
      for (int y = 0; y < height; y += sy) {
        for (int x = 0; x < width; x += sx) sample.push_back(plane[static_cast<std::size_t>(y) * width + x]);
      }
    }
  }
  const auto [p_low, p_high] = sample.empty() ? percentiles(data, n, norm.lower, norm.upper)
                                              : percentiles(sample.data(), sample.size(), norm.lower, norm.upper);
  const float range = p_high - p_low;
  // One pass each way; `1 - t` after the division rounds as Cellpose's two
  // numpy steps do.
  if (!(range > 1e-3f)) {
    std::fill(data, data + n, norm.invert ? 1.0f : 0.0f);
  } else if (norm.invert) {
    for (std::size_t i = 0; i < n; ++i) data[i] = 1.0f - (data[i] - p_low) / range;
  } else {
    for (std::size_t i = 0; i < n; ++i) data[i] = (data[i] - p_low) / range;
  }
  return true;
}

namespace {

void check_percentiles(const Normalization& norm) {
  if (!(norm.lower >= 0.0f && norm.lower < norm.upper && norm.upper <= 100.0f)) {
    std::ostringstream s;
    s << "bad normalisation percentiles " << norm.lower << ", " << norm.upper << ": expected 0 <= low < high <= 100";
    bad(s.str());
  }
}

// Calls body(load) where load(i) is the image's element i as float32
// (numpy's astype(float32)), typed on the image's dtype so that the channel
// loops read the source once, without a float copy of the whole image; half
// floats (and any dtype to_float32 refuses) go through io::to_float32.
// Refuses NaN and infinities first.
template <class Body>
void with_float_elements(const io::Array& image, Body&& body) {
  const std::byte* bytes = image.data.data();
  const std::size_t n = static_cast<std::size_t>(image.desc.numel());
  const auto finite = [n](auto load) {
    int bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const float v = load(i);
      bad |= static_cast<int>(!(v - v == 0.0f));  // NaN for NaN and infinities
    }
    if (bad != 0) throw Error(Errc::invalid_argument, "image has NaN or infinite values; clean or clip it first");
  };
  const auto typed = [&]<class T>(std::type_identity<T>) {
    const auto load = [bytes](std::size_t i) {
      T v;
      std::memcpy(&v, bytes + i * sizeof(T), sizeof(T));
      return static_cast<float>(v);
    };
    if constexpr (std::is_floating_point_v<T>) finite(load);
    body(load);
  };
  const auto d = image.desc.dtype;
  using ipc::DTypeCode;
  if (d.code == DTypeCode::float_ && d.bits == 32) return typed(std::type_identity<float>{});
  if (d.code == DTypeCode::float_ && d.bits == 64) return typed(std::type_identity<double>{});
  if (d.code == DTypeCode::uint && d.bits == 8) return typed(std::type_identity<std::uint8_t>{});
  if (d.code == DTypeCode::uint && d.bits == 16) return typed(std::type_identity<std::uint16_t>{});
  if (d.code == DTypeCode::uint && d.bits == 32) return typed(std::type_identity<std::uint32_t>{});
  if (d.code == DTypeCode::int_ && d.bits == 8) return typed(std::type_identity<std::int8_t>{});
  if (d.code == DTypeCode::int_ && d.bits == 16) return typed(std::type_identity<std::int16_t>{});
  if (d.code == DTypeCode::int_ && d.bits == 32) return typed(std::type_identity<std::int32_t>{});
  const std::vector<float> converted = io::to_float32(image, "image");
  const auto load = [p = converted.data()](std::size_t i) { return p[i]; };
  finite(load);
  body(load);
}

}  // namespace

NetworkInput network_input(const io::Array& image, const ChannelSpec& spec, int network_channels,
                           const Normalization& norm) {
  const auto& d = image.desc;
  if (d.ndim != 2 && d.ndim != 3) {
    bad("image of shape " + d.to_string() + ": expected 2-D [H, W] or [H, W, C]");
  }
  const std::int64_t h = d.shape[0];
  const std::int64_t w = d.shape[1];
  const std::int64_t c = d.ndim == 3 ? d.shape[2] : 1;
  if (h <= 0 || w <= 0 || c <= 0) bad("empty image " + d.to_string());
  if (h > 1'000'000 || w > 1'000'000) bad("image " + d.to_string() + " is too large: at most 1e6 pixels per side");
  if (network_channels < 1) bad("the network takes no input channels");
  if (c > 64) {
    bad("image " + d.to_string() + " has " + std::to_string(c) + " channels; expected [H, W, C] with C <= 64");
  }
  const std::size_t plane = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  NetworkInput in{network_channels, static_cast<int>(h), static_cast<int>(w), {}};
  in.data.assign(plane * network_channels, 0.0f);
  with_float_elements(image, [&](auto load) {
    auto channel = [&](std::int64_t k, float* out) {
      for (std::size_t i = 0; i < plane; ++i) out[i] = load(i * c + k);
    };
    if (spec.kind == ChannelSpec::Kind::first || network_channels != 2) {
      // First channels, zero-padded (Cellpose 4; Cellpose 3 without channels).
      for (std::int64_t k = 0; k < std::min<std::int64_t>(c, network_channels); ++k) {
        channel(k, in.data.data() + k * plane);
      }
    } else if (c == 1) {
      channel(0, in.data.data());  // grayscale: [image, 0] whatever the spec
    } else if (spec.seg == 0) {
      float* out = in.data.data();
      for (std::size_t i = 0; i < plane; ++i) {
        float sum = 0.0f;  // float32, in channel order, as numpy's mean
        for (std::int64_t k = 0; k < c; ++k) sum += load(i * c + k);
        out[i] = sum / static_cast<float>(c);
      }
    } else {
      const auto check = [&](int k, const char* what) {
        if (k > c) {
          bad(std::string(what) + " channel " + std::to_string(k) + " requested (--channels " + spec.to_string() +
              ") but the image has " + std::to_string(c) + " channels");
        }
      };
      check(spec.seg, "segmentation");
      channel(spec.seg - 1, in.data.data());
      if (spec.nuc > 0) {
        check(spec.nuc, "nuclear");
        channel(spec.nuc - 1, in.data.data() + plane);
      }
    }
  });
  if (norm.enabled) {
    check_percentiles(norm);
    for (int k = 0; k < network_channels; ++k) {
      float* p = in.data.data() + k * plane;
      if (!normalize_plane(p, in.height, in.width, norm) && norm.zero_constant) std::fill(p, p + plane, 0.0f);
    }
  }
  return in;
}

}  // namespace cpipc::model

namespace cpipc::model {

VolumeInput volume_input(const io::Array& stack, const ChannelSpec& spec, int network_channels,
                         const Normalization& norm) {
  const ipc::TensorDesc& d = stack.desc;
  if (d.ndim != 3 && d.ndim != 4) bad("a z-stack is [Z, H, W] or [Z, H, W, C], not " + d.to_string());
  if (d.shape[0] <= 0) bad("empty z-stack " + d.to_string());
  if (d.shape[0] > 100'000) bad("z-stack " + d.to_string() + " has too many planes: at most 1e5");
  if (norm.enabled) check_percentiles(norm);
  io::Array plane;
  plane.desc = ipc::TensorDesc::contiguous(d.dtype, std::span(d.shape.begin() + 1, d.shape.begin() + d.ndim));
  const std::size_t plane_bytes = static_cast<std::size_t>(plane.desc.nbytes());
  plane.data.resize(plane_bytes);
  VolumeInput out;
  out.depth = static_cast<int>(d.shape[0]);
  Normalization none = norm;
  none.enabled = false;
  for (int z = 0; z < out.depth; ++z) {
    std::memcpy(plane.data.data(), stack.data.data() + static_cast<std::size_t>(z) * plane_bytes, plane_bytes);
    NetworkInput in;
    try {
      in = network_input(plane, spec, network_channels, none);
    } catch (const Error& e) {
      throw Error(e.code(), "plane " + std::to_string(z) + ": " + e.what());
    }
    if (z == 0) {
      out.channels = in.channels;
      out.height = in.height;
      out.width = in.width;
      out.data.resize(static_cast<std::size_t>(out.channels) * out.depth * in.data.size() / in.channels);
    }
    // [C, H, W] of plane z into [C, Z, H, W].
    const std::size_t n = static_cast<std::size_t>(in.height) * in.width;
    for (int k = 0; k < in.channels; ++k) {
      std::copy_n(in.data.data() + k * n, n, out.data.data() + (static_cast<std::size_t>(k) * out.depth + z) * n);
    }
  }
  if (norm.enabled) {
    const std::size_t volume = static_cast<std::size_t>(out.depth) * out.height * out.width;
    for (int k = 0; k < out.channels; ++k) {
      float* p = out.data.data() + k * volume;
      if (!normalize_volume(p, out.depth, out.height, out.width, norm) && norm.zero_constant) {
        std::fill(p, p + volume, 0.0f);
      }
    }
  }
  return out;
}

}  // namespace cpipc::model
