// The CUDA module of a build without the CUDA toolkit: no devices.
#include "cpipc/cuda/device.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cuda {

bool built_with_cuda() noexcept { return false; }

int device_count(std::string* why) noexcept {
  if (why) *why = "this cpipc was built without CUDA";
  return 0;
}

std::optional<DeviceInfo> device_info(int) noexcept { return std::nullopt; }

std::optional<std::size_t> free_memory(int) noexcept { return std::nullopt; }

void synchronize(int, const std::string& what) {
  throw Error(Errc::system, what + " asked for a CUDA device, but this cpipc was built without CUDA");
}

std::vector<std::uint32_t> run_probe_kernel(std::size_t, std::uint32_t, std::uint32_t) {
  throw Error(Errc::system, "this cpipc was built without CUDA");
}

}  // namespace cpipc::cuda
