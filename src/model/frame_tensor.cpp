#include "cpipc/model/frame_tensor.hpp"

#include <ATen/DLConvertor.h>

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

std::optional<FrameTensor> FrameTensor::latest(std::shared_ptr<const ipc::SegmentReader> reader,
                                               std::chrono::milliseconds duration) {
  if (!reader) throw Error(Errc::invalid_argument, "FrameTensor::latest: no reader");
  std::optional<ipc::FrameLease> lease = reader->lease_latest(duration);
  if (!lease) return std::nullopt;
  // The lease points into the reader's mapping: the tensor's deleter owns
  // both, the reader outliving the lease (members die in reverse order).
  struct Hold {
    std::shared_ptr<const ipc::SegmentReader> reader;
    std::shared_ptr<ipc::FrameLease> lease;
  };
  auto held = std::make_shared<ipc::FrameLease>(std::move(*lease));
  const ipc::HostView& v = held->view();
  const auto options = at::TensorOptions().dtype(scalar_type(v.desc.dtype)).device(at::kCPU);
  const std::vector<std::int64_t> sizes(v.desc.shape.begin(), v.desc.shape.begin() + v.desc.ndim);
  const std::vector<std::int64_t> strides(v.desc.strides.begin(), v.desc.strides.begin() + v.desc.ndim);
  auto hold = std::make_unique<Hold>(Hold{std::move(reader), held});
  Hold* const raw = hold.get();
  at::Tensor t = at::from_blob(
      const_cast<std::byte*>(v.data), sizes, strides, [raw](void*) { delete raw; }, options);
  (void)hold.release();  // the tensor's storage owns it now
  return FrameTensor(std::move(held), std::move(t));
}

std::optional<FrameTensor> FrameTensor::latest_on_device(std::shared_ptr<cuda::DeviceReader> device, void* stream,
                                                         std::chrono::milliseconds duration) {
  if (!device) throw Error(Errc::invalid_argument, "FrameTensor::latest_on_device: no device reader");
  std::optional<cuda::DeviceLease> lease = device->lease_latest(stream, duration);
  if (!lease) return std::nullopt;
  auto held = std::make_shared<cuda::DeviceLease>(std::move(*lease));
  const ipc::TensorDesc& d = held->desc();
  const auto options = at::TensorOptions()
                           .dtype(scalar_type(d.dtype))
                           .device(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device->device())));
  const std::vector<std::int64_t> sizes(d.shape.begin(), d.shape.begin() + d.ndim);
  const std::vector<std::int64_t> strides(d.strides.begin(), d.strides.begin() + d.ndim);
  struct Hold {
    std::shared_ptr<cuda::DeviceReader> device;  // its handles must outlive the lease's pointer
    std::shared_ptr<cuda::DeviceLease> lease;
  };
  auto hold = std::make_unique<Hold>(Hold{std::move(device), held});
  Hold* const raw = hold.get();
  at::Tensor t = at::from_blob(
      const_cast<void*>(held->data()), sizes, strides, [raw](void*) { delete raw; }, options);
  (void)hold.release();
  // The host lease inside the device lease: valid(), renew() and info() as for host frames.
  std::shared_ptr<ipc::FrameLease> host(held, &held->host_lease());
  return FrameTensor(std::move(host), std::move(t));
}

const ipc::FrameInfo& FrameTensor::info() const noexcept { return lease_->info(); }
bool FrameTensor::valid() const noexcept { return lease_->valid(); }
void FrameTensor::renew(std::chrono::milliseconds duration) noexcept { lease_->renew(duration); }

DLManagedTensor* FrameTensor::to_dlpack() const { return at::toDLPack(tensor_); }

}  // namespace cpipc::model
