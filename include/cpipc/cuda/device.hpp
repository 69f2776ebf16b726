// What CUDA devices this process can use. Compiled by nvcc when the CUDA
// toolkit is there, and as a no-device fallback otherwise, so callers need
// no #ifdefs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cpipc::cuda {

struct DeviceInfo {
  int ordinal = -1;
  std::string name;
  std::array<std::uint8_t, 16> uuid{};
  std::size_t total_memory = 0;
  int cc_major = 0;
  int cc_minor = 0;
};

// True if this build has the CUDA module.
[[nodiscard]] bool built_with_cuda() noexcept;

// Number of usable devices; 0 with `why` set (no driver, no device, or a
// build without CUDA). Never throws.
[[nodiscard]] int device_count(std::string* why = nullptr) noexcept;

// Properties of device `ordinal`, nullopt if there is no such device.
[[nodiscard]] std::optional<DeviceInfo> device_info(int ordinal) noexcept;

// Free memory of device `ordinal` in bytes, nullopt if it cannot be asked
// (no such device, no CUDA). The calling thread keeps its current device.
[[nodiscard]] std::optional<std::size_t> free_memory(int ordinal) noexcept;

// Waits for all work queued on device `ordinal` (LibTorch's streams
// included) before another stream reads its results. Throws
// Error(out_of_memory) or Error(system) naming `what` and the CUDA error.
void synchronize(int ordinal, const std::string& what);

// "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi prints it.
[[nodiscard]] std::string uuid_string(const std::array<std::uint8_t, 16>& uuid);

// Fills `n` uint32 values with i * mul + add in a kernel on device 0 and
// copies them back: proves compile, launch and copy end to end. Throws
// Error(system) naming the failing CUDA call.
[[nodiscard]] std::vector<std::uint32_t> run_probe_kernel(std::size_t n, std::uint32_t mul, std::uint32_t add);

}  // namespace cpipc::cuda
