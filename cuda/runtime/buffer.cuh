// A move-only owner of a device allocation.
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
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  [[nodiscard]] T* get() const noexcept { return ptr_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  void reset() noexcept {
    if (ptr_) cudaFree(ptr_);
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
};

}  // namespace cpipc::cuda
