// Frames as LibTorch tensors and DLPack capsules without a copy: the
// tensor's memory is the segment's mapping, and the lease that holds it in
// place lives exactly as long as the last tensor or capsule.
#include <signal.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "cpipc/model/frame_tensor.hpp"
#include "cpipc/util/child_process.hpp"
#include "support/gpu_support.hpp"
#include "support/test_support.hpp"
#ifdef CPIPC_DEVICE_PEER
#include "device_pattern.hpp"
#endif

namespace cpipc {
namespace {

using model::FrameTensor;

// A uint16 [H, W] frame whose pixel (y, x) is y * 100 + x + base.
std::vector<std::byte> ramp(int h, int w, int base) {
  std::vector<std::byte> bytes(static_cast<std::size_t>(h) * w * 2);
  auto* p = reinterpret_cast<std::uint16_t*>(bytes.data());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) p[y * w + x] = static_cast<std::uint16_t>(y * 100 + x + base);
  }
  return bytes;
}

class FrameTensors : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::int64_t shape[2] = {12, 34};
    writer_.emplace(ipc::SegmentWriter::create(
        test::unique_name("ft"), ipc::TensorDesc::contiguous(ipc::kUInt16, shape), ipc::SegmentOptions{.slots = 3}));
    reader_ = std::make_shared<const ipc::SegmentReader>(ipc::SegmentReader::attach(writer_->name()));
  }
  std::optional<ipc::SegmentWriter> writer_;
  std::shared_ptr<const ipc::SegmentReader> reader_;
};

TEST_F(FrameTensors, NothingPublishedGivesNothing) { EXPECT_FALSE(FrameTensor::latest(reader_).has_value()); }

TEST_F(FrameTensors, TheTensorIsTheSegmentsMemory) {
  writer_->publish(ramp(12, 34, 7));
  const auto ft = FrameTensor::latest(reader_);
  ASSERT_TRUE(ft);
  const at::Tensor& t = ft->tensor();
  EXPECT_EQ(t.scalar_type(), at::kUInt16);
  EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{12, 34}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_TRUE(t.device().is_cpu());
  // The lease's host view and the tensor are the same bytes: no copy.
  const auto lease = reader_->lease_latest();
  ASSERT_TRUE(lease);
  EXPECT_EQ(t.data_ptr(), static_cast<const void*>(lease->view().data));
  EXPECT_EQ(t.index({5, 9}).item<std::int64_t>(), 5 * 100 + 9 + 7);
  EXPECT_EQ(t.to(at::kLong).sum().item<std::int64_t>(),
            at::from_blob(ramp(12, 34, 7).data(), {12, 34}, at::kUInt16).to(at::kLong).sum().item<std::int64_t>());
  EXPECT_TRUE(ft->valid());
  EXPECT_EQ(ft->info().frame_id, 1u);
}

TEST_F(FrameTensors, TheLeaseLivesAsLongAsTheLastTensor) {
  writer_->publish(ramp(12, 34, 0));
  at::Tensor kept;
  {
    const auto ft = FrameTensor::latest(reader_, std::chrono::seconds(30));
    ASSERT_TRUE(ft);
    kept = ft->tensor();  // outlives the FrameTensor
  }
  EXPECT_EQ(reader_->status().active_leases, 1u);
  // Three slots: the leased one is never the one written while the lease lives.
  for (int i = 1; i <= 5; ++i) writer_->publish(ramp(12, 34, i));
  EXPECT_EQ(kept.index({1, 2}).item<std::int64_t>(), 102);
  EXPECT_EQ(writer_->lease_overrides(), 0u);
  kept = at::Tensor();
  EXPECT_EQ(reader_->status().active_leases, 0u);
}

TEST_F(FrameTensors, DLPackCapsulesShareTheMemoryAndReleaseTheLease) {
  writer_->publish(ramp(12, 34, 3));
  DLManagedTensor* capsule = nullptr;
  const void* data = nullptr;
  {
    const auto ft = FrameTensor::latest(reader_, std::chrono::seconds(30));
    ASSERT_TRUE(ft);
    capsule = ft->to_dlpack();
    data = ft->tensor().data_ptr();
  }
  ASSERT_NE(capsule, nullptr);
  const DLTensor& dl = capsule->dl_tensor;
  EXPECT_EQ(static_cast<const std::byte*>(dl.data) + dl.byte_offset, data);
  EXPECT_EQ(dl.device.device_type, kDLCPU);
  EXPECT_EQ(dl.dtype.code, kDLUInt);
  EXPECT_EQ(dl.dtype.bits, 16);
  EXPECT_EQ(dl.dtype.lanes, 1);
  ASSERT_EQ(dl.ndim, 2);
  EXPECT_EQ(dl.shape[0], 12);
  EXPECT_EQ(dl.shape[1], 34);
  std::uint16_t v = 0;
  std::memcpy(&v, static_cast<const std::byte*>(dl.data) + dl.byte_offset + (2 * 34 + 5) * 2, 2);
  EXPECT_EQ(v, 2 * 100 + 5 + 3);
  EXPECT_EQ(reader_->status().active_leases, 1u) << "the capsule holds the lease";
  capsule->deleter(capsule);
  EXPECT_EQ(reader_->status().active_leases, 0u);
}

// A device view as a CUDA tensor: needs a producer in another process (CUDA
// IPC handles cannot be opened where they were made), so this runs the
// device_peer-free path only: a host-only segment has no device view.
TEST_F(FrameTensors, AHostOnlySegmentHasNoDeviceTensor) {
  writer_->publish(ramp(12, 34, 1));
  try {
    (void)FrameTensor::latest_on_device(std::make_shared<cuda::DeviceReader>(reader_));
    ADD_FAILURE() << "a device tensor of a host-only segment";
  } catch (const Error& e) {
    EXPECT_TRUE(e.code() == Errc::invalid_argument || e.code() == Errc::not_found) << e.what();
  }
}

#ifdef CPIPC_DEVICE_PEER
// A device view as a CUDA tensor and a kDLCUDA capsule, no copy: the frame a
// device_peer process wrote on its GPU, read here through CUDA IPC.
TEST(FrameTensorsOnCuda, ADeviceViewIsACudaTensorWithoutACopy) {
  SKIP_WITHOUT_GPU();
  const std::string name = test::unique_name("ftd");
  util::ChildProcess peer({CPIPC_DEVICE_PEER, "produce", name, "3", "3", "0", "0"});
  const std::string first = peer.read_line(std::chrono::seconds(60)).value_or("");
  if (first.rfind("exports=0", 0) == 0) GTEST_SKIP() << "CUDA IPC is unavailable here: " << first;
  ASSERT_EQ(first.rfind("exports=1", 0), 0u) << first;
  for (std::string l; l != "done";) l = peer.read_line(std::chrono::seconds(60)).value_or("done");
  {
    auto reader = std::make_shared<const ipc::SegmentReader>(ipc::SegmentReader::attach(name));
    const auto ft = FrameTensor::latest_on_device(std::make_shared<cuda::DeviceReader>(reader));
    ASSERT_TRUE(ft);
    const at::Tensor& t = ft->tensor();
    EXPECT_TRUE(t.is_cuda());
    EXPECT_EQ(t.scalar_type(), at::kUInt32);
    EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{test::kPatternSide, test::kPatternSide}));
    const at::Tensor host = t.cpu();
    const auto* v = static_cast<const std::uint32_t*>(host.data_ptr());
    std::size_t wrong = 0;
    for (std::int64_t i = 0; i < host.numel(); ++i)
      wrong += v[i] != test::device_pattern(3, static_cast<std::size_t>(i));
    EXPECT_EQ(wrong, 0u);
    EXPECT_TRUE(ft->valid());
    DLManagedTensor* capsule = ft->to_dlpack();
    EXPECT_EQ(capsule->dl_tensor.device.device_type, kDLCUDA);
    EXPECT_EQ(static_cast<const std::byte*>(capsule->dl_tensor.data) + capsule->dl_tensor.byte_offset,
              static_cast<const std::byte*>(t.data_ptr()));
    capsule->deleter(capsule);
  }
  peer.signal(SIGTERM);
  EXPECT_EQ(peer.wait(std::chrono::seconds(10)), 0);
}
#endif

TEST(FrameTensorDTypes, EverySegmentDTypeHasATorchType) {
  EXPECT_EQ(model::scalar_type(ipc::kUInt8), at::kByte);
  EXPECT_EQ(model::scalar_type(ipc::kUInt32), at::kUInt32);
  EXPECT_EQ(model::scalar_type(ipc::kInt32), at::kInt);
  EXPECT_EQ(model::scalar_type(ipc::kFloat32), at::kFloat);
  EXPECT_EQ(model::scalar_type({ipc::DTypeCode::bfloat, 16, 1}), at::kBFloat16);
  EXPECT_EQ(model::scalar_type({ipc::DTypeCode::bool_, 8, 1}), at::kBool);
  EXPECT_THROW((void)model::scalar_type({ipc::DTypeCode::float_, 8, 1}), Error);
}

}  // namespace
}  // namespace cpipc
