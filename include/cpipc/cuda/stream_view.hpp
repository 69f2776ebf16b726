// A non-owning, typed handle to a CUDA stream (RMM's cuda_stream_view):
// what every cpipc function that queues GPU work takes, instead of a void*
// that any pointer converts to. No CUDA headers needed: cudaStream_t is
// CUstream_st*, declared here as CUDA declares it.
#pragma once

#include <cstddef>

struct CUstream_st;

namespace cpipc::cuda {

class StreamView {
 public:
  // The default (legacy) stream.
  constexpr StreamView() noexcept = default;
  constexpr StreamView(std::nullptr_t) noexcept {}  // NOLINT: nullptr is the default stream
  // A cudaStream_t converts implicitly; a void* does not.
  constexpr StreamView(CUstream_st* stream) noexcept : stream_(stream) {}  // NOLINT
  // A stream handed over as an untyped handle (LibTorch's native_handle()).
  [[nodiscard]] static StreamView from_native(void* handle) noexcept {
    return StreamView(static_cast<CUstream_st*>(handle));
  }

  [[nodiscard]] constexpr CUstream_st* value() const noexcept { return stream_; }
  [[nodiscard]] constexpr bool is_default() const noexcept { return stream_ == nullptr; }

 private:
  CUstream_st* stream_ = nullptr;
};

}  // namespace cpipc::cuda
