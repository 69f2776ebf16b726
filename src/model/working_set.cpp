#include "working_set.hpp"

#include <optional>

#include "cpipc/cuda/device.hpp"
#include "cpipc/error.hpp"
#include "cpipc/util/memory.hpp"

namespace cpipc::model::detail {

void check_working_set(double pixels, double scaled, int channels, const Device& device, const std::string& what) {
  const double host = pixels * (8.0 * channels + 64.0) + (device.cuda ? 0.0 : scaled * (8.0 * channels + 32.0));
  const std::uint64_t available = util::available_memory();
  if (available > 0 && host > 0.9 * static_cast<double>(available)) {
    throw Error(Errc::out_of_memory, what + " needs about " + util::gib_string(host) +
                                         " of memory to segment, more than the " +
                                         util::gib_string(static_cast<double>(available)) +
                                         " available; crop or tile it, or segment at a larger --diameter");
  }
  if (device.cuda) {
    if (const std::optional<std::size_t> free_bytes = cuda::free_memory(device.index)) {
      const double dev = scaled * (8.0 * channels + 32.0) + pixels * 48.0;
      if (dev > 0.9 * static_cast<double>(*free_bytes)) {
        throw Error(Errc::out_of_memory, what + " needs about " + util::gib_string(dev) +
                                             " of GPU memory, more than the " +
                                             util::gib_string(static_cast<double>(*free_bytes)) + " free on " +
                                             device.to_string() + "; crop or tile it, or use --device cpu");
      }
    }
  }
}

}  // namespace cpipc::model::detail
