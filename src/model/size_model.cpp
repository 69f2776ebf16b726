#include "cpipc/model/size_model.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <string>
#include <vector>

#include "cpipc/error.hpp"

namespace cpipc::model {

double style_diameter(const SizeModel& sm, std::span<const float> style) {
  if (style.size() != sm.A.size()) {
    throw Error(Errc::invalid_argument, "the size model expects a style of " + std::to_string(sm.A.size()) +
                                            " values, the network gave " + std::to_string(style.size()));
  }
  // numpy: float64 A @ float32 (style - smean), then float64 throughout.
  double dot = 0.0;
  for (std::size_t i = 0; i < style.size(); ++i) {
    dot += sm.A[i] * static_cast<double>(style[i] - static_cast<float>(sm.smean[i]));
  }
  // np.maximum keeps a NaN, which SizeModel.eval then replaces.
  const double d = std::exp(dot + std::log(sm.diam_mean) + sm.ymean);
  return std::isnan(d) ? sm.diam_mean : std::max(5.0, d);
}

double median_diameter(const dynamics::Labels& masks) {
  std::map<std::uint32_t, std::int64_t> counts;
  for (const std::uint32_t v : masks.data) ++counts[v];
  if (counts.size() < 2) return 0.0;  // numpy's median of nothing is NaN, which Cellpose makes 0
  std::vector<double> roots;
  roots.reserve(counts.size() - 1);
  for (auto it = std::next(counts.begin()); it != counts.end(); ++it) {
    roots.push_back(std::sqrt(static_cast<double>(it->second)));
  }
  std::sort(roots.begin(), roots.end());
  const std::size_t n = roots.size();
  const double median = n % 2 == 1 ? roots[n / 2] : (roots[n / 2 - 1] + roots[n / 2]) / 2.0;
  return median / (std::sqrt(std::numbers::pi) / 2.0);
}

dynamics::Labels resize_labels_nearest(const dynamics::Labels& labels, int height, int width) {
  if (height < 1 || width < 1 || labels.height < 1 || labels.width < 1) {
    throw Error(Errc::invalid_argument, "cannot resize labels to or from an empty image");
  }
  // OpenCV's resizeNN: ifx = 1 / (dst / src), sx = floor(x * ifx), clamped.
  const auto offsets = [](int src, int dst) {
    const double inv = 1.0 / (static_cast<double>(dst) / static_cast<double>(src));
    std::vector<std::size_t> o(static_cast<std::size_t>(dst));
    for (int d = 0; d < dst; ++d) {
      o[static_cast<std::size_t>(d)] =
          static_cast<std::size_t>(std::min(static_cast<int>(std::floor(d * inv)), src - 1));
    }
    return o;
  };
  const std::vector<std::size_t> ys = offsets(labels.height, height);
  const std::vector<std::size_t> xs = offsets(labels.width, width);
  dynamics::Labels out;
  out.height = height;
  out.width = width;
  out.data.resize(static_cast<std::size_t>(height) * static_cast<std::size_t>(width));
  for (int y = 0; y < height; ++y) {
    const std::uint32_t* src =
        labels.data.data() + ys[static_cast<std::size_t>(y)] * static_cast<std::size_t>(labels.width);
    std::uint32_t* dst = out.data.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(width);
    for (int x = 0; x < width; ++x) dst[x] = src[xs[static_cast<std::size_t>(x)]];
  }
  out.count = labels.count;  // an upper bound until renumbered
  return out;
}

namespace {

// CellposeModel.eval(compute_masks=True, resample=False, interp=False) as
// SizeModel.eval calls it: Cellpose's default thresholds, niter 200, flows
// at the rescaled size, masks back at the image's size.
dynamics::Labels masks_without_resample(const at::Tensor& flows_device, int height, int width) {
  const at::Tensor flows = flows_device.to(torch::kCPU).contiguous();
  const auto h = static_cast<int>(flows.size(1));
  const auto w = static_cast<int>(flows.size(2));
  const std::size_t plane = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  const float* p = flows.data_ptr<float>();
  const dynamics::Flows f{{p, plane}, {p + plane, plane}, {p + 2 * plane, plane}, h, w};
  const dynamics::Params params;  // SizeModel passes none of the user's
  std::vector<std::int64_t> pixels;
  for (std::size_t i = 0; i < plane; ++i) {
    if (f.cellprob[i] > params.cellprob_threshold) pixels.push_back(static_cast<std::int64_t>(i));
  }
  dynamics::Labels masks;
  if (pixels.empty()) {
    masks.height = h;
    masks.width = w;
    masks.data.assign(plane, 0);
  } else {
    const dynamics::Positions end = dynamics::follow_flows_nearest(f, pixels, params.cellprob_threshold, 200);
    masks = dynamics::masks_from_positions(end, pixels, h, w, params.max_size_fraction);
    if (masks.count > 0) dynamics::remove_bad_flow_masks(masks, f, params.flow_threshold);
  }
  // resize_and_compute_masks: resize first, then min_size and hole filling.
  if (h != height || w != width) masks = resize_labels_nearest(masks, height, width);
  dynamics::fill_holes_and_remove_small_masks(masks, params.min_size);
  return masks;
}

}  // namespace

DiameterEstimate estimate_diameter(const Model& model, const at::Tensor& x, const NetworkOptions& base) {
  const ModelInfo& info = model.info();
  if (!info.size_model) {
    throw Error(Errc::invalid_argument, "the model '" + model.source() + "' has no size model to estimate diameters");
  }
  const SizeModel& sm = *info.size_model;
  DiameterEstimate est;

  // Styles as CellposeModel.eval computes them without a diameter.
  NetworkOptions first = base;
  first.rescale = static_cast<float>(info.diam_mean) / static_cast<float>(info.diam_labels);
  first.rescale_float64 = false;
  first.resample = false;  // only the style is used
  const at::Tensor style = run_network(model, x, first).style.to(torch::kCPU).contiguous();
  est.style_diameter = style_diameter(sm, {style.data_ptr<float>(), static_cast<std::size_t>(style.numel())});

  NetworkOptions second = base;
  second.rescale = sm.diam_mean / est.style_diameter;  // float64, as numpy divides
  second.rescale_float64 = true;
  second.resample = false;
  const NetworkResult out = run_network(model, x, second);
  const double d =
      median_diameter(masks_without_resample(out.flows, static_cast<int>(x.size(1)), static_cast<int>(x.size(2))));
  est.diameter = d == 0.0 || std::isnan(d) ? sm.diam_mean : d;
  return est;
}

}  // namespace cpipc::model
