// Device views in a build without the CUDA toolkit: none, said clearly.
#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/cuda/device_stream.hpp"
#include "cpipc/cuda/labels.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cuda {

namespace {
[[noreturn]] void no_cuda() { throw Error(Errc::system, "this cpipc was built without CUDA: no device views"); }
}  // namespace

ipc::FrameInfo DeviceFrame::publish(const ipc::FrameMeta&) { no_cuda(); }

struct DeviceStream::Impl {};
DeviceStream::DeviceStream(std::string, std::uint32_t, int) { no_cuda(); }
DeviceStream::DeviceStream(DeviceStream&&) noexcept = default;
DeviceStream& DeviceStream::operator=(DeviceStream&&) noexcept = default;
DeviceStream::~DeviceStream() = default;
DeviceFrame DeviceStream::begin(const ipc::TensorDesc&, std::span<const std::uint64_t>) { no_cuda(); }
bool DeviceStream::exports() const noexcept { return false; }
const std::string& DeviceStream::why_host_only() const noexcept {
  static const std::string why = "this cpipc was built without CUDA";
  return why;
}
const std::string& DeviceStream::name() const noexcept {
  static const std::string none;
  return none;
}
ipc::SegmentWriter* DeviceStream::segment() noexcept { return nullptr; }
StreamView DeviceStream::stream() const noexcept { return {}; }
int DeviceStream::device() const noexcept { return -1; }

DeviceReader::DeviceReader(std::shared_ptr<const ipc::SegmentReader> reader) : reader_(std::move(reader)) {
  throw Error(Errc::not_found, "this cpipc was built without CUDA: no device views; use the host view");
}
DeviceReader::~DeviceReader() = default;
std::optional<DeviceLease> DeviceReader::lease_latest(StreamView, std::chrono::milliseconds) { no_cuda(); }

std::vector<std::byte> DeviceLease::download(StreamView) const { no_cuda(); }
void DeviceLease::order_on(StreamView) const { no_cuda(); }

void write_labels(const std::int32_t*, void*, std::size_t, int, StreamView) { no_cuda(); }

}  // namespace cpipc::cuda
