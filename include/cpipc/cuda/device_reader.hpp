// A consumer's device views of a segment that exports them (export kind
// cuda_ipc, module `cuda` DeviceStream on the producer's side): each slot's
// handle is opened once per process (cudaIpcMemLazyEnablePeerAccess) and
// cached, and each frame is ordered after the producer's write with
// cudaStreamWaitEvent on the consumer's stream. Handles are closed when the
// DeviceReader goes. No CUDA types in this header: streams are void*.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "cpipc/cuda/stream_view.hpp"
#include "cpipc/ipc/reader.hpp"

namespace cpipc::cuda {

// One frame's device view, held in place by a lease on its slot (the
// producer writes other slots while it lives, as for host leases).
class DeviceLease {
 public:
  // desc().nbytes() bytes on device(): read them on the stream given to
  // lease_latest (or after synchronising with it), never write them.
  [[nodiscard]] const void* data() const noexcept { return data_; }
  [[nodiscard]] const ipc::TensorDesc& desc() const noexcept { return lease_.view().desc; }
  [[nodiscard]] const ipc::FrameInfo& info() const noexcept { return lease_.info(); }
  // The host view of the same frame (the producer's mirror).
  [[nodiscard]] const ipc::HostView& host() const noexcept { return lease_.view(); }
  // True while the producer has not taken the slot back: check after use.
  [[nodiscard]] bool valid() const noexcept { return lease_.valid(); }
  // The host lease that holds the slot (renew it to hold the slot longer).
  [[nodiscard]] ipc::FrameLease& host_lease() noexcept { return lease_; }
  // Copies the device bytes to the host, on `stream`, and waits for them.
  [[nodiscard]] std::vector<std::byte> download(StreamView stream) const;
  // Orders `stream` after the producer's write too (cudaStreamWaitEvent on
  // the slot's event, which the producer does not record again while the
  // lease holds the slot): for a second consumer stream, e.g. DLPack's.
  void order_on(StreamView stream) const;

 private:
  friend class DeviceReader;
  DeviceLease(ipc::FrameLease lease, const void* data, void* event)
      : lease_(std::move(lease)), data_(data), event_(event) {}
  ipc::FrameLease lease_;
  const void* data_;
  void* event_;  // the slot's imported cudaEvent_t, owned by the DeviceReader
};

class DeviceReader {
 public:
  // Checks that the segment exports device views and that a device visible
  // here has the producer's device UUID, and makes it current. Throws
  // Error(invalid_argument) when the segment is host-only, Error(not_found)
  // when its device is not visible to this process.
  explicit DeviceReader(std::shared_ptr<const ipc::SegmentReader> reader);
  DeviceReader(const DeviceReader&) = delete;
  DeviceReader& operator=(const DeviceReader&) = delete;
  ~DeviceReader();  // closes every handle it opened

  // Leases the latest frame and returns its device view, ordered on
  // `stream` (a cudaStream_t; nullptr: the default stream) after the
  // producer's write. nullopt if nothing was published or the latest frame
  // has no device copy. Opens the slot's handles on first use only. Throws
  // Error(producer_gone) when the producer ended, Error(system) for CUDA.
  [[nodiscard]] std::optional<DeviceLease> lease_latest(
      StreamView stream, std::chrono::milliseconds duration = std::chrono::milliseconds(2000));

  [[nodiscard]] int device() const noexcept { return device_; }
  // cudaIpcOpenMemHandle calls so far (one per slot at most).
  [[nodiscard]] int handles_opened() const noexcept { return opened_; }
  [[nodiscard]] const ipc::SegmentReader& segment() const noexcept { return *reader_; }

 private:
  struct Slot {
    void* base = nullptr;  // the imported allocation
    void* event = nullptr;
  };
  std::shared_ptr<const ipc::SegmentReader> reader_;
  int device_ = -1;
  std::vector<Slot> slots_;
  int opened_ = 0;
};

}  // namespace cpipc::cuda
