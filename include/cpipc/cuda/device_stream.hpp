// The device half of a stream's segments (DESIGN.md "Device export"): each
// ring slot gets its own device buffer (a multiple of 2 MiB, allocated once,
// freed only with its segment), exported once with cudaIpcGetMemHandle, and
// an interprocess event recorded after every write. The slot's host region
// is registered (cudaHostRegister) and filled from the device buffer by DMA;
// the frame is published only once that copy has completed, so host and
// device consumers see the same bytes. Where CUDA IPC is unavailable (WSL2,
// MIG, a driver that refuses) the segments carry host views only and
// why_host_only() says why. No CUDA headers here: streams are StreamViews.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "cpipc/cuda/stream_view.hpp"
#include "cpipc/ipc/writer.hpp"

namespace cpipc::cuda {

// One frame being written into a slot's device buffer.
class DeviceFrame {
 public:
  DeviceFrame(DeviceFrame&&) noexcept = default;
  DeviceFrame& operator=(DeviceFrame&&) = delete;
  DeviceFrame(const DeviceFrame&) = delete;
  ~DeviceFrame() = default;  // unpublished: the slot goes back to the ring

  // desc().nbytes() bytes of device memory: write the frame here, on stream().
  [[nodiscard]] void* device_data() const noexcept { return device_; }
  [[nodiscard]] StreamView stream() const noexcept { return stream_; }
  [[nodiscard]] std::uint32_t slot() const noexcept { return frame_.slot(); }
  // Records the slot's event after the work queued on stream(), mirrors
  // the frame into the host region, waits for that copy, and publishes.
  ipc::FrameInfo publish(const ipc::FrameMeta& meta = {});

 private:
  friend class DeviceStream;
  DeviceFrame(ipc::FrameWriter frame, void* device, void* event, StreamView stream, std::size_t bytes, bool exported);

  ipc::FrameWriter frame_;
  void* device_;
  void* event_;
  StreamView stream_;
  std::size_t bytes_;
  bool exported_;
};

class DeviceStream {
 public:
  // A stream named `name` on device `ordinal`, its segments of `slots` ring
  // slots. Creates its CUDA stream; segments come with the first frame.
  // Throws Error(system) when the device cannot be used.
  DeviceStream(std::string name, std::uint32_t slots, int ordinal);
  DeviceStream(DeviceStream&&) noexcept;
  DeviceStream& operator=(DeviceStream&&) noexcept;
  ~DeviceStream();  // closes (unlinks) the segment, then frees its buffers

  // A frame of `desc` in a free slot (not one of `keep`, as
  // SegmentWriter::begin_frame): (re)creates the segment and its device
  // buffers when the layout changes (old readers see `replaced`).
  [[nodiscard]] DeviceFrame begin(const ipc::TensorDesc& desc, std::span<const std::uint64_t> keep = {});

  // True once a segment exported its device buffers; false with a reason
  // (said once on stderr) when CUDA IPC is unavailable here.
  [[nodiscard]] bool exports() const noexcept;
  [[nodiscard]] const std::string& why_host_only() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] ipc::SegmentWriter* segment() noexcept;
  [[nodiscard]] StreamView stream() const noexcept;
  [[nodiscard]] int device() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cpipc::cuda
