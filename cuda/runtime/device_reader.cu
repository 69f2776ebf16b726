#include <cuda_runtime_api.h>

#include <cstring>

#include "check.cuh"
#include "cpipc/cuda/device.hpp"
#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cuda {

DeviceReader::DeviceReader(std::shared_ptr<const ipc::SegmentReader> reader) : reader_(std::move(reader)) {
  if (!reader_) throw Error(Errc::invalid_argument, "DeviceReader: no segment reader");
  const ipc::SegmentLayout& layout = reader_->layout();
  const std::string& name = reader_->name();
  if (layout.export_kind != ipc::format::ExportKind::cuda_ipc) {
    throw Error(
        Errc::invalid_argument,
        "segment '" + name + "' has host views only (its producer exported no device buffers); use its host view");
  }
  std::string why;
  const int n = device_count(&why);
  for (int i = 0; i < n && device_ < 0; ++i) {
    if (const auto d = device_info(i); d && d->uuid == layout.device_uuid) device_ = i;
  }
  if (device_ < 0) {
    throw Error(Errc::not_found, "segment '" + name + "' lives on GPU " + uuid_string(layout.device_uuid) +
                                     ", which this process cannot see" + (why.empty() ? "" : " (" + why + ")") +
                                     "; check CUDA_VISIBLE_DEVICES, or use its host view");
  }
  CPIPC_CUDA_TRY(cudaSetDevice(device_));
  slots_.resize(layout.slot_count);
}

DeviceReader::~DeviceReader() {
  if (device_ < 0) return;
  cudaSetDevice(device_);
  for (Slot& s : slots_) {
    if (s.event) cudaEventDestroy(static_cast<cudaEvent_t>(s.event));
    if (s.base) cudaIpcCloseMemHandle(s.base);
  }
}

std::optional<DeviceLease> DeviceReader::lease_latest(StreamView stream, std::chrono::milliseconds duration) {
  reader_->check_producer();
  std::optional<ipc::FrameLease> lease = reader_->lease_latest(duration);
  if (!lease || !lease->info().device_valid) return std::nullopt;
  const std::uint32_t slot = lease->info().slot;
  const std::optional<ipc::SlotExport> x = reader_->slot_export(slot);
  if (!x) return std::nullopt;
  CPIPC_CUDA_TRY(cudaSetDevice(device_));
  Slot& s = slots_.at(slot);
  if (!s.base) {  // once per slot per process, never per frame
    cudaIpcMemHandle_t mh{};
    cudaIpcEventHandle_t eh{};
    std::memcpy(&mh, x->mem_handle.data(), sizeof mh);
    std::memcpy(&eh, x->event_handle.data(), sizeof eh);
    void* base = nullptr;
    CPIPC_CUDA_TRY(cudaIpcOpenMemHandle(&base, mh, cudaIpcMemLazyEnablePeerAccess));
    cudaEvent_t event = nullptr;
    const cudaError_t st = cudaIpcOpenEventHandle(&event, eh);
    if (st != cudaSuccess) {
      cudaIpcCloseMemHandle(base);
      CPIPC_CUDA_TRY(st);
    }
    s.base = base;
    s.event = event;
    ++opened_;
  }
  CPIPC_CUDA_TRY(cudaStreamWaitEvent(stream.value(), static_cast<cudaEvent_t>(s.event), 0));
  const void* data = static_cast<const std::byte*>(s.base) + x->device_offset;
  return DeviceLease(std::move(*lease), data, s.event);
}

std::vector<std::byte> DeviceLease::download(StreamView stream) const {
  std::vector<std::byte> out(desc().nbytes());
  const cudaStream_t s = stream.value();
  if (!out.empty()) CPIPC_CUDA_TRY(cudaMemcpyAsync(out.data(), data_, out.size(), cudaMemcpyDeviceToHost, s));
  CPIPC_CUDA_TRY(cudaStreamSynchronize(s));
  return out;
}

void DeviceLease::order_on(StreamView stream) const {
  CPIPC_CUDA_TRY(cudaStreamWaitEvent(stream.value(), static_cast<cudaEvent_t>(event_), 0));
}

}  // namespace cpipc::cuda
