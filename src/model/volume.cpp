#include "cpipc/model/volume.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpipc/dynamics/stitch.hpp"
#include "cpipc/error.hpp"
#include "cpipc/model/network.hpp"
#include "cpipc/model/preprocess.hpp"
#include "cpipc/model/tensor_dynamics.hpp"
#include "cpipc/model/tiling.hpp"
#include "working_set.hpp"

namespace cpipc::model {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string shape_text(std::int64_t z, std::int64_t y, std::int64_t x) {
  return std::to_string(z) + "x" + std::to_string(y) + "x" + std::to_string(x);
}

// How the stack is rescaled: Cellpose 3 multiplies lengths by a float32
// rescale, Cellpose 4 by a float64 one; Z also by the anisotropy.
struct Scale {
  double rescale = 1.0;
  bool float64 = false;
  double anisotropy = 1.0;

  [[nodiscard]] std::int64_t yx(std::int64_t length) const {
    return float64 ? rescaled_length(length, rescale) : rescaled_length(length, static_cast<float>(rescale));
  }
  // int(Lz * anisotropy * rescale): numpy multiplies the Python float
  // Lz * anisotropy by Cellpose 3's float32 rescale in float32.
  [[nodiscard]] std::int64_t z(std::int64_t length) const {
    const double lz = static_cast<double>(length) * anisotropy;
    return float64 ? static_cast<std::int64_t>(lz * rescale)
                   : static_cast<std::int64_t>(static_cast<float>(lz) * static_cast<float>(rescale));
  }
};

// Bilinear resize of [C, Z, Y, X] volumes: each plane in YX, then each
// [Z, X] slice in Z (Cellpose's resize_image_3d, both with cv2.INTER_LINEAR).
at::Tensor resize_volume(const at::Tensor& v, std::int64_t depth, std::int64_t height, std::int64_t width) {
  const std::int64_t c = v.size(0);
  at::Tensor out = v;
  if (height != v.size(2) || width != v.size(3)) {
    out = resize_planes(out.reshape({c * v.size(1), v.size(2), v.size(3)}), height, width)
              .reshape({c, v.size(1), height, width});
  }
  if (depth != v.size(1)) {
    const at::Tensor zx = out.permute({0, 2, 1, 3}).contiguous().reshape({c * height, v.size(1), width});
    out = resize_planes(zx, depth, width).reshape({c, height, depth, width}).permute({0, 2, 1, 3});
  }
  return out.contiguous();
}

// scipy.ndimage.gaussian_filter along `dim` (mode 'reflect', truncate 4):
// float64 sums, float32 result, as scipy filters float32 arrays axis by axis.
at::Tensor gaussian_along(const at::Tensor& v, int64_t dim, double sigma) {
  const auto radius = static_cast<std::int64_t>(4.0 * sigma + 0.5);
  if (radius < 1) return v;
  std::vector<double> w(static_cast<std::size_t>(2 * radius + 1));
  double sum = 0.0;
  for (std::int64_t k = -radius; k <= radius; ++k) {
    w[static_cast<std::size_t>(k + radius)] = std::exp(-0.5 / (sigma * sigma) * static_cast<double>(k * k));
    sum += w[static_cast<std::size_t>(k + radius)];
  }
  const std::int64_t n = v.size(dim);
  // 'reflect' repeats the edge (d c b a | a b c d | d c b a), period 2n.
  std::vector<std::int64_t> index(static_cast<std::size_t>(n + 2 * radius));
  for (std::int64_t j = -radius; j < n + radius; ++j) {
    std::int64_t m = ((j % (2 * n)) + 2 * n) % (2 * n);
    index[static_cast<std::size_t>(j + radius)] = m < n ? m : 2 * n - 1 - m;
  }
  const at::Tensor padded =
      v.to(torch::kDouble).index_select(dim, torch::tensor(index, torch::dtype(torch::kLong)).to(v.device()));
  at::Tensor acc = torch::zeros_like(v, torch::dtype(torch::kDouble));
  for (std::int64_t k = 0; k < 2 * radius + 1; ++k) {
    acc.add_(padded.narrow(dim, k, n), w[static_cast<std::size_t>(k)] / sum);
  }
  return acc.to(torch::kFloat);
}

// The network on every plane of the three orthogonal stacks (Cellpose's
// run_3D): YX planes give dY, dX; ZX planes dZ, dX; ZY planes dZ, dY; each
// pass adds its cellprob. `x` is [C, Z, Y, X]; returns [4, Z, Y, X]
// (dZ, dY, dX, cellprob), summed in Cellpose's order. The planes of a pass
// go to the network together, their tiles batched across planes (as
// Cellpose's run_net batches a stack's), a bounded number at a time.
at::Tensor run_three_passes(const Model& model, const at::Tensor& x, NetworkOptions net,
                            const std::function<void(int, int)>& on_plane, int& tiles) {
  const std::int64_t z = x.size(1), y = x.size(2), w = x.size(3);
  at::Tensor flows = torch::zeros({4, z, y, w}, x.options());
  // For pass p: the axis it slices along, and which of flows' components its
  // first two outputs add to.
  struct Pass {
    int axis;
    int first;
    int second;
  };
  constexpr Pass passes[3] = {{1, 1, 2}, {2, 0, 2}, {3, 0, 1}};
  const int total = static_cast<int>(z + y + w);
  int done = 0;
  net.on_tiles = nullptr;
  for (const Pass& p : passes) {
    // [planes, C, A, B]: the pass's axis first.
    std::vector<std::int64_t> order{p.axis, 0};
    for (std::int64_t d = 1; d < 4; ++d) {
      if (d != p.axis) order.push_back(d);
    }
    const at::Tensor planes = x.permute(order);
    at::Tensor target = flows.permute(order);  // [planes, 4, A, B], a view of flows
    const std::int64_t n = planes.size(0);
    const std::int64_t plane = planes.size(2) * planes.size(3);
    // At most ~16 M pixels of planes per call: bounded blend buffers.
    const std::int64_t chunk =
        std::clamp<std::int64_t>((std::int64_t{1} << 24) / std::max<std::int64_t>(1, plane), 1, n);
    for (std::int64_t i = 0; i < n; i += chunk) {
      const std::int64_t m = std::min(chunk, n - i);
      const NetworkResult r = run_network(model, planes.narrow(0, i, m).contiguous(), net);
      tiles += r.tiles;
      at::Tensor t = target.narrow(0, i, m);
      t.select(1, 3).add_(r.flows.select(1, 2));
      t.select(1, p.first).add_(r.flows.select(1, 0));
      t.select(1, p.second).add_(r.flows.select(1, 1));
      done += static_cast<int>(m);
      if (on_plane) on_plane(done, total);
    }
  }
  return flows;
}

// A plane of the normalised input volume as an [H, W, C] float32 image.
io::Array input_plane(const VolumeInput& in, int z) {
  io::Array plane;
  const std::int64_t shape[3] = {in.height, in.width, in.channels};
  plane.desc = ipc::TensorDesc::contiguous(ipc::kFloat32, shape);
  plane.data.resize(static_cast<std::size_t>(plane.desc.nbytes()));
  auto* out = reinterpret_cast<float*>(plane.data.data());
  const std::size_t n = static_cast<std::size_t>(in.height) * in.width;
  for (int k = 0; k < in.channels; ++k) {
    const float* src = in.data.data() + (static_cast<std::size_t>(k) * in.depth + z) * n;
    for (std::size_t i = 0; i < n; ++i) out[i * in.channels + k] = src[i];
  }
  return plane;
}

VolumeSegmentation stitched(const Segmenter& segmenter, const VolumeInput& in, const VolumeOptions& options) {
  const ModelInfo& info = segmenter.model().info();
  SegmentOptions o = options.base;
  o.normalization.enabled = false;  // normalised as one stack already
  if (info.uses_cellpose3_channels()) o.channels = {ChannelSpec::Kind::cellpose3, 1, in.channels >= 2 ? 2 : 0};
  if (o.diameter && *o.diameter <= 0.0) o.diameter.reset();  // no size model for stacks
  o.dynamics.min_size = -1;                                  // small masks go after stitching, in 3-D
  o.exclude_on_edges = false;
  o.keep_flows = options.base.keep_flows;
  o.labels_on_device = false;
  const auto progress = options.base.progress;
  VolumeSegmentation out;
  out.depth = in.depth;
  out.height = in.height;
  out.width = in.width;
  const std::size_t plane = static_cast<std::size_t>(in.height) * in.width;
  out.labels.resize(plane * static_cast<std::size_t>(in.depth));
  if (o.keep_flows) out.flows.resize(3 * plane * static_cast<std::size_t>(in.depth));
  for (int z = 0; z < in.depth; ++z) {
    o.progress = [&](const Progress& p) {
      if (progress && p.stage == Progress::Stage::network) progress({p.stage, z, in.depth});
    };
    Segmentation s;
    try {
      s = segmenter.segment(input_plane(in, z), o);
    } catch (const Error& e) {
      throw Error(e.code(), "plane " + std::to_string(z) + ": " + e.what());
    }
    std::copy(s.masks.data.begin(), s.masks.data.end(), out.labels.begin() + static_cast<std::ptrdiff_t>(z * plane));
    if (o.keep_flows) {  // plane z's [3, H, W] into [3, Z, H, W], as Cellpose's stitched flows
      if (s.flows.size() != 3 * plane)
        throw std::logic_error("stitched: plane " + std::to_string(z) + " kept no flows");
      for (std::size_t c = 0; c < 3; ++c) {
        std::copy_n(s.flows.begin() + static_cast<std::ptrdiff_t>(c * plane), plane,
                    out.flows.begin() + static_cast<std::ptrdiff_t>((c * in.depth + z) * plane));
      }
    }
    out.tiles += s.tiles;
    out.timings.network_s += s.timings.network_s;
    out.timings.dynamics_s += s.timings.dynamics_s;
    if (z == 0) {
      out.diameter = s.diameter;
      out.rescale = s.rescale;
      out.niter = s.niter;
    }
  }
  if (progress) progress({Progress::Stage::dynamics});
  const auto t0 = Clock::now();
  dynamics::stitch_planes(out.labels, in.depth, in.height, in.width, options.stitch_threshold);
  out.count = dynamics::fill_holes_and_remove_small_masks_3d(out.labels, in.depth, in.height, in.width,
                                                             options.base.dynamics.min_size);
  if (options.base.exclude_on_edges) {
    TensorLabels t{torch::from_blob(out.labels.data(), {in.depth, in.height, in.width}, torch::kInt32), out.count};
    remove_edge_masks(t);
    std::memcpy(out.labels.data(), t.labels.contiguous().data_ptr<std::int32_t>(),
                out.labels.size() * sizeof(std::uint32_t));
    out.count = t.count;
  }
  out.timings.dynamics_s += seconds_since(t0);
  return out;
}

VolumeSegmentation in_3d(const Segmenter& segmenter, const VolumeInput& in, const VolumeOptions& options) {
  const Model& model = segmenter.model();
  const ModelInfo& info = model.info();
  const SegmentOptions& base = options.base;
  const auto report = [&](Progress::Stage stage, int done = 0, int total = 0) {
    if (base.progress) base.progress({stage, done, total});
  };
  VolumeSegmentation out;
  out.depth = in.depth;
  out.height = in.height;
  out.width = in.width;

  // The diameter as for a 2-D image, without a size model.
  const bool have_diameter = base.diameter && *base.diameter > 0.0;
  Scale scale;
  scale.anisotropy = options.anisotropy;
  if (info.cellpose4_eval()) {
    out.diameter = have_diameter ? *base.diameter : 30.0;
    scale.rescale = have_diameter ? 30.0 / *base.diameter : 1.0;
    scale.float64 = true;
  } else {
    out.diameter = have_diameter ? *base.diameter : info.diam_labels;
    scale.rescale = static_cast<float>(info.diam_mean) / static_cast<float>(out.diameter);
  }
  out.rescale = static_cast<float>(scale.rescale);
  const bool resize = scale.rescale != 1.0 || options.anisotropy != 1.0;
  const std::int64_t zr = resize ? scale.z(in.depth) : in.depth;
  const std::int64_t yr = scale.rescale != 1.0 ? scale.yx(in.height) : in.height;
  const std::int64_t xr = scale.rescale != 1.0 ? scale.yx(in.width) : in.width;
  if (zr < 1 || yr < 1 || xr < 1) {
    throw Error(Errc::invalid_argument, "the stack (" + shape_text(in.depth, in.height, in.width) +
                                            ") vanishes when rescaled to " + shape_text(zr, yr, xr) +
                                            "; give a smaller --diameter or a larger --anisotropy");
  }
  detail::check_working_set(static_cast<double>(in.depth) * in.height * in.width,
                            static_cast<double>(zr) * static_cast<double>(yr + 64) * static_cast<double>(xr + 64),
                            in.channels, model.device(), "z-stack " + shape_text(in.depth, in.height, in.width));

  const auto t0 = Clock::now();
  c10::InferenceMode guard;
  const c10::Device device = model.device().cuda
                                 ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(model.device().index))
                                 : c10::Device(c10::kCPU);
  at::Tensor x = torch::from_blob(const_cast<float*>(in.data.data()), {in.channels, in.depth, in.height, in.width},
                                  torch::TensorOptions().dtype(torch::kFloat))
                     .to(device);
  if (resize) x = resize_volume(x, zr, yr, xr);

  report(Progress::Stage::network);
  NetworkOptions net;
  net.tile_overlap = base.tile_overlap;
  net.batch_size = base.batch_size;
  net.augment = base.augment;
  net.pad_to_tile = info.cellpose4_eval();
  at::Tensor flows = run_three_passes(
      model, x, net, [&](int done, int total) { report(Progress::Stage::network, done, total); }, out.tiles);
  x = at::Tensor();
  if (base.resample && (zr != in.depth || yr != in.height || xr != in.width)) {
    flows = resize_volume(flows, in.depth, in.height, in.width);
  }
  const auto t1 = Clock::now();
  out.timings.network_s = std::chrono::duration<double>(t1 - t0).count();

  report(Progress::Stage::dynamics);
  for (int axis = 0; axis < 3; ++axis) {
    const double sigma = options.flow3d_smooth[static_cast<std::size_t>(axis)];
    if (sigma > 0.0) flows.narrow(0, 0, 3).copy_(gaussian_along(flows.narrow(0, 0, 3), axis + 1, sigma));
  }
  dynamics::Params dyn = base.dynamics;
  if (dyn.niter <= 0) {
    // As in 2-D: 200 / rescale steps with resampling, 200 without.
    const double niter = !base.resample  ? 200.0
                         : scale.float64 ? 200.0 / scale.rescale
                                         : 1.0f / static_cast<float>(scale.rescale) * 200.0f;
    dyn.niter = niter >= 1.0 && niter < 1e6 ? static_cast<int>(niter) : 200;
  }
  out.niter = dyn.niter;
  TensorLabels labels = flows.size(1) != in.depth || flows.size(2) != in.height || flows.size(3) != in.width
                            ? resized_masks_from_flows_3d(flows, dyn, in.depth, in.height, in.width)
                            : masks_from_flows_3d(flows, dyn);
  if (base.exclude_on_edges) remove_edge_masks(labels);
  const at::Tensor host = labels.labels.to(torch::kCPU).contiguous();
  out.count = labels.count;
  out.labels.resize(static_cast<std::size_t>(host.numel()));
  std::memcpy(out.labels.data(), host.data_ptr<std::int32_t>(), out.labels.size() * sizeof(std::uint32_t));
  if (base.keep_flows) {
    const at::Tensor f = (flows.size(1) != in.depth || flows.size(2) != in.height || flows.size(3) != in.width
                              ? resize_volume(flows, in.depth, in.height, in.width)
                              : flows)
                             .to(torch::kCPU)
                             .contiguous();
    out.flows.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  }
  out.timings.dynamics_s = seconds_since(t1);
  return out;
}

}  // namespace

VolumeSegmentation segment_volume(const Segmenter& segmenter, const io::Array& stack, const VolumeOptions& options) {
  if (options.do_3d == (options.stitch_threshold > 0.0f)) {
    throw Error(Errc::invalid_argument, options.do_3d ? "--do-3d and --stitch-threshold exclude each other; give one"
                                                      : "a 3-D segmentation needs --do-3d or --stitch-threshold > 0");
  }
  if (!(options.stitch_threshold >= 0.0f && options.stitch_threshold <= 1.0f)) {
    throw Error(Errc::invalid_argument, "--stitch-threshold is an IoU: give a number in (0, 1]");
  }
  if (!(options.anisotropy > 0.0 && options.anisotropy <= 1000.0)) {
    throw Error(Errc::invalid_argument, "--anisotropy must be a positive number (Z spacing / XY spacing)");
  }
  for (double s : options.flow3d_smooth) {
    if (!(s >= 0.0 && s <= 100.0)) throw Error(Errc::invalid_argument, "--flow3d-smooth sigmas must be in [0, 100]");
  }
  if (options.base.diameter && !std::isfinite(*options.base.diameter)) {
    throw Error(Errc::invalid_argument, "--diameter must be a finite number of pixels");
  }
  const Model& model = segmenter.model();
  const ModelInfo& info = model.info();
  const auto t0 = Clock::now();
  if (options.base.progress) options.base.progress({Progress::Stage::preprocess});
  Normalization norm = options.base.normalization;
  norm.zero_constant = info.cellpose4_eval();
  const ChannelSpec channels =
      info.uses_cellpose3_channels() ? options.base.channels : ChannelSpec{ChannelSpec::Kind::first};
  return detail::with_memory_errors(model.device(), "a " + stack.desc.to_string() + " z-stack", [&] {
    if (options.stitch_threshold > 0.0f) {
      // The per-plane working set is checked by each plane's segment().
      const ipc::TensorDesc& d = stack.desc;
      if (d.ndim == 3 || d.ndim == 4) {
        detail::check_working_set(static_cast<double>(d.numel()), 0.0, info.input_channels, model.device(),
                                  "z-stack " + shape_text(d.shape[0], d.shape[1], d.shape[2]));
      }
    }
    const VolumeInput in = volume_input(stack, channels, info.input_channels, norm);
    const double preprocess_s = seconds_since(t0);
    VolumeSegmentation out = options.do_3d ? in_3d(segmenter, in, options) : stitched(segmenter, in, options);
    out.timings.preprocess_s = preprocess_s;
    out.timings.total_s = seconds_since(t0);
    if (options.base.progress) options.base.progress({Progress::Stage::done});
    return out;
  });
}

}  // namespace cpipc::model
