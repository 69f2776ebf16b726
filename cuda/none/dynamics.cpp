// The dynamics' CUDA backend in a build without the CUDA toolkit: the same
// functions, each saying there is no GPU path, so callers need no #if.
#include "cpipc/dynamics/cuda.hpp"
#include "cpipc/error.hpp"

namespace cpipc::dynamics::gpu {

namespace {
[[noreturn]] void no_cuda() {
  throw Error(Errc::invalid_argument, "this cpipc was built without CUDA; use --device cpu");
}
}  // namespace

std::uint32_t masks_from_flows(const DeviceFlows&, std::uint32_t*, const Params&, cuda::StreamView) { no_cuda(); }

Labels masks_from_flows_via_device(const Flows&, const Params&) { no_cuda(); }

std::uint32_t masks_from_flows_3d(const DeviceFlows3D&, std::uint32_t*, const Params&, cuda::StreamView) { no_cuda(); }

Labels3D masks_from_flows_3d_via_device(const Flows3D&, const Params&) { no_cuda(); }

bool available(std::string* why) noexcept {
  if (why) *why = "this cpipc was built without CUDA";
  return false;
}

}  // namespace cpipc::dynamics::gpu
