// A published frame as a LibTorch tensor, and as DLPack, without a copy:
// for consumers that hand masks to LibTorch or to any DLPack importer
// (CuPy, JAX, numpy via from_dlpack in an embedding). The tensor's storage
// is the segment's mapping itself, held by a lease for as long as the tensor
// (or a DLPack capsule of it) lives.
#pragma once

#include <ATen/ATen.h>
#include <ATen/dlpack.h>

#include <chrono>
#include <memory>
#include <optional>

#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/ipc/reader.hpp"

namespace cpipc::model {

// The LibTorch dtype of a segment dtype. Throws Error(invalid_argument) for
// one LibTorch has no type for (none today: every segment dtype maps).
[[nodiscard]] at::ScalarType scalar_type(ipc::DType dtype);

class FrameTensor {
 public:
  // Leases the latest frame of `reader` for `duration` and wraps it.
  // nullopt if nothing was published yet. Throws as lease_latest does.
  static std::optional<FrameTensor> latest(std::shared_ptr<const ipc::SegmentReader> reader,
                                           std::chrono::milliseconds duration = std::chrono::seconds(2));
  // The latest frame's device view (CUDA IPC, no copy) as a CUDA tensor on
  // device->device(), ordered after the producer's write on `stream` (a
  // cudaStream_t; nullptr, the legacy default stream, is what LibTorch uses
  // unless told otherwise). nullopt if there is no frame with a device view.
  // The tensor keeps the lease and the DeviceReader (its open handles) alive.
  static std::optional<FrameTensor> latest_on_device(std::shared_ptr<cuda::DeviceReader> device,
                                                     cuda::StreamView stream = {},
                                                     std::chrono::milliseconds duration = std::chrono::seconds(2));

  // The frame, in the segment's mapping (CPU) or the slot's device buffer
  // (CUDA): read it, never write it (other consumers see the same bytes). Keeps the lease and the
  // mapping alive, also after this FrameTensor is gone.
  [[nodiscard]] const at::Tensor& tensor() const noexcept { return tensor_; }
  [[nodiscard]] const ipc::FrameInfo& info() const noexcept;
  // True while the producer has not taken the slot back. The producer never
  // waits for a lease: check this after reading, like a seqlock, or renew
  // the lease before it runs out.
  [[nodiscard]] bool valid() const noexcept;
  void renew(std::chrono::milliseconds duration) noexcept;

  // A DLPack capsule of the same memory; its deleter (the importer calls
  // it) drops this reference to the lease.
  [[nodiscard]] DLManagedTensor* to_dlpack() const;

 private:
  FrameTensor(std::shared_ptr<ipc::FrameLease> lease, at::Tensor tensor)
      : lease_(std::move(lease)), tensor_(std::move(tensor)) {}

  std::shared_ptr<ipc::FrameLease> lease_;
  at::Tensor tensor_;
};

}  // namespace cpipc::model
