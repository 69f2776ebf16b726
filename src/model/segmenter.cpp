#include "cpipc/model/segmenter.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string_view>

#include "cpipc/cuda/device.hpp"
#include "cpipc/error.hpp"
#include "cpipc/model/network.hpp"
#include "cpipc/model/size_model.hpp"
#include "cpipc/model/tensor_dynamics.hpp"
#include "cpipc/model/tiling.hpp"
#include "working_set.hpp"

namespace cpipc::model {

namespace {

// Cellpose 4 rescales by 30 / diameter whatever the network's diam_mean.
constexpr double kCellpose4Diameter = 30.0;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void check_memory(std::int64_t h, std::int64_t w, std::int64_t hr, std::int64_t wr, int channels,
                  const Device& device) {
  detail::check_working_set(static_cast<double>(h) * static_cast<double>(w),
                            static_cast<double>(hr + 64) * static_cast<double>(wr + 64), channels, device,
                            "image " + std::to_string(h) + "x" + std::to_string(w));
}

// Labels to the host: the dynamics ran on the flows' device.
dynamics::Labels to_host(const TensorLabels& t) {
  const at::Tensor host = t.labels.to(torch::kCPU).contiguous();
  dynamics::Labels out;
  out.height = static_cast<int>(host.size(0));
  out.width = static_cast<int>(host.size(1));
  out.count = t.count;
  out.data.resize(static_cast<std::size_t>(host.numel()));
  std::memcpy(out.data.data(), host.data_ptr<std::int32_t>(), out.data.size() * sizeof(std::uint32_t));
  return out;
}

}  // namespace

const char* to_string(Progress::Stage stage) noexcept {
  switch (stage) {
    case Progress::Stage::preprocess:
      return "preprocess";
    case Progress::Stage::network:
      return "network";
    case Progress::Stage::dynamics:
      return "dynamics";
    default:
      return "done";
  }
}

Segmenter::Segmenter(Model model) : model_(std::move(model)) {}

Segmentation Segmenter::segment(const io::Array& image, const SegmentOptions& options) const {
  // check_memory refuses what clearly cannot fit; the rest is caught on the way.
  return detail::with_memory_errors(model_.device(), "a " + image.desc.to_string() + " image",
                                    [&] { return run(image, options); });
}

Segmentation Segmenter::run(const io::Array& image, const SegmentOptions& options) const {
  const auto t0 = Clock::now();
  const ModelInfo& info = model_.info();
  const auto report = [&](Progress::Stage stage, int done = 0, int total = 0) {
    if (options.progress) options.progress({stage, done, total});
  };
  report(Progress::Stage::preprocess);

  Segmentation result;
  // Cellpose 3: rescale = diam_mean / diameter, or diam_mean / diam_labels
  // without one; float32 throughout, as numpy computes it from the net's
  // float32 parameters.
  if (options.diameter && !std::isfinite(*options.diameter)) {
    throw Error(Errc::invalid_argument, "--diameter must be a finite number of pixels");
  }
  const bool have_diameter = options.diameter && *options.diameter > 0.0;
  const bool cellpose4 = info.cellpose4_eval();
  const bool estimate = options.diameter && !have_diameter && info.size_model && !cellpose4;
  NetworkOptions net;
  if (cellpose4) {
    // Cellpose 4: 30 / diameter in float64 when one is given, else no
    // resizing at all (it has no size model: 0 means none, as there).
    result.diameter = have_diameter ? *options.diameter : kCellpose4Diameter;
    net.rescale = have_diameter ? kCellpose4Diameter / *options.diameter : 1.0;
    net.rescale_float64 = true;
    net.pad_to_tile = true;
    result.rescale = static_cast<float>(net.rescale);
  } else {
    result.diameter = have_diameter ? *options.diameter : info.diam_labels;
    result.rescale = static_cast<float>(info.diam_mean) / static_cast<float>(result.diameter);
    net.rescale = result.rescale;
  }

  const ChannelSpec channels =
      info.uses_cellpose3_channels() ? options.channels : ChannelSpec{ChannelSpec::Kind::first};
  Normalization normalization = options.normalization;
  normalization.zero_constant = cellpose4;
  NetworkInput input = network_input(image, channels, info.input_channels, normalization);
  const auto rescaled = [&](std::int64_t l) {
    return net.rescale_float64 ? rescaled_length(l, net.rescale) : rescaled_length(l, result.rescale);
  };
  check_memory(input.height, input.width, rescaled(input.height), rescaled(input.width), input.channels,
               model_.device());

  c10::InferenceMode guard;
  const c10::Device device = model_.device().cuda
                                 ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(model_.device().index))
                                 : c10::Device(c10::kCPU);
  const at::Tensor x = torch::from_blob(input.data.data(), {input.channels, input.height, input.width},
                                        torch::TensorOptions().dtype(torch::kFloat))
                           .to(device);
  const auto t1 = Clock::now();
  result.timings.preprocess_s = std::chrono::duration<double>(t1 - t0).count();

  report(Progress::Stage::network);
  net.tile_overlap = options.tile_overlap;
  net.batch_size = options.batch_size;
  net.augment = options.augment;
  if (estimate) {
    // Two passes of their own before the one that counts (network time):
    // progress without tile counts, which would restart twice.
    NetworkOptions base = net;
    base.on_tiles = [&](int, int) { report(Progress::Stage::network); };
    const DiameterEstimate est = estimate_diameter(model_, x, base);
    result.diameter = est.diameter;
    result.diameter_style = est.style_diameter;
    result.diameter_estimated = true;
    // Cellpose.eval hands the float64 estimate on: rescale and niter in float64.
    net.rescale = static_cast<double>(static_cast<float>(info.diam_mean)) / est.diameter;
    net.rescale_float64 = true;
    result.rescale = static_cast<float>(net.rescale);
    check_memory(input.height, input.width, rescaled_length(input.height, net.rescale),
                 rescaled_length(input.width, net.rescale), input.channels, model_.device());
  }
  net.resample = options.resample;
  dynamics::Params dyn = options.dynamics;
  if (dyn.niter <= 0) {
    // Without resampling the dynamics run at the rescaled size: 200 steps.
    const double niter = !options.resample     ? 200.0
                         : net.rescale_float64 ? 1.0 / net.rescale * 200.0
                                               : 1.0f / result.rescale * 200.0f;
    dyn.niter = niter >= 1.0 && niter < 1e6 ? static_cast<int>(niter) : 200;
  }
  result.niter = dyn.niter;

  net.on_tiles = [&](int done, int total) { report(Progress::Stage::network, done, total); };
  NetworkResult out = run_network(model_, x, net);
  result.tiles = out.tiles;
  const at::Tensor style = out.style.to(torch::kCPU).contiguous();
  result.style.assign(style.data_ptr<float>(), style.data_ptr<float>() + style.numel());
  const auto t2 = Clock::now();
  result.timings.network_s = std::chrono::duration<double>(t2 - t1).count();

  report(Progress::Stage::dynamics);
  const bool resized = out.flows.size(1) != input.height || out.flows.size(2) != input.width;
  TensorLabels labels =
      resized ? resized_masks_from_flows(out.flows, dyn, input.height, input.width) : masks_from_flows(out.flows, dyn);
  if (options.exclude_on_edges) remove_edge_masks(labels);
  if (options.labels_on_device && labels.labels.is_cuda()) {
    result.device_labels = labels.labels.contiguous();
    result.masks.height = static_cast<int>(labels.labels.size(0));
    result.masks.width = static_cast<int>(labels.labels.size(1));
    result.masks.count = labels.count;
    // The labels come from LibTorch's stream; the publisher reads them on its own.
    cuda::synchronize(static_cast<int>(labels.labels.device().index()), "the dynamics");
  } else {
    result.masks = to_host(labels);
  }
  if (options.keep_flows) {
    // At the image's size, whatever size the dynamics ran at.
    const at::Tensor f =
        (resized ? resize_planes(out.flows, input.height, input.width) : out.flows).to(torch::kCPU).contiguous();
    result.flows.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  }
  result.timings.dynamics_s = seconds_since(t2);
  result.timings.total_s = seconds_since(t0);
  report(Progress::Stage::done);
  return result;
}

}  // namespace cpipc::model
