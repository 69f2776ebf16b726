// Device views across processes (issue 6): a device_peer process produces
// through a DeviceStream, this process consumes through a DeviceReader.
// Needs a GPU with CUDA IPC; elsewhere each test is skipped, saying why.
#include <signal.h>

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "cpipc/cuda/device.hpp"
#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/error.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "cpipc/util/child_process.hpp"
#include "device_pattern.hpp"
#include "support/gpu_support.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

using namespace std::chrono_literals;

// The producer process; SIGTERM (a clean end) when it goes.
class DevicePeer {
 public:
  DevicePeer(const std::string& name, int frames, int slots, int slow_ms, int interval_ms)
      : process_({CPIPC_DEVICE_PEER, "produce", name, std::to_string(frames), std::to_string(slots),
                  std::to_string(slow_ms), std::to_string(interval_ms)}) {}
  ~DevicePeer() {
    process_.signal(SIGTERM);
    (void)process_.wait(10s);
  }
  // The next line, failing the test (and returning "") after 60 s.
  std::string line() {
    const auto l = process_.read_line(60s);
    EXPECT_TRUE(l.has_value()) << "device_peer went quiet";
    return l.value_or("");
  }
  util::ChildProcess& process() { return process_; }

 private:
  util::ChildProcess process_;
};

// Waits for `name` and its first frame, then a DeviceReader on it.
std::unique_ptr<cuda::DeviceReader> open(const std::string& name) {
  auto reader = std::make_shared<const ipc::SegmentReader>(ipc::SegmentReader::attach(name));
  return std::make_unique<cuda::DeviceReader>(reader);
}

std::vector<std::uint32_t> download(const cuda::DeviceLease& lease, cudaStream_t stream) {
  std::vector<std::uint32_t> out(lease.desc().nbytes() / 4);
  EXPECT_EQ(cudaMemcpyAsync(out.data(), lease.data(), lease.desc().nbytes(), cudaMemcpyDeviceToHost, stream),
            cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  return out;
}

bool is_pattern(const std::vector<std::uint32_t>& v, std::uint64_t frame_id) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != test::device_pattern(frame_id, i)) return false;
  }
  return true;
}

// Every frame read: device bytes == host bytes == what the producer's kernel
// wrote for that frame (it spins 30 ms first: a view not ordered after the
// producer's event would show the slot's previous frame). Handles are
// opened once per slot, not per frame.
TEST(DeviceViews, EveryFrameOnTheDeviceEqualsItsHostMirrorAndHandlesOpenOnce) {
  SKIP_WITHOUT_GPU();
  const std::string name = test::unique_name("dv");
  DevicePeer peer(name, 24, 3, 30, 5);
  const std::string first = peer.line();
  if (first.find("exports=0") == 0) GTEST_SKIP() << "CUDA IPC is unavailable here: " << first;
  ASSERT_EQ(first.rfind("exports=1", 0), 0u) << first;
  auto device = open(name);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  int frames = 0;
  std::uint64_t last = 0;
  for (;;) {
    const std::string l = peer.line();
    if (l == "done" || l.empty()) break;
    const auto lease = device->lease_latest(stream);
    ASSERT_TRUE(lease);
    if (lease->info().frame_id == last) continue;
    last = lease->info().frame_id;
    const std::vector<std::uint32_t> on_device = download(*lease, stream);
    ASSERT_TRUE(lease->valid()) << "a 2 s lease on a 3-slot ring ran out";
    EXPECT_TRUE(is_pattern(on_device, last)) << "frame " << last;
    EXPECT_EQ(std::memcmp(on_device.data(), lease->host().data, lease->desc().nbytes()), 0) << "frame " << last;
    ++frames;
  }
  EXPECT_GE(frames, 10);
  EXPECT_LE(device->handles_opened(), 3);
  EXPECT_GE(device->handles_opened(), 1);
  cudaStreamDestroy(stream);
}

// A consumer process that exits holding device views disturbs nobody.
TEST(DeviceViews, AConsumerThatDiesHoldingViewsDoesNotDisturbTheProducer) {
  SKIP_WITHOUT_GPU();
  const std::string name = test::unique_name("dv");
  DevicePeer peer(name, 40, 3, 0, 25);
  const std::string first = peer.line();
  if (first.find("exports=0") == 0) GTEST_SKIP() << "CUDA IPC is unavailable here: " << first;
  {
    util::ChildProcess consumer({CPIPC_DEVICE_PEER, "consume", name});
    EXPECT_EQ(consumer.read_line(60s).value_or(""), "opened");
    EXPECT_EQ(consumer.wait(30s), 0);
  }
  std::string l;
  do {
    l = peer.line();
  } while (!l.empty() && l != "done");
  EXPECT_EQ(l, "done") << "the producer stopped publishing";
  auto device = open(name);
  const auto lease = device->lease_latest(nullptr);
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->info().frame_id, 40u);
}

// The producer killed while a consumer holds a device view: the consumer's
// next call says producer_gone within a second; nothing hangs.
TEST(DeviceViews, ProducerKilledWhileAViewIsHeldIsAnErrorNotAHang) {
  SKIP_WITHOUT_GPU();
  const std::string name = test::unique_name("dv");
  DevicePeer peer(name, 2, 3, 0, 0);
  const std::string first = peer.line();
  if (first.find("exports=0") == 0) GTEST_SKIP() << "CUDA IPC is unavailable here: " << first;
  while (peer.line() != "done") {
  }
  auto device = open(name);
  const auto held = device->lease_latest(nullptr);
  ASSERT_TRUE(held);
  peer.process().kill();
  (void)peer.process().wait(10s);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    (void)device->lease_latest(nullptr);
    ADD_FAILURE() << "no error after the producer died";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::producer_gone) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(test::run_cpipc({"gc", name}).status, 0);
  EXPECT_FALSE(test::shm_exists(name));
}

// Runs everywhere: a segment whose device this process cannot see (a made
// up UUID) is refused with a clear error, whatever GPUs there are.
TEST(DeviceViews, ASegmentOnAnotherDeviceIsRefused) {
  ipc::SegmentOptions options;
  options.slots = 2;
  options.export_kind = ipc::format::ExportKind::cuda_ipc;
  options.device_uuid.fill(0x5A);
  options.slot_exports.resize(2);
  for (auto& e : options.slot_exports) e.device_bytes = 2u << 20;
  const std::int64_t shape[2] = {8, 8};
  ipc::SegmentWriter w =
      ipc::SegmentWriter::create(test::unique_name("dv"), ipc::TensorDesc::contiguous(ipc::kUInt16, shape), options);
  try {
    (void)open(w.name());
    ADD_FAILURE() << "a DeviceReader on a device that is not here";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found) << e.what();
    EXPECT_NE(std::string(e.what()).find("host view"), std::string::npos) << e.what();
  }
}

TEST(DeviceViews, AHostOnlySegmentHasNoDeviceView) {
  const std::int64_t shape[2] = {8, 8};
  ipc::SegmentWriter w =
      ipc::SegmentWriter::create(test::unique_name("dv"), ipc::TensorDesc::contiguous(ipc::kUInt16, shape));
  try {
    (void)open(w.name());
    ADD_FAILURE() << "a DeviceReader on a host-only segment";
  } catch (const Error& e) {
    EXPECT_TRUE(e.code() == Errc::invalid_argument || e.code() == Errc::not_found) << e.what();
  }
}

}  // namespace
}  // namespace cpipc
