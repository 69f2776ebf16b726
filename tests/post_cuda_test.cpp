// The GPU stats (cpipc_post_cuda) against the CPU ones (cpipc_post): the
// same CSV, byte for byte, on the regionprops fixture and on random labels.
// Needs a GPU; elsewhere each test is skipped, saying why.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "cpipc/cuda/device.hpp"
#include "cpipc/cuda/post.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/post/outlines.hpp"
#include "cpipc/post/stats.hpp"
#include "post_fixture.hpp"
#include "support/gpu_support.hpp"

namespace cpipc {
namespace {

// Host bytes on the device for the length of a test.
class OnDevice {
 public:
  OnDevice(const void* data, std::size_t bytes) {
    EXPECT_EQ(cudaMalloc(&p_, bytes == 0 ? 1 : bytes), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(p_, data, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  }
  OnDevice(const OnDevice&) = delete;
  ~OnDevice() { cudaFree(p_); }
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

// The CPU and GPU tables for labels (as `dtype`) and an optional image.
void expect_same_table(const std::vector<std::uint32_t>& labels, int h, int w, ipc::DType dtype,
                       const std::vector<float>& image, int channels) {
  const float* img = image.empty() ? nullptr : image.data();
  const int cols = image.empty() ? 0 : channels;
  const std::string cpu = post::stats_csv(post::object_stats(labels.data(), h, w, img, std::max(channels, 1)), cols);
  std::vector<std::uint16_t> narrow(labels.begin(), labels.end());
  const void* host = dtype == ipc::kUInt16 ? static_cast<const void*>(narrow.data()) : labels.data();
  OnDevice d_labels(host, labels.size() * dtype.itemsize());
  OnDevice d_image(img, image.size() * sizeof(float));
  const std::string gpu =
      post::stats_csv(cuda::object_stats(d_labels.get(), dtype, h, w,
                                         img ? static_cast<const float*>(d_image.get()) : nullptr, channels, nullptr),
                      cols);
  EXPECT_EQ(gpu, cpu);
}

TEST(GpuStats, EqualTheCpuOnTheFixtureToTheByte) {
  SKIP_WITHOUT_GPU();
  const test::FixtureLabels f = test::fixture_labels();
  const std::vector<float> gray = io::to_float32(io::read_npy(test::stats_data("gray.npy")), "gray");
  const std::vector<float> rgb = io::to_float32(io::read_npy(test::stats_data("rgb.npy")), "rgb");
  for (const ipc::DType dtype : {ipc::kUInt16, ipc::kUInt32}) {
    expect_same_table(f.labels, f.height, f.width, dtype, {}, 1);
    expect_same_table(f.labels, f.height, f.width, dtype, gray, 1);
    expect_same_table(f.labels, f.height, f.width, dtype, rgb, 3);
  }
}

// Blocks of random labels (touching, repeated, with gaps), random float
// intensities: the double sums must be added in the CPU's order to agree.
TEST(GpuStats, EqualTheCpuOnRandomLabelsAndFloatIntensities) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  const int h = 301, w = 517;
  std::vector<std::uint32_t> labels(static_cast<std::size_t>(h) * w);
  std::uniform_int_distribution<std::uint32_t> pick(0, 900);
  for (int by = 0; by < h; by += 7) {
    for (int bx = 0; bx < w; bx += 9) {
      const std::uint32_t l = pick(rng) * 70001u % 100000u;  // some above 65 535 (uint32 only)
      for (int y = by; y < std::min(h, by + 7); ++y) {
        for (int x = bx; x < std::min(w, bx + 9); ++x) labels[static_cast<std::size_t>(y) * w + x] = l;
      }
    }
  }
  std::vector<float> image(labels.size() * 2);
  std::normal_distribution<float> noise(100.0f, 37.5f);
  for (float& v : image) v = noise(rng);
  expect_same_table(labels, h, w, ipc::kUInt32, image, 2);
}

// The outline pixels: Cellpose's outlines on the fixture (holes, touching
// masks, a label inside another's hole), and random blocks.
TEST(GpuOutlines, EqualTheCpuPixelForPixel) {
  SKIP_WITHOUT_GPU();
  const test::FixtureLabels f = test::fixture_labels();
  EXPECT_EQ(cuda::outline_mask_from_host(f.labels.data(), f.height, f.width, 0),
            post::outline_mask(f.labels.data(), f.height, f.width));
  std::mt19937 rng(5);
  const int h = 97, w = 131;
  std::vector<std::uint32_t> labels(static_cast<std::size_t>(h) * w);
  std::uniform_int_distribution<std::uint32_t> pick(0, 12);  // few labels: scattered, holed objects
  for (auto& l : labels) l = pick(rng) < 9 ? 3 : pick(rng);
  EXPECT_EQ(cuda::outline_mask_from_host(labels.data(), h, w, 0), post::outline_mask(labels.data(), h, w));
  EXPECT_TRUE(cuda::outline_mask_from_host(labels.data(), 0, 0, 0).empty());
}

TEST(GpuStats, RefuseWhatTheyCannotMeasure) {
  SKIP_WITHOUT_GPU();
  EXPECT_THROW((void)cuda::object_stats(nullptr, ipc::kFloat32, 4, 4, nullptr, 1, nullptr), Error);
  EXPECT_THROW((void)cuda::object_stats(nullptr, ipc::kUInt16, -1, 4, nullptr, 1, nullptr), Error);
  EXPECT_TRUE(cuda::object_stats(nullptr, ipc::kUInt16, 0, 0, nullptr, 1, nullptr).empty());
}

}  // namespace
}  // namespace cpipc
