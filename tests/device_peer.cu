// The other process of the device-view tests (tests/device_view_test.cpp):
//   device_peer produce NAME FRAMES SLOTS SLOW_MS INTERVAL_MS
//     publishes FRAMES uint32 [512, 512] frames through a DeviceStream, each
//     written by a kernel that first spins SLOW_MS (so a consumer that did
//     not wait on the event would see old or partial bytes), prints
//     "exports=0|1 why=..." after the first and "published frame=F slot=S"
//     after each, then "done", and waits for SIGTERM (a clean end).
//   device_peer consume NAME
//     opens the latest frame's device view, prints "opened", and exits
//     without closing anything: a consumer that dies holding views.
#include <signal.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/cuda/device_stream.hpp"
#include "cpipc/error.hpp"
#include "device_pattern.hpp"

namespace {

__global__ void slow_fill(std::uint32_t* out, std::size_t n, std::uint64_t frame_id, std::uint64_t spin_ns) {
  std::uint64_t start = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  for (std::uint64_t now = start; now - start < spin_ns;) asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = cpipc::test::device_pattern(frame_id, i);
}

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int produce(const std::string& name, int frames, int slots, int slow_ms, int interval_ms) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  cpipc::cuda::DeviceStream stream(name, static_cast<std::uint32_t>(slots), 0);
  const std::int64_t shape[2] = {cpipc::test::kPatternSide, cpipc::test::kPatternSide};
  const auto desc = cpipc::ipc::TensorDesc::contiguous(cpipc::ipc::kUInt32, shape);
  const std::size_t n = static_cast<std::size_t>(desc.numel());
  for (int f = 1; f <= frames; ++f) {
    cpipc::cuda::DeviceFrame frame = stream.begin(desc);
    slow_fill<<<static_cast<unsigned>((n + 255) / 256), 256, 0, frame.stream().value()>>>(
        static_cast<std::uint32_t*>(frame.device_data()), n, static_cast<std::uint64_t>(f),
        static_cast<std::uint64_t>(slow_ms) * 1'000'000);
    const cpipc::ipc::FrameInfo info = frame.publish();
    if (f == 1) say("exports=" + std::to_string(stream.exports() ? 1 : 0) + " why=" + stream.why_host_only());
    say("published frame=" + std::to_string(info.frame_id) + " slot=" + std::to_string(info.slot));
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  say("done");
  int sig = 0;
  sigwait(&stop, &sig);
  return 0;
}

int consume(const std::string& name) {
  auto reader = std::make_shared<const cpipc::ipc::SegmentReader>(cpipc::ipc::SegmentReader::attach(name));
  auto* device = new cpipc::cuda::DeviceReader(reader);  // never deleted: this process dies holding it
  const auto lease = device->lease_latest(nullptr);
  if (!lease) return 3;
  cudaDeviceSynchronize();
  say("opened");
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "produce" && argc == 7) {
      return produce(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]), std::atoi(argv[6]));
    }
    if (mode == "consume" && argc == 3) return consume(argv[2]);
    std::fprintf(stderr, "usage: device_peer produce NAME FRAMES SLOTS SLOW_MS INTERVAL_MS | consume NAME\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "device_peer: %s\n", e.what());
    return 1;
  }
}
