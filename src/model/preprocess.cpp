#include "cpipc/model/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"

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

float percentile(std::vector<float>& values, float q) {
  if (values.empty()) bad("percentile of no values");
  // numpy 2 keeps float32 data in float32: the virtual index q/100 * (n - 1),
  // its floor, and the lerp (from the upper end when gamma >= 0.5).
  const float index = static_cast<float>(q / 100.0) * static_cast<float>(values.size() - 1);
  const float below_f = std::floor(index);
  auto below = static_cast<std::size_t>(below_f);
  below = std::min(below, values.size() - 1);
  const std::size_t above = std::min(below + 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(below), values.end());
  const float a = values[below];
  const float b =
      above == below ? a : *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(above), values.end());
  const float gamma = index - below_f;
  const float diff = b - a;
  return gamma >= 0.5f ? b - diff * (1.0f - gamma) : a + diff * gamma;
}

bool normalize_plane(float* plane, int height, int width, const Normalization& norm) {
  const std::size_t n = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  const auto [lo, hi] = std::minmax_element(plane, plane + n);
  if (!(*hi - *lo > 0.0f)) return false;  // Cellpose leaves a constant channel as it is
  // normalize99's downsample: above 224^3 pixels the percentiles come from
  // every (H/224)-th row and (W/224)-th column.
  std::vector<float> sample;
  if (n > std::size_t{224} * 224 * 224) {
    const int sy = std::max(1, height / 224);
    const int sx = std::max(1, width / 224);
    sample.reserve(static_cast<std::size_t>((height + sy - 1) / sy) * static_cast<std::size_t>((width + sx - 1) / sx));
    for (int y = 0; y < height; y += sy) {
      for (int x = 0; x < width; x += sx) sample.push_back(plane[static_cast<std::size_t>(y) * width + x]);
    }
  } else {
    sample.assign(plane, plane + n);
  }
  const float p_low = percentile(sample, norm.lower);
  const float p_high = percentile(sample, norm.upper);
  const float range = p_high - p_low;
  if (range > 1e-3f) {
    for (std::size_t i = 0; i < n; ++i) plane[i] = (plane[i] - p_low) / range;
  } else {
    std::fill(plane, plane + n, 0.0f);
  }
  if (norm.invert) {
    for (std::size_t i = 0; i < n; ++i) plane[i] = 1.0f - plane[i];
  }
  return true;
}

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
  const std::vector<float> pixels = io::to_float32(image, "image");
  for (float v : pixels) {
    if (!std::isfinite(v)) bad("image has NaN or infinite values; clean or clip it first");
  }
  const std::size_t plane = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  auto channel = [&](std::int64_t k, float* out) {
    for (std::size_t i = 0; i < plane; ++i) out[i] = pixels[i * c + k];
  };

  NetworkInput in{network_channels, static_cast<int>(h), static_cast<int>(w), {}};
  in.data.assign(plane * network_channels, 0.0f);
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
      for (std::int64_t k = 0; k < c; ++k) sum += pixels[i * c + k];
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
  if (norm.enabled) {
    if (!(norm.lower >= 0.0f && norm.lower < norm.upper && norm.upper <= 100.0f)) {
      std::ostringstream s;
      s << "bad normalisation percentiles " << norm.lower << ", " << norm.upper << ": expected 0 <= low < high <= 100";
      bad(s.str());
    }
    for (int k = 0; k < network_channels; ++k) {
      normalize_plane(in.data.data() + k * plane, in.height, in.width, norm);
    }
  }
  return in;
}

}  // namespace cpipc::model
