// Cellpose's 3-D dynamics on the GPU: the CPU backend's steps
// (src/dynamics/masks_3d.cpp) in device memory, float work compiled with
// --fmad=false and written in the CPU's (and torch's) order so that rounding
// matches. No flow-error QC, as Cellpose in 3-D.
#include <cuda_runtime_api.h>
#include <thrust/copy.h>
#include <thrust/execution_policy.h>
#include <thrust/iterator/counting_iterator.h>

#include <algorithm>
#include <string>

#include "../runtime/buffer.cuh"
#include "../runtime/check.cuh"
#include "cpipc/dynamics/cuda.hpp"
#include "cpipc/error.hpp"
#include "masks_detail.cuh"

namespace cpipc::dynamics::gpu {

namespace {

constexpr int kPatchVolume = kPatch * kPatch * kPatch;

// Sizes of the stack and of its padded histogram.
struct Geometry {
  int d, h, w;
  std::int64_t dp, hp, wp;
};

// ---- flow following ----------------------------------------------------------

// (fx, fy, fz, 0) per voxel, normalised, with a one-voxel zero border.
__global__ void make_field(const float* dz, const float* dy, const float* dx, const float* cp, float thr, Geometry g,
                           float sz, float sy, float sx, float4* field) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const std::int64_t plane = static_cast<std::int64_t>(g.h) * g.w;
  if (i >= g.d * plane) return;
  const std::int64_t z = i / plane, y = i % plane / g.w, x = i % g.w;
  const bool fg = cp[i] > thr;
  field[((z + 1) * (g.h + 2) + y + 1) * (g.w + 2) + x + 1] = make_float4(
      (fg ? dx[i] : 0.0f) / 5.0f * sx, (fg ? dy[i] : 0.0f) / 5.0f * sy, (fg ? dz[i] : 0.0f) / 5.0f * sz, 0.0f);
}

// grid_sample's source index and trilinear weights along one axis.
struct Axis {
  int i0;
  float w0, w1;  // (i0 + 1) - i, i - i0
};
__device__ Axis axis(float g, float size) {
  const float i = ((g + 1.0f) * size - 1.0f) * 0.5f;
  int i0 = static_cast<int>(i);
  i0 -= i < static_cast<float>(i0) ? 1 : 0;
  const float f0 = static_cast<float>(i0);
  return {i0, (f0 + 1.0f) - i, i - f0};
}

__device__ float clamp1(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

// out += corner * weight, per channel, in torch's corner order.
__device__ void add_corner(float3& out, float4 c, float weight) {
  out.x = out.x + c.x * weight;
  out.y = out.y + c.y * weight;
  out.z = out.z + c.z * weight;
}

__global__ void follow(const std::int64_t* pixels, std::int64_t n, const float4* field, Geometry g, float lz, float ly,
                       float lx, int niter, std::int64_t* bin, std::int32_t* hist) {
  const std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (k >= n) return;
  const std::int64_t p = pixels[k], plane = static_cast<std::int64_t>(g.h) * g.w;
  float gz = g.d == 1 ? -1.0f : static_cast<float>(p / plane) / lz * 2.0f - 1.0f;
  float gy = g.h == 1 ? -1.0f : static_cast<float>(p % plane / g.w) / ly * 2.0f - 1.0f;
  float gx = g.w == 1 ? -1.0f : static_cast<float>(p % g.w) / lx * 2.0f - 1.0f;
  const float fd = static_cast<float>(g.d), fh = static_cast<float>(g.h), fw = static_cast<float>(g.w);
  const std::int64_t sy = g.w + 2, sz = sy * (g.h + 2);
  for (int t = 0; t < niter; ++t) {
    const Axis ax = axis(gx, fw), ay = axis(gy, fh), az = axis(gz, fd);
    const float xy00 = ax.w0 * ay.w0, xy10 = ax.w1 * ay.w0, xy01 = ax.w0 * ay.w1, xy11 = ax.w1 * ay.w1;
    const float4* c = field + (static_cast<std::int64_t>(az.i0 + 1) * sz + (ay.i0 + 1) * sy + (ax.i0 + 1));
    const float4 c000 = __ldg(c), c001 = __ldg(c + 1), c010 = __ldg(c + sy), c011 = __ldg(c + sy + 1);
    float3 out = make_float3(c000.x * (xy00 * az.w0), c000.y * (xy00 * az.w0), c000.z * (xy00 * az.w0));
    add_corner(out, c001, xy10 * az.w0);
    add_corner(out, c010, xy01 * az.w0);
    add_corner(out, c011, xy11 * az.w0);
    c += sz;
    add_corner(out, __ldg(c), xy00 * az.w1);
    add_corner(out, __ldg(c + 1), xy10 * az.w1);
    add_corner(out, __ldg(c + sy), xy01 * az.w1);
    add_corner(out, __ldg(c + sy + 1), xy11 * az.w1);
    gx = clamp1(gx + out.x);
    gy = clamp1(gy + out.y);
    gz = clamp1(gz + out.z);
  }
  const std::int64_t x = static_cast<int>((gx + 1.0f) * 0.5f * lx);
  const std::int64_t y = static_cast<int>((gy + 1.0f) * 0.5f * ly);
  const std::int64_t z = static_cast<int>((gz + 1.0f) * 0.5f * lz);
  const std::int64_t bz = min(max(z + kPad, std::int64_t{0}), static_cast<std::int64_t>(g.d + kPad - 1));
  const std::int64_t by = min(max(y + kPad, std::int64_t{0}), static_cast<std::int64_t>(g.h + kPad - 1));
  const std::int64_t bx = min(max(x + kPad, std::int64_t{0}), static_cast<std::int64_t>(g.w + kPad - 1));
  const std::int64_t b = (bz * g.hp + by) * g.wp + bx;
  bin[k] = b;
  atomicAdd(hist + b, 1);
}

// ---- seeds ---------------------------------------------------------------------

// Bins over 10 that no bin of their 5 x 5 x 5 window (truncated) beats.
__global__ void mark_peaks(const std::int32_t* hist, Geometry g, std::uint8_t* peak) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= g.dp * g.hp * g.wp) return;
  const std::int32_t v = hist[i];
  bool is = v > 10;
  if (is) {
    const std::int64_t z = i / (g.hp * g.wp), y = i / g.wp % g.hp, x = i % g.wp;
    for (std::int64_t zz = max(z - 2, std::int64_t{0}); zz <= min(g.dp - 1, z + 2) && is; ++zz) {
      for (std::int64_t yy = max(y - 2, std::int64_t{0}); yy <= min(g.hp - 1, y + 2) && is; ++yy) {
        for (std::int64_t xx = max(x - 2, std::int64_t{0}); xx <= min(g.wp - 1, x + 2); ++xx) {
          if (hist[(zz * g.hp + yy) * g.wp + xx] > v) {
            is = false;
            break;
          }
        }
      }
    }
  }
  peak[i] = is;
}

// One 3-tap max along an axis of the patch (truncated), as Cellpose's
// separable max_pool with kernel 3; the block works through the patch.
__device__ void dilate_axis(const std::uint8_t* in, std::uint8_t* out, int step) {
  for (int i = threadIdx.x; i < kPatchVolume; i += blockDim.x) {
    const int pos = i / step % kPatch;
    out[i] = in[i] | (pos > 0 ? in[i - step] : 0) | (pos + 1 < kPatch ? in[i + step] : 0);
  }
  __syncthreads();
}

// One block per seed: five dilations in the 11 x 11 x 11 patch, each kept
// to bins over 2, then paint; a later (stronger) seed wins where regions
// overlap, as Cellpose's scatter_reduce amax.
__global__ void grow_and_paint(const std::int64_t* seeds, const std::int32_t* hist, Geometry g,
                               std::uint32_t* painted) {
  __shared__ std::uint8_t grows[kPatchVolume];
  __shared__ std::uint8_t region[kPatchVolume];
  __shared__ std::uint8_t a[kPatchVolume];
  const int s = blockIdx.x;
  const std::int64_t c0 = seeds[s] - ((kPatch / 2) * g.hp + kPatch / 2) * g.wp - kPatch / 2;
  const auto offset = [&](int i) {
    return (static_cast<std::int64_t>(i / (kPatch * kPatch)) * g.hp + i / kPatch % kPatch) * g.wp + i % kPatch;
  };
  for (int i = threadIdx.x; i < kPatchVolume; i += blockDim.x) {
    grows[i] = hist[c0 + offset(i)] > 2;
    region[i] = i == kPatchVolume / 2;
  }
  __syncthreads();
  for (int step = 0; step < 5; ++step) {
    dilate_axis(region, a, kPatch * kPatch);
    dilate_axis(a, region, kPatch);
    dilate_axis(region, a, 1);
    for (int i = threadIdx.x; i < kPatchVolume; i += blockDim.x) region[i] = a[i] && grows[i];
    __syncthreads();
  }
  for (int i = threadIdx.x; i < kPatchVolume; i += blockDim.x) {
    if (region[i]) atomicMax(painted + c0 + offset(i), static_cast<std::uint32_t>(s + 1));
  }
}

// ---- holes and small masks -------------------------------------------------------

struct Boxes3 {
  std::vector<int> z0, z1, y0, y1, x0, x1;
};

__global__ void boxes_kernel(const std::uint32_t* labels, Geometry g, int* b) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const std::int64_t plane = static_cast<std::int64_t>(g.h) * g.w;
  if (i >= g.d * plane) return;
  const std::uint32_t l = labels[i];
  if (!l) return;
  const int z = static_cast<int>(i / plane), y = static_cast<int>(i % plane / g.w), x = static_cast<int>(i % g.w);
  atomicMin(b + 6 * l, z);
  atomicMax(b + 6 * l + 1, z + 1);
  atomicMin(b + 6 * l + 2, y);
  atomicMax(b + 6 * l + 3, y + 1);
  atomicMin(b + 6 * l + 4, x);
  atomicMax(b + 6 * l + 5, x + 1);
}

// Boxes of labels 1..count as (z0, z1, y0, y1, x0, x1), six ints a label;
// an absent label has z0 >= z1.
std::vector<int> boxes(const std::uint32_t* labels, const Geometry& g, std::uint32_t count, cudaStream_t s) {
  std::vector<int> init(6 * (static_cast<std::size_t>(count) + 1));
  for (std::size_t l = 0; l <= count; ++l) {
    for (int k = 0; k < 6; k += 2) {
      init[6 * l + k] = 0x7fffffff;
      init[6 * l + k + 1] = 0;
    }
  }
  DeviceBuffer<int> b(init.size(), s);
  b.upload(init, s);
  boxes_kernel<<<blocks_for(static_cast<std::size_t>(g.d) * g.h * g.w), kThreads, 0, s>>>(labels, g, b.get());
  check_launch();
  return b.download(s);
}

// One block per label: flood the background of its box from the box's six
// faces (6-connected, as fill_voids in 3-D), then claim what stayed
// unreached. Where boxes nest, the larger box (the enclosing mask) wins, as
// Cellpose's sequential fill.
__global__ void fill_label_holes(const std::uint32_t* labels, Geometry g, const int* box, const std::int64_t* offset,
                                 std::uint8_t* reach, unsigned long long* claim) {
  const std::uint32_t l = blockIdx.x + 1;
  const int* b = box + 6 * l;
  const int bz = b[0], by = b[2], bx = b[4], bd = b[1] - b[0], bh = b[3] - b[2], bw = b[5] - b[4];
  if (bd <= 0) return;
  const std::int64_t area = static_cast<std::int64_t>(bh) * bw, volume = area * bd;
  std::uint8_t* r = reach + offset[l];
  __shared__ int changed;
  const auto at = [&](std::int64_t k) {
    return ((bz + k / area) * static_cast<std::int64_t>(g.h) + by + k % area / bw) * g.w + bx + k % bw;
  };
  // 2 = voxel of l, 1 = reached background, 0 = not (yet) reached
  for (std::int64_t k = threadIdx.x; k < volume; k += blockDim.x) {
    const std::int64_t z = k / area, y = k % area / bw, x = k % bw;
    const bool face = z == 0 || y == 0 || x == 0 || z == bd - 1 || y == bh - 1 || x == bw - 1;
    r[k] = labels[at(k)] == l ? 2 : (face ? 1 : 0);
  }
  __syncthreads();
  for (;;) {
    if (threadIdx.x == 0) changed = 0;
    __syncthreads();
    for (std::int64_t k = threadIdx.x; k < volume; k += blockDim.x) {
      if (r[k] != 0) continue;
      const std::int64_t z = k / area, y = k % area / bw, x = k % bw;
      if ((z > 0 && r[k - area] == 1) || (z + 1 < bd && r[k + area] == 1) || (y > 0 && r[k - bw] == 1) ||
          (y + 1 < bh && r[k + bw] == 1) || (x > 0 && r[k - 1] == 1) || (x + 1 < bw && r[k + 1] == 1)) {
        r[k] = 1;
        changed = 1;
      }
    }
    __syncthreads();
    if (!changed) break;
    __syncthreads();
  }
  for (std::int64_t k = threadIdx.x; k < volume; k += blockDim.x) {
    if (r[k] == 0) atomicMax(claim + at(k), (static_cast<unsigned long long>(volume) << 32) | l);
  }
}

std::uint32_t fill_holes_and_remove_small(std::uint32_t* labels, const Geometry& g, std::uint32_t count, int min_size,
                                          cudaStream_t s) {
  const std::int64_t n = static_cast<std::int64_t>(g.d) * g.h * g.w;
  if (min_size > 0 && count) count = remove_small(labels, n, count, min_size, s);
  if (!count) return 0;
  const std::vector<int> b = boxes(labels, g, count, s);
  std::vector<std::int64_t> offset(count + 2, 0);
  for (std::uint32_t l = 1; l <= count; ++l) {
    const int* e = &b[6 * l];
    const std::int64_t volume =
        e[1] > e[0] ? static_cast<std::int64_t>(e[1] - e[0]) * (e[3] - e[2]) * (e[5] - e[4]) : 0;
    offset[l + 1] = offset[l] + volume;
  }
  DeviceBuffer<int> db(b.size(), s);
  db.upload(b, s);
  DeviceBuffer<std::int64_t> doff(offset.size(), s);
  doff.upload(offset, s);
  DeviceBuffer<std::uint8_t> reach(static_cast<std::size_t>(std::max<std::int64_t>(offset[count + 1], 1)), s);
  DeviceBuffer<unsigned long long> claim(n, s);
  claim.zero(s);
  fill_label_holes<<<count, 512, 0, s>>>(labels, g, db.get(), doff.get(), reach.get(), claim.get());
  check_launch();
  apply_claims<<<blocks_for(n), kThreads, 0, s>>>(labels, n, claim.get());
  check_launch();
  if (min_size > 0) return remove_small(labels, n, count, min_size, s);
  const Tables t = tables(labels, n, count, s);
  return relabel(labels, n, t, {}, s);
}

}  // namespace

std::uint32_t masks_from_flows_3d(const DeviceFlows3D& f, std::uint32_t* labels, const Params& p,
                                  cuda::StreamView stream) {
  const cudaStream_t s = stream.value();
  if (f.depth < 0 || f.height < 0 || f.width < 0) throw Error(Errc::invalid_argument, "negative stack size");
  check_params(p);
  const Geometry g{f.depth, f.height, f.width, f.depth + 2 * kPad, f.height + 2 * kPad, f.width + 2 * kPad};
  const std::int64_t n = static_cast<std::int64_t>(g.d) * g.h * g.w;
  if (n == 0) return 0;
  if (n >= (std::int64_t{1} << 32))
    throw Error(Errc::invalid_argument, "stacks of 2^32 voxels or more are not supported");
  check_finite({f.dz, f.dy, f.dx, f.cellprob}, n, s);
  CPIPC_CUDA_TRY(cudaMemsetAsync(labels, 0, n * sizeof(std::uint32_t), s));
  const auto policy = thrust::cuda::par.on(s);

  // Foreground voxels, raster order.
  DeviceBuffer<std::int64_t> pixels(n, s);
  const std::int64_t fg =
      thrust::copy_if(policy, thrust::counting_iterator<std::int64_t>(0), thrust::counting_iterator<std::int64_t>(n),
                      pixels.get(), IsForeground{f.cellprob, p.cellprob_threshold}) -
      pixels.get();
  if (fg == 0) return 0;

  // Follow the flows into a histogram of final positions.
  const auto scale = [](int len) { return len > 1 ? static_cast<float>(2.0 / (len - 1)) : 0.0f; };
  DeviceBuffer<float4> field(static_cast<std::size_t>(g.d + 2) * (g.h + 2) * (g.w + 2), s);
  field.zero(s);
  make_field<<<blocks_for(n), kThreads, 0, s>>>(f.dz, f.dy, f.dx, f.cellprob, p.cellprob_threshold, g, scale(g.d),
                                                scale(g.h), scale(g.w), field.get());
  check_launch();
  const std::size_t bins = static_cast<std::size_t>(g.dp * g.hp * g.wp);
  DeviceBuffer<std::int32_t> hist(bins, s);
  DeviceBuffer<std::int64_t> bin(fg, s);
  hist.zero(s);
  const auto last = [](int len) { return static_cast<float>(std::max(len - 1, 1)); };
  follow<<<blocks_for(fg), kThreads, 0, s>>>(pixels.get(), fg, field.get(), g, last(g.d), last(g.h), last(g.w), p.niter,
                                             bin.get(), hist.get());
  check_launch();
  field = DeviceBuffer<float4>();

  // Seeds: raster order, then torch's (unstable) sort by count, on the host.
  std::int64_t ns = 0;
  DeviceBuffer<std::int64_t> seeds;
  {
    DeviceBuffer<std::uint8_t> peak(bins, s);
    mark_peaks<<<blocks_for(bins), kThreads, 0, s>>>(hist.get(), g, peak.get());
    check_launch();
    DeviceBuffer<std::int64_t> all(bins, s);
    ns = thrust::copy_if(policy, thrust::counting_iterator<std::int64_t>(0),
                         thrust::counting_iterator<std::int64_t>(static_cast<std::int64_t>(bins)), all.get(),
                         IsPeak{peak.get()}) -
         all.get();
    if (ns == 0) return 0;
    std::vector<std::int64_t> seed_list = all.download(s, ns);
    sort_seeds_by_count(seed_list, hist.get(), s);
    seeds = DeviceBuffer<std::int64_t>(seed_list.size(), s);
    seeds.upload(seed_list, s);
  }

  DeviceBuffer<std::uint32_t> painted(bins, s);
  painted.zero(s);
  grow_and_paint<<<static_cast<unsigned>(ns), 256, 0, s>>>(seeds.get(), hist.get(), g, painted.get());
  check_launch();
  take_labels<<<blocks_for(fg), kThreads, 0, s>>>(pixels.get(), bin.get(), fg, painted.get(), labels);
  check_launch();

  // Large masks out, renumber; no flow-error QC in 3-D (as Cellpose).
  const Tables t = tables(labels, n, static_cast<std::uint32_t>(ns), s);
  std::vector<bool> drop(ns + 1, false);
  const double big = static_cast<double>(g.d) * g.h * g.w * p.max_size_fraction;
  for (std::int64_t l = 1; l <= ns; ++l) drop[l] = static_cast<double>(t.sizes[l]) > big;
  std::uint32_t count = relabel(labels, n, t, drop, s);
  count = fill_holes_and_remove_small(labels, g, count, p.min_size, s);
  CPIPC_CUDA_TRY(cudaStreamSynchronize(s));
  return count;
}

Labels3D masks_from_flows_3d_via_device(const Flows3D& f, const Params& p) {
  const std::size_t n = static_cast<std::size_t>(f.depth) * f.height * f.width;
  if (f.depth < 0 || f.height < 0 || f.width < 0 || f.dz.size() != n || f.dy.size() != n || f.dx.size() != n ||
      f.cellprob.size() != n) {
    throw Error(Errc::invalid_argument, "flows and cellprob must all be " + std::to_string(f.depth) + " x " +
                                            std::to_string(f.height) + " x " + std::to_string(f.width));
  }
  Labels3D out;
  out.depth = f.depth;
  out.height = f.height;
  out.width = f.width;
  out.data.assign(n, 0);
  if (n == 0) return out;
  DeviceBuffer<float> dz(n), dy(n), dx(n), cp(n);
  DeviceBuffer<std::uint32_t> labels(n);
  CPIPC_CUDA_TRY(cudaMemcpy(dz.get(), f.dz.data(), n * 4, cudaMemcpyHostToDevice));
  CPIPC_CUDA_TRY(cudaMemcpy(dy.get(), f.dy.data(), n * 4, cudaMemcpyHostToDevice));
  CPIPC_CUDA_TRY(cudaMemcpy(dx.get(), f.dx.data(), n * 4, cudaMemcpyHostToDevice));
  CPIPC_CUDA_TRY(cudaMemcpy(cp.get(), f.cellprob.data(), n * 4, cudaMemcpyHostToDevice));
  out.count = masks_from_flows_3d(DeviceFlows3D{dz.get(), dy.get(), dx.get(), cp.get(), f.depth, f.height, f.width},
                                  labels.get(), p, nullptr);
  CPIPC_CUDA_TRY(cudaMemcpy(out.data.data(), labels.get(), n * 4, cudaMemcpyDeviceToHost));
  return out;
}

}  // namespace cpipc::dynamics::gpu
