// Image to network input, as Cellpose prepares it: channel selection and
// per-channel percentile normalisation (shared/CELLPOSE.md, "Eval
// pipeline"). Host-side and torch-free: the percentiles need a selection over
// the whole image, which is cheap on the CPU and leaves the device for the
// network.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cpipc/io/array.hpp"

namespace cpipc::model {

// Which image channels feed the network.
//  - cellpose3: `[seg, nuc]`, 1-based; seg 0 = grayscale (mean over the
//    image's channels) and nuc 0 = none. Always 2 network channels.
//  - first: the image's first `n` channels, zero-padded to `n` (Cellpose 4's
//    first-three; also Cellpose 3 without a channel spec).
struct ChannelSpec {
  enum class Kind { cellpose3, first } kind = Kind::cellpose3;
  int seg = 0;
  int nuc = 0;

  // "0,0" / "2,3" -> cellpose3; "first" -> first. Throws Error(invalid_argument).
  static ChannelSpec parse(const std::string& text);
  [[nodiscard]] std::string to_string() const;
};

// Normalisation: (x - p_low) / (p_high - p_low) per channel, no clipping; a
// channel whose range is zero (or whose percentiles differ by <= 1e-3)
// becomes 0. `invert` maps v to 1 - v on normalised channels.
struct Normalization {
  bool enabled = true;
  float lower = 1.0f;   // percentile, 0..100
  float upper = 99.0f;  // percentile, 0..100
  bool invert = false;
  // Cellpose 4: a channel it did not normalise (constant) becomes zeros
  // (Cellpose 3 leaves it as it is).
  bool zero_constant = false;
};

// Network input planes: [channels, height, width] float32, row-major.
struct NetworkInput {
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<float> data;
};

// The image (2-D [H, W] or [H, W, C], any integer or float dtype) as the
// network's normalised input with `network_channels` planes. Throws
// Error(invalid_argument) naming the problem: empty image, a channel the
// image does not have, more dimensions than 3, an unsupported dtype,
// non-finite values.
[[nodiscard]] NetworkInput network_input(const io::Array& image, const ChannelSpec& channels, int network_channels,
                                         const Normalization& norm = {});

// numpy.percentile(values, q) with linear interpolation, computed the way
// numpy 2 does for float32 data (in float32).
[[nodiscard]] float percentile(const std::vector<float>& values, float q);
// The q_low and q_high percentiles of values[0, n) at once (q_low <= q_high).
[[nodiscard]] std::pair<float, float> percentiles(const float* values, std::size_t n, float q_low, float q_high);

// Normalises one plane in place as Cellpose's normalize99 (with its
// subsampling above 224^3 pixels). Returns false if the plane was constant
// and left untouched (all zero after), true otherwise.
bool normalize_plane(float* plane, int height, int width, const Normalization& norm);
// The same over a [depth, height, width] volume (normalize99 of a 3-D array:
// one pair of percentiles for the whole stack).
bool normalize_volume(float* data, int depth, int height, int width, const Normalization& norm);

// A z-stack as network input: [channels, depth, height, width] float32.
struct VolumeInput {
  int channels = 0;
  int depth = 0;
  int height = 0;
  int width = 0;
  std::vector<float> data;
};

// A z-stack ([Z, H, W] or [Z, H, W, C]) as the network's input volume: the
// channels of each plane chosen as network_input chooses them, then each
// channel normalised over the whole stack, as Cellpose's norm3D (on for
// do_3D and for stitching). Throws what network_input throws, naming the plane.
[[nodiscard]] VolumeInput volume_input(const io::Array& stack, const ChannelSpec& channels, int network_channels,
                                       const Normalization& norm = {});

}  // namespace cpipc::model
