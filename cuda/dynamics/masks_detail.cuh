// What the 2-D and 3-D CUDA dynamics share: launch helpers, the foreground
// list, per-label tables and renumbering, the seed order, the input checks.
// Kernels here are internal to each translation unit that includes this.
#pragma once

#include <cuda_runtime_api.h>
#include <thrust/execution_policy.h>
#include <thrust/logical.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "../runtime/buffer.cuh"
#include "../runtime/check.cuh"
#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"

namespace cpipc::dynamics::gpu {
namespace {

using cpipc::cuda::DeviceBuffer;

constexpr int kPad = 20;
constexpr int kPatch = 11;
constexpr unsigned kThreads = 256;

unsigned blocks_for(std::size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void check_launch() { CPIPC_CUDA_TRY(cudaGetLastError()); }

struct IsForeground {
  const float* cp;
  float thr;
  __device__ bool operator()(std::int64_t i) const { return cp[i] > thr; }
};

// Each foreground pixel takes the label painted at the bin it converged into.
template <class Bin>
__global__ void take_labels(const std::int64_t* pixels, const Bin* bin, std::int64_t n, const std::uint32_t* painted,
                            std::uint32_t* labels) {
  const std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (k < n) labels[pixels[k]] = painted[bin[k]];
}

__global__ void count_labels(const std::uint32_t* labels, std::int64_t n, unsigned long long* sizes,
                             std::uint32_t* first) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const std::uint32_t l = labels[i];
  if (!l) return;
  atomicAdd(sizes + l, 1ull);
  atomicMin(first + l, static_cast<std::uint32_t>(i));
}

__global__ void apply_map(std::uint32_t* labels, std::int64_t n, const std::uint32_t* map) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n && labels[i]) labels[i] = map[labels[i]];
}

struct Tables {
  std::vector<unsigned long long> sizes;  // by label, [0] unused
  std::vector<std::uint32_t> first;       // first raster index, 0xffffffff if absent
};

Tables tables(const std::uint32_t* labels, std::int64_t n, std::uint32_t max_label, cudaStream_t s) {
  DeviceBuffer<unsigned long long> sizes(max_label + 1, s);
  DeviceBuffer<std::uint32_t> first(max_label + 1, s);
  sizes.zero(s);
  first.fill_bytes(0xff, s);
  count_labels<<<blocks_for(n), kThreads, 0, s>>>(labels, n, sizes.get(), first.get());
  check_launch();
  return {sizes.download(s), first.download(s)};
}

// Drops the labels marked in `drop` and renumbers the rest 1..N by first
// appearance in raster order. Returns N.
std::uint32_t relabel(std::uint32_t* labels, std::int64_t n, const Tables& t, const std::vector<bool>& drop,
                      cudaStream_t s) {
  std::vector<std::pair<std::uint32_t, std::uint32_t>> order;  // (first index, label)
  for (std::uint32_t l = 1; l < t.first.size(); ++l) {
    if (t.first[l] != 0xffffffffu && !(l < drop.size() && drop[l])) order.emplace_back(t.first[l], l);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::uint32_t> map(t.first.size(), 0);
  for (std::size_t r = 0; r < order.size(); ++r) map[order[r].second] = static_cast<std::uint32_t>(r + 1);
  DeviceBuffer<std::uint32_t> dmap(map.size(), s);
  dmap.upload(map, s);
  apply_map<<<blocks_for(n), kThreads, 0, s>>>(labels, n, dmap.get());
  check_launch();
  CPIPC_CUDA_TRY(cudaStreamSynchronize(s));
  return static_cast<std::uint32_t>(order.size());
}

std::uint32_t remove_small(std::uint32_t* labels, std::int64_t n, std::uint32_t count, int min_size, cudaStream_t s) {
  const Tables t = tables(labels, n, count, s);
  std::vector<bool> drop(count + 1, false);
  for (std::uint32_t l = 1; l <= count; ++l) drop[l] = t.sizes[l] < static_cast<unsigned long long>(min_size);
  return relabel(labels, n, t, drop, s);
}

struct AnyNonFinite {
  __device__ bool operator()(float v) const { return !isfinite(v); }
};

// Seed bins (marked by a mark_peaks kernel), for thrust::copy_if.
struct IsPeak {
  const std::uint8_t* peak;
  __device__ bool operator()(std::int64_t i) const { return peak[i] != 0; }
};

// Hole filling's claims: (box size << 32 | label) per pixel, 0 for none.
__global__ void apply_claims(std::uint32_t* labels, std::int64_t n, const unsigned long long* claim) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n && claim[i]) labels[i] = static_cast<std::uint32_t>(claim[i] & 0xffffffffull);
}

// Throws Error(invalid_argument) for bad parameters (the CPU backend's rule).
void check_params(const Params& p) {
  if (p.niter < 0 || !(p.max_size_fraction > 0) || !std::isfinite(p.flow_threshold) || p.flow_threshold < 0 ||
      !std::isfinite(p.cellprob_threshold)) {
    throw Error(Errc::invalid_argument,
                "bad dynamics parameters (niter >= 0, max_size_fraction > 0, finite thresholds)");
  }
}

// Throws Error(invalid_argument) if any of the n values of any plane is NaN or infinite.
void check_finite(std::initializer_list<const float*> planes, std::int64_t n, cudaStream_t s) {
  const auto policy = thrust::cuda::par.on(s);
  for (const float* plane : planes) {
    if (thrust::any_of(policy, plane, plane + n, AnyNonFinite{})) {
      throw Error(Errc::invalid_argument, "flows hold NaN or infinite values; check the network's output");
    }
  }
}

template <class Index>
__global__ void gather_counts(const Index* seeds, std::int64_t n, const std::int32_t* hist, std::int32_t* counts) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) counts[i] = hist[seeds[i]];
}

// From this many values on, torch's CPU argsort of a 1-D integer tensor is
// fbgemm's radix sort, which is stable (at::internal::GRAIN_SIZE).
constexpr std::size_t kTorchRadixSortFrom = 32768;

// Seeds (raster order) sorted by their count on the host, as torch's
// argsort: libstdc++'s std::sort over (count, index) pairs compared by count
// alone (not stable), or a stable sort from kTorchRadixSortFrom seeds on.
template <class Index>
void sort_seeds_by_count(std::vector<Index>& seeds, const std::int32_t* hist, cudaStream_t s) {
  const auto ns = static_cast<std::int64_t>(seeds.size());
  DeviceBuffer<Index> dseeds(seeds.size(), s);
  dseeds.upload(seeds, s);
  DeviceBuffer<std::int32_t> dcounts(seeds.size(), s);
  gather_counts<<<blocks_for(seeds.size()), kThreads, 0, s>>>(dseeds.get(), ns, hist, dcounts.get());
  check_launch();
  const std::vector<std::int32_t> counts = dcounts.download(s);
  struct Keyed {
    std::int32_t count;
    Index seed;
  };
  std::vector<Keyed> keyed(seeds.size());
  for (std::size_t i = 0; i < seeds.size(); ++i) keyed[i] = {counts[i], seeds[i]};
  const auto by_count = [](const Keyed& a, const Keyed& b) { return a.count < b.count; };
  if (keyed.size() >= kTorchRadixSortFrom) {
    std::stable_sort(keyed.begin(), keyed.end(), by_count);
  } else {
    std::sort(keyed.begin(), keyed.end(), by_count);
  }
  for (std::size_t i = 0; i < seeds.size(); ++i) seeds[i] = keyed[i].seed;
}

}  // namespace
}  // namespace cpipc::dynamics::gpu
