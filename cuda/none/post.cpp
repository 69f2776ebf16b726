// The measurements' CUDA backend in a build without the CUDA toolkit: the
// same functions, each saying there is no GPU path, so callers need no #if.
#include "cpipc/cuda/post.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cuda {

namespace {
[[noreturn]] void no_cuda() {
  throw Error(Errc::invalid_argument, "this cpipc was built without CUDA; use --device cpu");
}
}  // namespace

std::vector<post::ObjectStats> object_stats(const void*, ipc::DType, int, int, const float*, int, StreamView) {
  no_cuda();
}

std::vector<post::ObjectStats> object_stats_of_device_labels(const void*, ipc::DType, int, int, const float*, int,
                                                             StreamView) {
  no_cuda();
}

std::vector<post::ObjectStats> object_stats_from_host(const std::uint32_t*, int, int, const float*, int, int) {
  no_cuda();
}

std::vector<std::uint8_t> outline_mask(const void*, ipc::DType, int, int, StreamView) { no_cuda(); }

std::vector<std::uint8_t> outline_mask_from_host(const std::uint32_t*, int, int, int) { no_cuda(); }

}  // namespace cpipc::cuda
