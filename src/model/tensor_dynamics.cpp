#include "cpipc/model/tensor_dynamics.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpipc/error.hpp"

#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "cpipc/dynamics/cuda.hpp"
#include "cpipc/dynamics/stitch.hpp"

namespace cpipc::model {

TensorLabels masks_from_flows(const at::Tensor& flows_in, const dynamics::Params& params) {
  if (flows_in.dim() != 3 || flows_in.size(0) != 3 || flows_in.scalar_type() != at::kFloat) {
    throw Error(Errc::invalid_argument, "flows must be float32 [3, H, W] (dY, dX, cellprob)");
  }
  if (flows_in.size(1) > 1'000'000 || flows_in.size(2) > 1'000'000) {
    throw Error(Errc::invalid_argument, "flows larger than 1e6 pixels per side");
  }
  const at::Tensor flows = flows_in.contiguous();
  const auto h = static_cast<int>(flows.size(1));
  const auto w = static_cast<int>(flows.size(2));
  const std::size_t plane = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  const float* p = flows.data_ptr<float>();
  TensorLabels out;
  if (flows.is_cuda()) {
    // LibTorch's current stream on the flows' device, through c10's
    // device-generic interface: no CUDA headers here, and a build without
    // the CUDA dynamics gets their backend's one-line refusal.
    const c10::DeviceGuard guard(flows.device());
    out.labels = torch::empty({h, w}, flows.options().dtype(torch::kInt32));
    const auto stream = cuda::StreamView::from_native(
        c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(flows.device()).native_handle());
    out.count = dynamics::gpu::masks_from_flows({p, p + plane, p + 2 * plane, h, w},
                                                reinterpret_cast<std::uint32_t*>(out.labels.data_ptr<std::int32_t>()),
                                                params, stream);
    return out;
  }
  const dynamics::Labels labels =
      dynamics::masks_from_flows({{p, plane}, {p + plane, plane}, {p + 2 * plane, plane}, h, w}, params);
  out.labels = torch::empty({h, w}, torch::TensorOptions().dtype(torch::kInt32));
  std::memcpy(out.labels.data_ptr<std::int32_t>(), labels.data.data(), plane * sizeof(std::int32_t));
  out.count = labels.count;
  return out;
}

namespace {

// cv2.resize's INTER_NEAREST source index for each of `out` destination
// pixels: floor(d * in / out) in double, clamped.
at::Tensor nearest_indices(std::int64_t in, std::int64_t out) {
  const double scale = 1.0 / (static_cast<double>(out) / static_cast<double>(in));
  std::vector<std::int64_t> idx(static_cast<std::size_t>(out));
  for (std::int64_t d = 0; d < out; ++d) {
    idx[static_cast<std::size_t>(d)] = std::min(static_cast<std::int64_t>(std::floor(d * scale)), in - 1);
  }
  return torch::tensor(idx, torch::TensorOptions().dtype(torch::kLong));
}

}  // namespace

TensorLabels resized_masks_from_flows(const at::Tensor& flows, const dynamics::Params& params, std::int64_t height,
                                      std::int64_t width) {
  dynamics::Params at_network = params;
  at_network.min_size = 0;  // Cellpose removes small masks only after the resize
  const TensorLabels small = masks_from_flows(flows, at_network);
  const at::Tensor l = small.labels.to(torch::kCPU);
  const at::Tensor resized =
      l.index_select(0, nearest_indices(l.size(0), height)).index_select(1, nearest_indices(l.size(1), width));
  dynamics::Labels host;
  host.height = static_cast<int>(height);
  host.width = static_cast<int>(width);
  host.count = small.count;
  host.data.resize(static_cast<std::size_t>(height * width));
  std::memcpy(host.data.data(), resized.contiguous().data_ptr<std::int32_t>(), host.data.size() * sizeof(std::int32_t));
  dynamics::fill_holes_and_remove_small_masks(host, params.min_size);
  TensorLabels out;
  out.labels = torch::empty({height, width}, torch::TensorOptions().dtype(torch::kInt32));
  std::memcpy(out.labels.data_ptr<std::int32_t>(), host.data.data(), host.data.size() * sizeof(std::int32_t));
  out.labels = out.labels.to(flows.device());
  out.count = host.count;
  return out;
}

TensorLabels masks_from_flows_3d(const at::Tensor& flows_in, const dynamics::Params& params) {
  if (flows_in.dim() != 4 || flows_in.size(0) != 4 || flows_in.scalar_type() != at::kFloat) {
    throw Error(Errc::invalid_argument, "3-D flows must be float32 [4, Z, Y, X] (dZ, dY, dX, cellprob)");
  }
  if (flows_in.size(1) > 100'000 || flows_in.size(2) > 1'000'000 || flows_in.size(3) > 1'000'000) {
    throw Error(Errc::invalid_argument, "3-D flows larger than 1e5 planes or 1e6 pixels per side");
  }
  const at::Tensor flows = flows_in.contiguous();
  const auto d = static_cast<int>(flows.size(1));
  const auto h = static_cast<int>(flows.size(2));
  const auto w = static_cast<int>(flows.size(3));
  const std::size_t n = static_cast<std::size_t>(d) * static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  const float* p = flows.data_ptr<float>();
  TensorLabels out;
  if (flows.is_cuda()) {
    const c10::DeviceGuard guard(flows.device());
    out.labels = torch::empty({d, h, w}, flows.options().dtype(torch::kInt32));
    const auto stream = cuda::StreamView::from_native(
        c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(flows.device()).native_handle());
    out.count = dynamics::gpu::masks_from_flows_3d(
        {p, p + n, p + 2 * n, p + 3 * n, d, h, w},
        reinterpret_cast<std::uint32_t*>(out.labels.data_ptr<std::int32_t>()), params, stream);
    return out;
  }
  const dynamics::Labels3D labels =
      dynamics::masks_from_flows_3d({{p, n}, {p + n, n}, {p + 2 * n, n}, {p + 3 * n, n}, d, h, w}, params);
  out.labels = torch::empty({d, h, w}, torch::TensorOptions().dtype(torch::kInt32));
  std::memcpy(out.labels.data_ptr<std::int32_t>(), labels.data.data(), n * sizeof(std::int32_t));
  out.count = labels.count;
  return out;
}

TensorLabels resized_masks_from_flows_3d(const at::Tensor& flows, const dynamics::Params& params, std::int64_t depth,
                                         std::int64_t height, std::int64_t width) {
  dynamics::Params at_network = params;
  at_network.min_size = 0;  // Cellpose removes small masks only after the resize
  const TensorLabels small = masks_from_flows_3d(flows, at_network);
  const at::Tensor l = small.labels.to(torch::kCPU);
  const at::Tensor resized = l.index_select(0, nearest_indices(l.size(0), depth))
                                 .index_select(1, nearest_indices(l.size(1), height))
                                 .index_select(2, nearest_indices(l.size(2), width))
                                 .contiguous();
  std::vector<std::uint32_t> host(static_cast<std::size_t>(resized.numel()));
  std::memcpy(host.data(), resized.data_ptr<std::int32_t>(), host.size() * sizeof(std::int32_t));
  TensorLabels out;
  out.count = dynamics::fill_holes_and_remove_small_masks_3d(host, static_cast<int>(depth), static_cast<int>(height),
                                                             static_cast<int>(width), params.min_size);
  out.labels = torch::empty({depth, height, width}, torch::TensorOptions().dtype(torch::kInt32));
  std::memcpy(out.labels.data_ptr<std::int32_t>(), host.data(), host.size() * sizeof(std::int32_t));
  out.labels = out.labels.to(flows.device());
  return out;
}

void remove_edge_masks(TensorLabels& t) {
  if (t.count == 0 || t.labels.numel() == 0) return;
  const at::Tensor l = t.labels.to(torch::kLong);
  std::vector<at::Tensor> faces;
  for (std::int64_t dim = 0; dim < l.dim(); ++dim) {
    faces.push_back(l.select(dim, 0).flatten());
    faces.push_back(l.select(dim, l.size(dim) - 1).flatten());
  }
  const at::Tensor border = torch::cat(faces);
  // Labels that are there (np.unique sees no others) and not on the border.
  at::Tensor keep = torch::bincount(l.flatten(), {}, static_cast<std::int64_t>(t.count) + 1) > 0;
  keep.index_fill_(0, border, false);
  keep.narrow(0, 0, 1).fill_(false);
  // np.unique's renumbering: each kept label becomes its rank among the kept.
  const at::Tensor ids = keep.to(torch::kInt32).cumsum(0, torch::kInt32) * keep;
  t.labels = ids.index_select(0, l.flatten()).view(l.sizes()).contiguous();
  t.count = static_cast<std::uint32_t>(keep.sum().item<std::int64_t>());
}

}  // namespace cpipc::model
