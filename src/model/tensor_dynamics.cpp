#include "cpipc/model/tensor_dynamics.hpp"

#include <torch/torch.h>

#include <cstring>

#include "cpipc/error.hpp"

#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "cpipc/dynamics/cuda.hpp"

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

}  // namespace cpipc::model
