#include "cpipc/model/frame_tensor.hpp"

#include <ATen/DLConvertor.h>

#include <utility>
#include <vector>

#include "cpipc/error.hpp"

namespace cpipc::model {

at::ScalarType scalar_type(ipc::DType d) {
  using ipc::DTypeCode;
  if (d.lanes == 1) {
    switch (d.code) {
      case DTypeCode::uint:
        if (d.bits == 8) return at::kByte;
        if (d.bits == 16) return at::kUInt16;
        if (d.bits == 32) return at::kUInt32;
        if (d.bits == 64) return at::kUInt64;
        break;
      case DTypeCode::int_:
        if (d.bits == 8) return at::kChar;
        if (d.bits == 16) return at::kShort;
        if (d.bits == 32) return at::kInt;
        if (d.bits == 64) return at::kLong;
        break;
      case DTypeCode::float_:
        if (d.bits == 16) return at::kHalf;
        if (d.bits == 32) return at::kFloat;
        if (d.bits == 64) return at::kDouble;
        break;
      case DTypeCode::bfloat:
        if (d.bits == 16) return at::kBFloat16;
        break;
      case DTypeCode::bool_:
        if (d.bits == 8) return at::kBool;
        break;
    }
  }
  throw Error(Errc::invalid_argument, "LibTorch has no dtype for " + ipc::to_string(d));
}

namespace {

// `data` (laid out as `d`, on `device`) as a tensor whose storage keeps
// `owners` alive until the last tensor or capsule sharing it is gone.
template <class Owners>
at::Tensor wrap(const void* data, const ipc::TensorDesc& d, at::Device device, Owners owners) {
  const std::vector<std::int64_t> sizes(d.shape.begin(), d.shape.begin() + d.ndim);
  const std::vector<std::int64_t> strides(d.strides.begin(), d.strides.begin() + d.ndim);
  return at::from_blob(
      const_cast<void*>(data), sizes, strides, [owners = std::move(owners)](void*) {},
      at::TensorOptions().dtype(scalar_type(d.dtype)).device(device));
}

}  // namespace

std::optional<FrameTensor> FrameTensor::latest(std::shared_ptr<const ipc::SegmentReader> reader,
                                               std::chrono::milliseconds duration) {
  if (!reader) throw Error(Errc::invalid_argument, "FrameTensor::latest: no reader");
  std::optional<ipc::FrameLease> lease = reader->lease_latest(duration);
  if (!lease) return std::nullopt;
  auto held = std::make_shared<ipc::FrameLease>(std::move(*lease));
  // The lease points into the reader's mapping: the tensor keeps both.
  at::Tensor t = wrap(held->view().data, held->view().desc, at::kCPU, std::make_pair(reader, held));
  return FrameTensor(std::move(held), std::move(t));
}

std::optional<FrameTensor> FrameTensor::latest_on_device(std::shared_ptr<cuda::DeviceReader> device,
                                                         cuda::StreamView stream, std::chrono::milliseconds duration) {
  if (!device) throw Error(Errc::invalid_argument, "FrameTensor::latest_on_device: no device reader");
  std::optional<cuda::DeviceLease> lease = device->lease_latest(stream, duration);
  if (!lease) return std::nullopt;
  auto held = std::make_shared<cuda::DeviceLease>(std::move(*lease));
  // The lease's pointer is into the DeviceReader's open handles: the tensor keeps both.
  const at::Device on(at::kCUDA, static_cast<c10::DeviceIndex>(device->device()));
  at::Tensor t = wrap(held->data(), held->desc(), on, std::make_pair(device, held));
  // The host lease inside the device lease: valid(), renew() and info() as for host frames.
  std::shared_ptr<ipc::FrameLease> host(held, &held->host_lease());
  return FrameTensor(std::move(host), std::move(t));
}

const ipc::FrameInfo& FrameTensor::info() const noexcept { return lease_->info(); }
bool FrameTensor::valid() const noexcept { return lease_->valid(); }
void FrameTensor::renew(std::chrono::milliseconds duration) noexcept { lease_->renew(duration); }

DLManagedTensor* FrameTensor::to_dlpack() const { return at::toDLPack(tensor_); }

}  // namespace cpipc::model
