#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "buffer.cuh"
#include "check.cuh"
#include "cpipc/cuda/device.hpp"
#include "cpipc/cuda/device_stream.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cuda {

namespace {

constexpr std::size_t kGranule = std::size_t{2} << 20;  // device buffers are multiples of 2 MiB

cudaEvent_t as_event(void* e) { return static_cast<cudaEvent_t>(e); }

// One segment and the device buffers behind its slots, for one layout.
struct Generation {
  int device = 0;
  std::vector<DeviceBuffer<std::byte>> buffers;
  std::vector<cudaEvent_t> events;
  std::optional<ipc::SegmentWriter> writer;
  void* registered = nullptr;  // the host mapping, while cudaHostRegister'ed

  Generation() = default;
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;
  ~Generation() {
    // Readers learn of the end (and stop waiting on our events) before the
    // memory goes; importers keep their mappings alive on their own.
    if (writer) writer->close(ipc::format::State::replaced);
    cudaSetDevice(device);
    if (registered) cudaHostUnregister(registered);
    for (cudaEvent_t e : events) cudaEventDestroy(e);
    writer.reset();
  }
};

}  // namespace

// --- DeviceFrame --------------------------------------------------------------

DeviceFrame::DeviceFrame(ipc::FrameWriter frame, void* device, void* event, StreamView stream, std::size_t bytes,
                         bool exported)
    : frame_(std::move(frame)), device_(device), event_(event), stream_(stream), bytes_(bytes), exported_(exported) {}

ipc::FrameInfo DeviceFrame::publish(const ipc::FrameMeta& meta) {
  // The event marks the end of the device write: device consumers wait on
  // it, not on the mirror copy below.
  CPIPC_CUDA_TRY(cudaEventRecord(as_event(event_), stream_.value()));
  const std::span<std::byte> host = frame_.bytes();
  if (bytes_ != 0) {
    CPIPC_CUDA_TRY(cudaMemcpyAsync(host.data(), device_, bytes_, cudaMemcpyDeviceToHost, stream_.value()));
  }
  CPIPC_CUDA_TRY(cudaStreamSynchronize(stream_.value()));
  frame_.set_device_valid(exported_);
  return frame_.publish(meta);
}

// --- DeviceStream -------------------------------------------------------------

struct DeviceStream::Impl {
  std::string name;
  std::uint32_t slots;
  int device;
  std::array<std::uint8_t, 16> uuid{};
  cudaStream_t stream = nullptr;
  std::unique_ptr<Generation> current;  // null until the first frame, or after a failed re-creation
  bool exported = false;
  bool ipc_refused = false;  // once refused, every later segment is host only
  std::string why;

  ~Impl() {
    if (current && current->writer) current->writer->close(ipc::format::State::closed);
    current.reset();
    if (stream) {
      cudaSetDevice(device);
      cudaStreamDestroy(stream);
    }
  }

  void host_only(const std::string& reason) {
    if (!ipc_refused)
      std::fprintf(stderr, "cpipc: CUDA IPC is unavailable here (%s); publishing host views only\n", reason.c_str());
    ipc_refused = true;
    why = reason;
  }

  void create(const ipc::TensorDesc& desc) {
    // The old segment frees its name first and says `replaced` only once the
    // new one exists (when `current` is reassigned), so that woken readers
    // find the successor at once; if making it fails, the old one ends too.
    if (current) current->writer->unlink_name();
    try {
      make(desc);
    } catch (...) {
      current.reset();
      throw;
    }
  }

  void make(const ipc::TensorDesc& desc) {
    CPIPC_CUDA_TRY(cudaSetDevice(device));
    auto made = std::make_unique<Generation>();  // half-made, it cleans up after itself
    Generation& g = *made;
    g.device = device;
    const std::size_t frame = desc.nbytes();
    const std::size_t bytes = (frame + kGranule - 1) / kGranule * kGranule + (frame == 0 ? kGranule : 0);
    ipc::SegmentOptions options;
    options.slots = slots;
    options.device_uuid = uuid;
    options.device_ordinal = device;
    for (std::uint32_t s = 0; s < slots; ++s) {
      g.buffers.emplace_back(bytes);
      cudaEvent_t e = nullptr;
      CPIPC_CUDA_TRY(cudaEventCreateWithFlags(&e, cudaEventInterprocess | cudaEventDisableTiming));
      g.events.push_back(e);
    }
    if (!ipc_refused) {
      for (std::uint32_t s = 0; s < slots && !ipc_refused; ++s) {
        ipc::SlotExport x;
        cudaIpcMemHandle_t mh{};
        cudaIpcEventHandle_t eh{};
        cudaError_t st = cudaIpcGetMemHandle(&mh, g.buffers[s].get());
        if (st == cudaSuccess) st = cudaIpcGetEventHandle(&eh, g.events[s]);
        if (st != cudaSuccess) {
          cudaGetLastError();
          host_only(std::string(cudaGetErrorName(st)) + ": " + cudaGetErrorString(st));
          break;
        }
        static_assert(sizeof mh == ipc::format::kHandleBytes && sizeof eh == ipc::format::kHandleBytes);
        std::memcpy(x.mem_handle.data(), &mh, sizeof mh);
        std::memcpy(x.event_handle.data(), &eh, sizeof eh);
        x.device_offset = 0;
        x.device_bytes = bytes;
        options.slot_exports.push_back(x);
      }
    }
    exported = !ipc_refused;
    if (exported) {
      options.export_kind = ipc::format::ExportKind::cuda_ipc;
    } else {
      options.slot_exports.clear();
    }
    g.writer.emplace(ipc::SegmentWriter::create(name, desc, options));
    // Pinned mirror: DMA straight into the shm pages. If the driver will not
    // pin them the copies still work, through a staging buffer it manages.
    std::byte* base = g.writer->mapping_base();
    if (cudaHostRegister(base, g.writer->layout().total_bytes, cudaHostRegisterDefault) == cudaSuccess) {
      g.registered = base;
    } else {
      cudaGetLastError();
    }
    current = std::move(made);
  }
};

DeviceStream::DeviceStream(std::string name, std::uint32_t slots, int ordinal) : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->slots = slots;
  impl_->device = ordinal;
  const std::optional<DeviceInfo> info = device_info(ordinal);
  if (!info) throw Error(Errc::system, "CUDA device " + std::to_string(ordinal) + " is not available here");
  impl_->uuid = info->uuid;
  CPIPC_CUDA_TRY(cudaSetDevice(ordinal));
  CPIPC_CUDA_TRY(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
}

DeviceStream::DeviceStream(DeviceStream&&) noexcept = default;
DeviceStream& DeviceStream::operator=(DeviceStream&&) noexcept = default;
DeviceStream::~DeviceStream() = default;

DeviceFrame DeviceStream::begin(const ipc::TensorDesc& desc, std::span<const std::uint64_t> keep) {
  Impl& m = *impl_;
  // As ipc::Stream: a new segment when the layout changes or the name was unlinked behind our back.
  if (!m.current || m.current->writer->name_lost() || !m.current->writer->desc().same_layout(desc)) m.create(desc);
  CPIPC_CUDA_TRY(cudaSetDevice(m.device));
  ipc::FrameWriter frame = m.current->writer->begin_frame(keep);
  const std::uint32_t s = frame.slot();
  return DeviceFrame(std::move(frame), m.current->buffers[s].get(), m.current->events[s], m.stream, desc.nbytes(),
                     m.exported);
}

bool DeviceStream::exports() const noexcept { return impl_->exported; }
const std::string& DeviceStream::why_host_only() const noexcept { return impl_->why; }
const std::string& DeviceStream::name() const noexcept { return impl_->name; }
ipc::SegmentWriter* DeviceStream::segment() noexcept { return impl_->current ? &*impl_->current->writer : nullptr; }
StreamView DeviceStream::stream() const noexcept { return impl_->stream; }
int DeviceStream::device() const noexcept { return impl_->device; }

}  // namespace cpipc::cuda
