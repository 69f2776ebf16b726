#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/model/network.hpp"
#include "cpipc/model/tiling.hpp"

namespace cpipc::model {

namespace {

// Source positions and weights of a bilinear resize along one axis, with
// half-pixel centres and edges clamped, computed in double as OpenCV's
// cv2.resize (INTER_LINEAR) does. torch's interpolate computes the position in
// float32, which is off by ~1e-4 at a few hundred pixels: too far from
// Cellpose for our 1e-3 flow tolerance.
struct AxisWeights {
  at::Tensor lo, hi;      // int64 source indices
  at::Tensor w_lo, w_hi;  // float32 weights
};

AxisWeights axis_weights(std::int64_t in, std::int64_t out, const c10::Device& device) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  std::vector<std::int64_t> lo(out), hi(out);
  std::vector<float> w_lo(out), w_hi(out);
  for (std::int64_t d = 0; d < out; ++d) {
    auto f = static_cast<float>((d + 0.5) * scale - 0.5);
    auto s = static_cast<std::int64_t>(std::floor(f));
    f -= static_cast<float>(s);
    if (s < 0) s = 0, f = 0.0f;
    if (s >= in - 1) s = in - 1, f = 0.0f;
    lo[d] = s;
    hi[d] = std::min(s + 1, in - 1);
    w_lo[d] = 1.0f - f;
    w_hi[d] = f;
  }
  const auto i64 = torch::TensorOptions().dtype(torch::kLong);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  return {torch::tensor(lo, i64).to(device), torch::tensor(hi, i64).to(device), torch::tensor(w_lo, f32).to(device),
          torch::tensor(w_hi, f32).to(device)};
}

// Bilinear resize of [C, H, W] planes: rows first, then columns, as OpenCV.
at::Tensor resize(const at::Tensor& planes, std::int64_t height, std::int64_t width) {
  const AxisWeights wx = axis_weights(planes.size(2), width, planes.device());
  const AxisWeights wy = axis_weights(planes.size(1), height, planes.device());
  const at::Tensor rows = planes.index_select(2, wx.lo) * wx.w_lo + planes.index_select(2, wx.hi) * wx.w_hi;
  return rows.index_select(1, wy.lo) * wy.w_lo.unsqueeze(1) + rows.index_select(1, wy.hi) * wy.w_hi.unsqueeze(1);
}

}  // namespace

at::Tensor resize_planes(const at::Tensor& planes, std::int64_t height, std::int64_t width) {
  return resize(planes, height, width);
}

NetworkResult run_network(const Model& model, const at::Tensor& input, const NetworkOptions& options) {
  c10::InferenceMode guard;
  const std::int64_t channels = model.info().input_channels;
  if (!((input.dim() == 3 && input.size(0) == channels) ||
        (input.dim() == 4 && input.size(1) == channels && input.size(0) >= 1))) {
    throw Error(Errc::invalid_argument, "network input must be [" + std::to_string(channels) + ", H, W] or [N, " +
                                            std::to_string(channels) + ", H, W]");
  }
  const bool one = input.dim() == 3;
  const std::int64_t images = one ? 1 : input.size(0);
  const std::int64_t height = input.size(-2);
  const std::int64_t width = input.size(-1);
  if (!(options.rescale > 0.0)) throw Error(Errc::invalid_argument, "rescale must be > 0");
  if (options.batch_size < 1) throw Error(Errc::invalid_argument, "batch size must be >= 1");

  // Rescale so that cells have the network's diameter.
  at::Tensor x = one ? input.unsqueeze(0) : input;  // [N, C, H, W]
  std::int64_t ly = height;
  std::int64_t lx = width;
  if (options.rescale != 1.0) {
    const auto length = [&](std::int64_t l) {
      return options.rescale_float64 ? rescaled_length(l, options.rescale)
                                     : rescaled_length(l, static_cast<float>(options.rescale));
    };
    ly = length(height);
    lx = length(width);
    if (ly < 1 || lx < 1) {
      throw Error(Errc::invalid_argument, "the image (" + std::to_string(height) + "x" + std::to_string(width) +
                                              ") vanishes when rescaled by " + std::to_string(options.rescale) +
                                              "; give a smaller --diameter");
    }
    x = resize(x.reshape({images * channels, height, width}), ly, lx).reshape({images, channels, ly, lx});
  }

  // Pad to a multiple of 16 plus 8 px each side, then cut overlapping tiles.
  const int tile = model.info().tile;
  const Padding py = options.pad_to_tile ? network_padding(ly, tile) : network_padding(ly);
  const Padding px = options.pad_to_tile ? network_padding(lx, tile) : network_padding(lx);
  // augment pads, at the end, to at least one tile (Cellpose's make_tiles).
  const std::int64_t end_y = options.augment ? std::max<std::int64_t>(0, tile - (ly + py.before + py.after)) : 0;
  const std::int64_t end_x = options.augment ? std::max<std::int64_t>(0, tile - (lx + px.before + px.after)) : 0;
  x = at::constant_pad_nd(x, {px.before, px.after + end_x, py.before, py.after + end_y}, 0.0);
  const std::int64_t pad_h = x.size(2);
  const std::int64_t pad_w = x.size(3);
  const TileAxis ty = options.augment ? augmented_tile_axis(pad_h, tile) : tile_axis(pad_h, tile, options.tile_overlap);
  const TileAxis tx = options.augment ? augmented_tile_axis(pad_w, tile) : tile_axis(pad_w, tile, options.tile_overlap);
  const std::vector<double> mask_host = taper_mask(ty.size, tx.size);
  const auto opts = x.options();
  const at::Tensor mask = torch::from_blob(const_cast<double*>(mask_host.data()), {ty.size, tx.size},
                                           torch::TensorOptions().dtype(torch::kDouble))
                              .to(opts.dtype(torch::kFloat).device(x.device()));

  // The tiles of every image, batched across images as Cellpose batches a stack's.
  struct Tile {
    std::int64_t n, y, x;
    bool flip_y = false, flip_x = false;  // augment: by the tile's row j and column i parity
  };
  std::vector<Tile> tiles;
  for (std::int64_t n = 0; n < images; ++n) {
    for (std::size_t j = 0; j < ty.starts.size(); ++j) {
      for (std::size_t i = 0; i < tx.starts.size(); ++i) {
        tiles.push_back({n, ty.starts[j], tx.starts[i], options.augment && i % 2 == 1, options.augment && j % 2 == 1});
      }
    }
  }
  // Flips a [C, H, W] tile as its position asks; flows back with the flipped
  // component negated (dY for a flip in Y, dX in X).
  const auto flip = [](at::Tensor t, const Tile& tile_at) {
    if (tile_at.flip_y) t = t.flip({1});
    if (tile_at.flip_x) t = t.flip({2});
    return t;
  };
  const auto unflip = [&flip](at::Tensor y, const Tile& tile_at) {
    if (!tile_at.flip_y && !tile_at.flip_x) return y;
    y = flip(y, tile_at).clone();
    if (tile_at.flip_y) y[0].neg_();
    if (tile_at.flip_x) y[1].neg_();
    return y;
  };
  const int ntiles = static_cast<int>(tiles.size());

  at::Tensor sum = torch::zeros({images, 3, pad_h, pad_w}, opts);
  at::Tensor weight = torch::zeros({pad_h, pad_w}, opts);
  at::Tensor style;
  // The tiles' flows do not depend on how they are batched; the model says
  // what runs fastest on its device (one tile at a time for a CPnet on the CPU).
  const int per_forward = model.tiles_per_forward(options.batch_size);
  for (int first = 0, last = 0; first < ntiles; first = last) {
    last = first + std::min(per_forward, ntiles - first);
    std::vector<at::Tensor> batch;
    batch.reserve(static_cast<std::size_t>(last - first));
    for (int j = first; j < last; ++j) {
      batch.push_back(
          flip(x[tiles[j].n].slice(1, tiles[j].y, tiles[j].y + ty.size).slice(2, tiles[j].x, tiles[j].x + tx.size),
               tiles[j]));
    }
    const NetOutput out = model.forward(torch::stack(batch));
    for (int j = first; j < last; ++j) {
      const Tile& t = tiles[j];
      sum[t.n].slice(1, t.y, t.y + ty.size).slice(2, t.x, t.x + tx.size).add_(unflip(out.y[j - first], t) * mask);
      // Every image has the same tiles: their weights are counted once.
      if (t.n == 0) weight.slice(0, t.y, t.y + ty.size).slice(1, t.x, t.x + tx.size).add_(mask);
    }
    if (out.style.defined()) {
      const at::Tensor s = out.style.sum(0);
      style = style.defined() ? style + s : s;
    }
    if (options.on_tiles) options.on_tiles(last, ntiles);
  }
  at::Tensor flows = (sum / weight).slice(2, py.before, py.before + ly).slice(3, px.before, px.before + lx);
  if (options.resample && (ly != height || lx != width)) {
    flows = resize(flows.reshape({images * 3, ly, lx}), height, width).reshape({images, 3, height, width});
  }

  NetworkResult result;
  result.flows = one ? flows.squeeze(0).contiguous() : flows.contiguous();
  // CP-SAM's style is all zeros (Cellpose 4 keeps it for compatibility): it stays zeros, not NaN.
  result.style = style.defined() ? style / style.pow(2).sum().sqrt().clamp_min(1e-30) : torch::zeros({256}, opts);
  result.tiles = ntiles;
  return result;
}

}  // namespace cpipc::model
