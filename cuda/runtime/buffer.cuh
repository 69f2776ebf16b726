// A move-only owner of a device allocation. Two kinds, as RMM's
// device_buffer: DeviceBuffer(n) is a plain cudaMalloc (what CUDA IPC can
// export: the segment's slot buffers); DeviceBuffer(n, stream) is ordered
// on `stream` (cudaMallocAsync from the device's pool, freed with
// cudaFreeAsync on the same stream), so per-image scratch buffers cost no
// device-wide synchronisation. Use a stream-ordered buffer on its stream
// only. Where the device has no memory pools, it falls back to cudaMalloc.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "check.cuh"

namespace cpipc::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : size_(n) {
    if (n) CPIPC_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
  }
  DeviceBuffer(std::size_t n, cudaStream_t stream) : size_(n), stream_(stream), ordered_(true) {
    if (!n) return;
    const cudaError_t st = cudaMallocAsync(reinterpret_cast<void**>(&ptr_), n * sizeof(T), stream);
    if (st == cudaErrorNotSupported) {  // no memory pools here (some vGPU, MIG and driver set-ups)
      (void)cudaGetLastError();
      ordered_ = false;
      CPIPC_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
    } else {
      CPIPC_CUDA_TRY(st);
    }
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        stream_(o.stream_),
        ordered_(o.ordered_) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
      stream_ = o.stream_;
      ordered_ = o.ordered_;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  [[nodiscard]] T* get() const noexcept { return ptr_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  void reset() noexcept {
    if (ptr_) (void)(ordered_ ? cudaFreeAsync(ptr_, stream_) : cudaFree(ptr_));
    ptr_ = nullptr;
    size_ = 0;
  }
  void zero(cudaStream_t s) const {
    if (size_) CPIPC_CUDA_TRY(cudaMemsetAsync(ptr_, 0, size_ * sizeof(T), s));
  }
  void fill_bytes(int value, cudaStream_t s) const {
    if (size_) CPIPC_CUDA_TRY(cudaMemsetAsync(ptr_, value, size_ * sizeof(T), s));
  }
  [[nodiscard]] std::vector<T> download(cudaStream_t s, std::size_t n = static_cast<std::size_t>(-1)) const {
    std::vector<T> out(std::min(n, size_));
    if (!out.empty()) {
      CPIPC_CUDA_TRY(cudaMemcpyAsync(out.data(), ptr_, out.size() * sizeof(T), cudaMemcpyDeviceToHost, s));
      CPIPC_CUDA_TRY(cudaStreamSynchronize(s));
    }
    return out;
  }
  void upload(const std::vector<T>& v, cudaStream_t s) const {
    if (!v.empty()) CPIPC_CUDA_TRY(cudaMemcpyAsync(ptr_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, s));
  }

 private:
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
  cudaStream_t stream_ = nullptr;  // the stream it is ordered on
  bool ordered_ = false;           // cudaMallocAsync'ed: freed on stream_
};

}  // namespace cpipc::cuda
