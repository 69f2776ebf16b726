// GPU benchmarks of the device half (issue 6), each beside its baseline in
// the same run; tools/gpu/gpu_check.sh runs them and keeps their JSON lines.
//   bench_device mirror [MIB] [REPEAT]
//     DeviceFrame::publish of a MIB frame (event + D2H into the registered
//     shm slot + sync + publish) against cudaMemcpy of the same bytes into
//     cudaMallocHost memory. Goal: >= 90 % of the baseline's bandwidth.
//   bench_device view [FRAMES]
//     A consumer process (this program again) with a DeviceReader on a
//     producer's DeviceStream: the first lease_latest (opens the handles),
//     then per frame lease_latest (lease + cudaStreamWaitEvent) with the
//     handles open, and the same plus reading the first element back.
//     Goal: under 20 us per frame for the former.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/cuda/device_stream.hpp"
#include "cpipc/util/child_process.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t) { return std::chrono::duration<double, std::micro>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

void check(cudaError_t st, const char* what) {
  if (st != cudaSuccess) {
    std::fprintf(stderr, "bench_device: %s: %s\n", what, cudaGetErrorString(st));
    std::exit(1);
  }
}

cpipc::ipc::TensorDesc frame_of_mib(int mib) {
  const std::int64_t shape[2] = {static_cast<std::int64_t>(mib) * 512, 512};  // uint32: 2 KiB a row
  return cpipc::ipc::TensorDesc::contiguous(cpipc::ipc::kUInt32, shape);
}

int mirror(int mib, int repeat) {
  const cpipc::ipc::TensorDesc desc = frame_of_mib(mib);
  const std::size_t bytes = desc.nbytes();
  cpipc::cuda::DeviceStream stream("bench-mirror-" + std::to_string(::getpid()), 2, 0);
  std::vector<double> ours;
  std::vector<double> base;
  void* src = nullptr;
  void* pinned = nullptr;
  check(cudaMalloc(&src, bytes), "cudaMalloc");
  check(cudaMemset(src, 7, bytes), "cudaMemset");
  check(cudaMallocHost(&pinned, bytes), "cudaMallocHost");
  for (int i = 0; i < repeat + 2; ++i) {  // two warm-ups each, alternating
    cpipc::cuda::DeviceFrame f = stream.begin(desc);
    check(cudaMemcpyAsync(f.device_data(), src, bytes, cudaMemcpyDeviceToDevice, f.stream().value()), "fill");
    check(cudaStreamSynchronize(f.stream().value()), "sync");
    auto t = Clock::now();
    (void)f.publish();
    if (i >= 2) ours.push_back(us_since(t));
    t = Clock::now();
    check(cudaMemcpy(pinned, src, bytes, cudaMemcpyDeviceToHost), "baseline copy");
    if (i >= 2) base.push_back(us_since(t));
  }
  const double gbs_ours = bytes / median(ours) / 1e3;
  const double gbs_base = bytes / median(base) / 1e3;
  std::printf(
      "{\"bench\":\"mirror\",\"mib\":%d,\"repeat\":%d,\"exports\":%s,\"publish_us\":%.1f,\"pinned_copy_us\":%.1f,"
      "\"publish_GBps\":%.2f,\"pinned_copy_GBps\":%.2f,\"ratio\":%.3f}\n",
      mib, repeat, stream.exports() ? "true" : "false", median(ours), median(base), gbs_ours, gbs_base,
      gbs_ours / gbs_base);
  cudaFreeHost(pinned);
  cudaFree(src);
  return 0;
}

// The consumer side of `view`, in its own process (CUDA IPC handles cannot
// be opened by the process that exported them).
int consume(const std::string& name, int frames) {
  auto reader = std::make_shared<const cpipc::ipc::SegmentReader>(cpipc::ipc::SegmentReader::attach(name));
  cpipc::cuda::DeviceReader device(reader);
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  auto t = Clock::now();
  auto first = device.lease_latest(s);
  const double open_us = us_since(t);
  if (!first) {
    std::fprintf(stderr, "bench_device: no device view to read\n");
    return 1;
  }
  first.reset();
  std::vector<double> wait_us;
  std::vector<double> byte_us;
  std::uint32_t word = 0;
  for (int i = 0; i < frames; ++i) {
    t = Clock::now();
    auto lease = device.lease_latest(s);
    wait_us.push_back(us_since(t));
    check(cudaMemcpyAsync(&word, lease->data(), sizeof word, cudaMemcpyDeviceToHost, s), "first word");
    check(cudaStreamSynchronize(s), "sync");
    byte_us.push_back(us_since(t));
  }
  std::printf(
      "{\"bench\":\"device_view\",\"frames\":%d,\"first_open_us\":%.1f,\"per_frame_lease_wait_us\":%.2f,"
      "\"per_frame_with_first_word_us\":%.2f,\"handles_opened\":%d}\n",
      frames, open_us, median(wait_us), median(byte_us), device.handles_opened());
  cudaStreamDestroy(s);
  return 0;
}

int view(const char* self, int frames) {
  const std::string name = "bench-view-" + std::to_string(::getpid());
  cpipc::cuda::DeviceStream stream(name, 3, 0);
  cpipc::cuda::DeviceFrame f = stream.begin(frame_of_mib(4));
  check(cudaMemsetAsync(f.device_data(), 1, frame_of_mib(4).nbytes(), f.stream().value()), "fill");
  (void)f.publish();
  if (!stream.exports()) {
    std::printf("{\"bench\":\"device_view\",\"skipped\":\"CUDA IPC unavailable: %s\"}\n",
                stream.why_host_only().c_str());
    return 0;
  }
  cpipc::util::ChildProcess consumer({self, "consume", name, std::to_string(frames)});
  std::printf("%s\n", consumer.read_all(std::chrono::minutes(2)).c_str());
  const auto status = consumer.wait(std::chrono::seconds(10));
  return status.value_or(1);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "mirror") return mirror(argc > 2 ? std::atoi(argv[2]) : 64, argc > 3 ? std::atoi(argv[3]) : 20);
    if (mode == "view") return view("/proc/self/exe", argc > 2 ? std::atoi(argv[2]) : 1000);
    if (mode == "consume" && argc == 4) return consume(argv[2], std::atoi(argv[3]));
    std::fprintf(stderr, "usage: bench_device mirror [MIB] [REPEAT] | view [FRAMES]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_device: %s\n", e.what());
    return 1;
  }
}
