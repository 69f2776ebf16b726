// Cellpose's dynamics on the GPU: flows to masks in device memory. Every step
// mirrors the CPU backend (src/dynamics) and Cellpose's order; float work is
// compiled with --fmad=false so rounding matches the CPU and Cellpose. Only
// per-label tables (a few values per object) and the seed list cross to the
// host, where their tiny sorts run with libstdc++'s std::sort as torch does.
#include <cuda_runtime_api.h>
#include <thrust/copy.h>
#include <thrust/execution_policy.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/logical.h>

#include <algorithm>
#include <cmath>

#include "../runtime/buffer.cuh"
#include "../runtime/check.cuh"
#include "cpipc/dynamics/cuda.hpp"
#include "cpipc/error.hpp"
#include "masks_detail.cuh"

namespace cpipc::dynamics::gpu {

namespace {

// ---- flow following --------------------------------------------------------

__global__ void make_field(const float* dy, const float* dx, const float* cp, float thr, int h, int w, float sx,
                           float sy, float* fx, float* fy) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::int64_t>(h) * w) return;
  const std::int64_t y = i / w, x = i % w;
  const std::int64_t k = (y + 1) * (w + 2) + x + 1;
  const bool fg = cp[i] > thr;
  fx[k] = (fg ? dx[i] : 0.0f) / 5.0f * sx;
  fy[k] = (fg ? dy[i] : 0.0f) / 5.0f * sy;
}

__global__ void follow(const std::int64_t* pixels, std::int64_t n, const float* fx, const float* fy, int h, int w,
                       float lx, float ly, int niter, std::int32_t* bin, std::int32_t* hist) {
  const std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (k >= n) return;
  const std::int64_t p = pixels[k];
  float gy = h == 1 ? -1.0f : static_cast<float>(p / w) / ly * 2.0f - 1.0f;
  float gx = w == 1 ? -1.0f : static_cast<float>(p % w) / lx * 2.0f - 1.0f;
  const float fw = static_cast<float>(w), fh = static_cast<float>(h);
  const int stride = w + 2;
  for (int t = 0; t < niter; ++t) {
    const float ix = ((gx + 1.0f) * fw - 1.0f) * 0.5f;
    const float iy = ((gy + 1.0f) * fh - 1.0f) * 0.5f;
    int xi = static_cast<int>(ix);
    int yi = static_cast<int>(iy);
    xi -= ix < static_cast<float>(xi) ? 1 : 0;
    yi -= iy < static_cast<float>(yi) ? 1 : 0;
    const float fx0 = static_cast<float>(xi), fy0 = static_cast<float>(yi);
    const float wx1 = ix - fx0, wy1 = iy - fy0;
    const float wx0 = (fx0 + 1.0f) - ix, wy0 = (fy0 + 1.0f) - iy;
    const std::int64_t i00 = static_cast<std::int64_t>(yi + 1) * stride + (xi + 1);
    const float w00 = wx0 * wy0, w01 = wx1 * wy0, w10 = wx0 * wy1, w11 = wx1 * wy1;
    const float ddx = ((__ldg(fx + i00) * w00 + __ldg(fx + i00 + 1) * w01) + __ldg(fx + i00 + stride) * w10) +
                      __ldg(fx + i00 + stride + 1) * w11;
    const float ddy = ((__ldg(fy + i00) * w00 + __ldg(fy + i00 + 1) * w01) + __ldg(fy + i00 + stride) * w10) +
                      __ldg(fy + i00 + stride + 1) * w11;
    const float nx = gx + ddx, ny = gy + ddy;
    gx = nx < -1.0f ? -1.0f : (nx > 1.0f ? 1.0f : nx);
    gy = ny < -1.0f ? -1.0f : (ny > 1.0f ? 1.0f : ny);
  }
  const int x = static_cast<int>((gx + 1.0f) * 0.5f * lx);
  const int y = static_cast<int>((gy + 1.0f) * 0.5f * ly);
  const int by = min(max(y + kPad, 0), h + kPad - 1);
  const int bx = min(max(x + kPad, 0), w + kPad - 1);
  const std::int32_t b = by * (w + 2 * kPad) + bx;
  bin[k] = b;
  atomicAdd(hist + b, 1);
}

// ---- seeds ------------------------------------------------------------------

__global__ void mark_peaks(const std::int32_t* hist, int hp, int wp, std::uint8_t* peak) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::int64_t>(hp) * wp) return;
  const int y = static_cast<int>(i / wp), x = static_cast<int>(i % wp);
  const std::int32_t v = hist[i];
  bool is = v > 10;
  for (int yy = max(0, y - 2); yy <= min(hp - 1, y + 2) && is; ++yy) {
    for (int xx = max(0, x - 2); xx <= min(wp - 1, x + 2); ++xx) {
      if (hist[static_cast<std::int64_t>(yy) * wp + xx] > v) {
        is = false;
        break;
      }
    }
  }
  peak[i] = is;
}

// One block per seed: grow in the 11 x 11 patch, then paint; a later (stronger)
// seed wins where regions overlap, as Cellpose's scatter_reduce amax.
__global__ void grow_and_paint(const std::int32_t* seeds, const std::int32_t* hist, int wp, std::uint32_t* painted) {
  __shared__ std::int32_t patch[kPatch * kPatch];
  __shared__ std::uint8_t region[kPatch * kPatch];
  __shared__ std::uint8_t next[kPatch * kPatch];
  const int s = blockIdx.x, t = threadIdx.x;
  const int cy = seeds[s] / wp, cx = seeds[s] % wp;
  const int py = t / kPatch, px = t % kPatch;
  const bool mine = t < kPatch * kPatch;
  const std::int64_t g = static_cast<std::int64_t>(cy + py - kPatch / 2) * wp + (cx + px - kPatch / 2);
  if (mine) {
    patch[t] = hist[g];
    region[t] = t == (kPatch / 2) * kPatch + kPatch / 2;
  }
  __syncthreads();
  for (int step = 0; step < 5; ++step) {
    if (mine) {
      bool any = false;
      for (int dy = max(0, py - 1); dy <= min(kPatch - 1, py + 1); ++dy) {
        for (int dx = max(0, px - 1); dx <= min(kPatch - 1, px + 1); ++dx) any = any || region[dy * kPatch + dx];
      }
      next[t] = any && patch[t] > 2;
    }
    __syncthreads();
    if (mine) region[t] = next[t];
    __syncthreads();
  }
  if (mine && region[t]) atomicMax(painted + g, static_cast<std::uint32_t>(s + 1));
}

// ---- per-label tables ----------------------------------------------------------

__global__ void boxes_kernel(const std::uint32_t* labels, int h, int w, int* y0, int* y1, int* x0, int* x1) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::int64_t>(h) * w) return;
  const std::uint32_t l = labels[i];
  if (!l) return;
  const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
  atomicMin(y0 + l, y);
  atomicMax(y1 + l, y + 1);
  atomicMin(x0 + l, x);
  atomicMax(x1 + l, x + 1);
}

struct Boxes {
  std::vector<int> y0, y1, x0, x1;
};

Boxes boxes(const std::uint32_t* labels, int h, int w, std::uint32_t count, cudaStream_t s) {
  DeviceBuffer<int> y0(count + 1, s), y1(count + 1, s), x0(count + 1, s), x1(count + 1, s);
  y0.fill_bytes(0x7f, s);
  x0.fill_bytes(0x7f, s);
  y1.zero(s);
  x1.zero(s);
  boxes_kernel<<<blocks_for(static_cast<std::size_t>(h) * w), kThreads, 0, s>>>(labels, h, w, y0.get(), y1.get(),
                                                                                x0.get(), x1.get());
  check_launch();
  return {y0.download(s), y1.download(s), x0.download(s), x1.download(s)};
}

// ---- flow-error QC ---------------------------------------------------------------

__global__ void centre_sums(const std::uint32_t* labels, int h, int w, const int* y0, const int* x0, double* sy,
                            double* sx) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::int64_t>(h) * w) return;
  const std::uint32_t l = labels[i];
  if (!l) return;
  atomicAdd(sy + l, static_cast<double>(static_cast<int>(i / w) - y0[l]));
  atomicAdd(sx + l, static_cast<double>(static_cast<int>(i % w) - x0[l]));
}

// Nearest mask pixel to the rounded mean (relative to the box), first in
// raster order on ties: a 64-bit key (distance, raster index).
__global__ void nearest_pixel(const std::uint32_t* labels, int h, int w, const int* y0, const int* x0, const int* my,
                              const int* mx, unsigned long long* best) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::int64_t>(h) * w) return;
  const std::uint32_t l = labels[i];
  if (!l) return;
  const long long dy = static_cast<int>(i / w) - y0[l] - my[l];
  const long long dx = static_cast<int>(i % w) - x0[l] - mx[l];
  const unsigned long long key =
      (static_cast<unsigned long long>(dy * dy + dx * dx) << 32) | static_cast<std::uint32_t>(i);
  atomicMin(best + l, key);
}

__global__ void add_sources(double* temp, const unsigned long long* centre, std::uint32_t count) {
  const std::uint32_t l = blockIdx.x * blockDim.x + threadIdx.x + 1;
  if (l <= count) temp[centre[l] & 0xffffffffull] += 1.0;
}

// One Jacobi step: the sum over the 3 x 3 neighbours of the same mask, / 9,
// summed in the CPU backend's order (rows, then columns) so doubles match.
__global__ void diffuse(const std::uint32_t* labels, int h, int w, const double* t, double* next) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::int64_t>(h) * w) return;
  const std::uint32_t l = labels[i];
  if (!l) return;
  const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
  double rows[3];
  for (int r = 0; r < 3; ++r) {
    const int yy = y + r - 1;
    double v[3] = {0.0, 0.0, 0.0};
    if (yy >= 0 && yy < h) {
      for (int c = 0; c < 3; ++c) {
        const int xx = x + c - 1;
        const std::int64_t j = static_cast<std::int64_t>(yy) * w + xx;
        if (xx >= 0 && xx < w && labels[j] == l) v[c] = t[j];
      }
    }
    rows[r] = (v[0] + v[1]) + v[2];
  }
  next[i] = ((rows[0] + rows[1]) + rows[2]) / 9.0;
}

__global__ void flow_error_sums(const std::uint32_t* labels, int h, int w, const double* t, const float* dy,
                                const float* dx, double* err) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::int64_t>(h) * w) return;
  const std::uint32_t l = labels[i];
  if (!l) return;
  const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
  const double up = y > 0 ? t[i - w] : 0.0, down = y + 1 < h ? t[i + w] : 0.0;
  const double left = x > 0 ? t[i - 1] : 0.0, right = x + 1 < w ? t[i + 1] : 0.0;
  const double gy = down - up, gx = right - left;
  const double norm = 1e-60 + sqrt(gy * gy + gx * gx);
  const double ey = gy / norm - static_cast<double>(dy[i] / 5.0f);
  const double ex = gx / norm - static_cast<double>(dx[i] / 5.0f);
  atomicAdd(err + l, ey * ey + ex * ex);
}

std::uint32_t quality_control(std::uint32_t* labels, int h, int w, std::uint32_t count, const DeviceFlows& f,
                              float threshold, cudaStream_t s) {
  const std::int64_t n = static_cast<std::int64_t>(h) * w;
  const Boxes b = boxes(labels, h, w, count, s);
  int niter = 0;
  for (std::uint32_t l = 1; l <= count; ++l) {
    if (b.y1[l] > b.y0[l]) niter = std::max(niter, 2 * ((b.y1[l] - b.y0[l]) + (b.x1[l] - b.x0[l]) + 2));
  }
  DeviceBuffer<int> dy0(count + 1, s), dx0(count + 1, s), dmy(count + 1, s), dmx(count + 1, s);
  dy0.upload(b.y0, s);
  dx0.upload(b.x0, s);
  DeviceBuffer<double> sy(count + 1, s), sx(count + 1, s);
  sy.zero(s);
  sx.zero(s);
  centre_sums<<<blocks_for(n), kThreads, 0, s>>>(labels, h, w, dy0.get(), dx0.get(), sy.get(), sx.get());
  check_launch();
  const std::vector<double> hy = sy.download(s), hx = sx.download(s);
  const Tables t = tables(labels, n, count, s);
  std::vector<int> my(count + 1, 0), mx(count + 1, 0);
  for (std::uint32_t l = 1; l <= count; ++l) {
    if (!t.sizes[l]) continue;
    my[l] = static_cast<int>(std::nearbyint(hy[l] / static_cast<double>(t.sizes[l])));
    mx[l] = static_cast<int>(std::nearbyint(hx[l] / static_cast<double>(t.sizes[l])));
  }
  dmy.upload(my, s);
  dmx.upload(mx, s);
  // The rounded mean if it is in the mask (distance 0 wins), else the nearest mask pixel.
  DeviceBuffer<unsigned long long> centre(count + 1, s);
  centre.fill_bytes(0xff, s);
  nearest_pixel<<<blocks_for(n), kThreads, 0, s>>>(labels, h, w, dy0.get(), dx0.get(), dmy.get(), dmx.get(),
                                                   centre.get());
  check_launch();

  DeviceBuffer<double> temp(n, s), next(n, s);
  temp.zero(s);
  next.zero(s);
  for (int it = 0; it < niter; ++it) {
    add_sources<<<(count + kThreads - 1) / kThreads, kThreads, 0, s>>>(temp.get(), centre.get(), count);
    diffuse<<<blocks_for(n), kThreads, 0, s>>>(labels, h, w, temp.get(), next.get());
    std::swap(temp, next);
  }
  check_launch();
  DeviceBuffer<double> err(count + 1, s);
  err.zero(s);
  flow_error_sums<<<blocks_for(n), kThreads, 0, s>>>(labels, h, w, temp.get(), f.dy, f.dx, err.get());
  check_launch();
  const std::vector<double> e = err.download(s);
  std::vector<bool> drop(count + 1, false);
  for (std::uint32_t l = 1; l <= count; ++l) {
    drop[l] = t.sizes[l] && e[l] / static_cast<double>(t.sizes[l]) > static_cast<double>(threshold);
  }
  return relabel(labels, n, t, drop, s);
}

// ---- holes and small masks ------------------------------------------------------

// One block per label: flood fill the background of its box from the box's
// border (4-connected), then claim what stayed unreached. Where boxes nest,
// the larger box (the enclosing mask) wins, as Cellpose's sequential fill.
__global__ void fill_label_holes(const std::uint32_t* labels, int w, const int* y0, const int* y1, const int* x0,
                                 const int* x1, const std::int64_t* offset, std::uint8_t* reach,
                                 unsigned long long* claim) {
  const std::uint32_t l = blockIdx.x + 1;
  const int by = y0[l], bx = x0[l], bh = y1[l] - y0[l], bw = x1[l] - x0[l];
  if (bh <= 0) return;
  const std::int64_t area = static_cast<std::int64_t>(bh) * bw;
  std::uint8_t* r = reach + offset[l];
  __shared__ int changed;
  // 2 = pixel of l, 1 = reached background, 0 = not (yet) reached
  for (std::int64_t k = threadIdx.x; k < area; k += blockDim.x) {
    const int y = static_cast<int>(k / bw), x = static_cast<int>(k % bw);
    const bool is_l = labels[static_cast<std::int64_t>(by + y) * w + (bx + x)] == l;
    r[k] = is_l ? 2 : ((y == 0 || x == 0 || y == bh - 1 || x == bw - 1) ? 1 : 0);
  }
  __syncthreads();
  for (;;) {
    if (threadIdx.x == 0) changed = 0;
    __syncthreads();
    for (std::int64_t k = threadIdx.x; k < area; k += blockDim.x) {
      if (r[k] != 0) continue;
      const int y = static_cast<int>(k / bw), x = static_cast<int>(k % bw);
      if ((y > 0 && r[k - bw] == 1) || (y + 1 < bh && r[k + bw] == 1) || (x > 0 && r[k - 1] == 1) ||
          (x + 1 < bw && r[k + 1] == 1)) {
        r[k] = 1;
        changed = 1;
      }
    }
    __syncthreads();
    if (!changed) break;
    __syncthreads();
  }
  for (std::int64_t k = threadIdx.x; k < area; k += blockDim.x) {
    if (r[k] == 0) {
      const std::int64_t g = static_cast<std::int64_t>(by + k / bw) * w + (bx + k % bw);
      atomicMax(claim + g, (static_cast<unsigned long long>(area) << 32) | l);
    }
  }
}

std::uint32_t fill_holes_and_remove_small(std::uint32_t* labels, int h, int w, std::uint32_t count, int min_size,
                                          cudaStream_t s) {
  const std::int64_t n = static_cast<std::int64_t>(h) * w;
  if (min_size > 0 && count) count = remove_small(labels, n, count, min_size, s);
  if (count) {
    const Boxes b = boxes(labels, h, w, count, s);
    std::vector<std::int64_t> offset(count + 2, 0);
    for (std::uint32_t l = 1; l <= count; ++l) {
      const std::int64_t area =
          b.y1[l] > b.y0[l] ? static_cast<std::int64_t>(b.y1[l] - b.y0[l]) * (b.x1[l] - b.x0[l]) : 0;
      offset[l + 1] = offset[l] + area;
    }
    DeviceBuffer<int> y0(count + 1, s), y1(count + 1, s), x0(count + 1, s), x1(count + 1, s);
    y0.upload(b.y0, s);
    y1.upload(b.y1, s);
    x0.upload(b.x0, s);
    x1.upload(b.x1, s);
    DeviceBuffer<std::int64_t> doff(offset.size(), s);
    doff.upload(offset, s);
    DeviceBuffer<std::uint8_t> reach(static_cast<std::size_t>(std::max<std::int64_t>(offset[count + 1], 1)), s);
    DeviceBuffer<unsigned long long> claim(n, s);
    claim.zero(s);
    fill_label_holes<<<count, 512, 0, s>>>(labels, w, y0.get(), y1.get(), x0.get(), x1.get(), doff.get(), reach.get(),
                                           claim.get());
    check_launch();
    apply_claims<<<blocks_for(n), kThreads, 0, s>>>(labels, n, claim.get());
    check_launch();
  }
  if (!count) return 0;
  if (min_size > 0) return remove_small(labels, n, count, min_size, s);
  const Tables t = tables(labels, n, count, s);
  return relabel(labels, n, t, {}, s);
}

}  // namespace

std::uint32_t masks_from_flows(const DeviceFlows& f, std::uint32_t* labels, const Params& p, cuda::StreamView stream) {
  const cudaStream_t s = stream.value();
  const int h = f.height, w = f.width;
  if (h < 0 || w < 0) throw Error(Errc::invalid_argument, "negative image size");
  check_params(p);
  const std::int64_t n = static_cast<std::int64_t>(h) * w;
  if (n == 0) return 0;
  const auto policy = thrust::cuda::par.on(s);
  check_finite({f.dy, f.dx, f.cellprob}, n, s);
  CPIPC_CUDA_TRY(cudaMemsetAsync(labels, 0, n * sizeof(std::uint32_t), s));

  // Foreground pixels, raster order.
  DeviceBuffer<std::int64_t> pixels(n, s);
  const std::int64_t fg =
      thrust::copy_if(policy, thrust::counting_iterator<std::int64_t>(0), thrust::counting_iterator<std::int64_t>(n),
                      pixels.get(), IsForeground{f.cellprob, p.cellprob_threshold}) -
      pixels.get();
  if (fg == 0) return 0;

  // Follow the flows into a histogram of final positions.
  const float sx = w > 1 ? static_cast<float>(2.0 / (w - 1)) : 0.0f;
  const float sy = h > 1 ? static_cast<float>(2.0 / (h - 1)) : 0.0f;
  DeviceBuffer<float> fx(static_cast<std::size_t>(h + 2) * (w + 2), s), fy(fx.size(), s);
  fx.zero(s);
  fy.zero(s);
  make_field<<<blocks_for(n), kThreads, 0, s>>>(f.dy, f.dx, f.cellprob, p.cellprob_threshold, h, w, sx, sy, fx.get(),
                                                fy.get());
  check_launch();
  const int hp = h + 2 * kPad, wp = w + 2 * kPad;
  DeviceBuffer<std::int32_t> hist(static_cast<std::size_t>(hp) * wp, s), bin(fg, s);
  hist.zero(s);
  follow<<<blocks_for(fg), kThreads, 0, s>>>(pixels.get(), fg, fx.get(), fy.get(), h, w,
                                             static_cast<float>(std::max(w - 1, 1)),
                                             static_cast<float>(std::max(h - 1, 1)), p.niter, bin.get(), hist.get());
  check_launch();

  // Seeds: raster order, then torch's (unstable) sort by count, on the host.
  DeviceBuffer<std::uint8_t> peak(hist.size(), s);
  mark_peaks<<<blocks_for(hist.size()), kThreads, 0, s>>>(hist.get(), hp, wp, peak.get());
  check_launch();
  DeviceBuffer<std::int32_t> seeds(hist.size(), s);
  const auto ns = thrust::copy_if(policy, thrust::counting_iterator<std::int32_t>(0),
                                  thrust::counting_iterator<std::int32_t>(static_cast<std::int32_t>(hist.size())),
                                  seeds.get(), IsPeak{peak.get()}) -
                  seeds.get();
  if (ns == 0) return 0;
  std::vector<std::int32_t> seed_list = seeds.download(s, ns);
  sort_seeds_by_count(seed_list, hist.get(), s);
  seeds.upload(seed_list, s);

  DeviceBuffer<std::uint32_t> painted(hist.size(), s);
  painted.zero(s);
  grow_and_paint<<<static_cast<unsigned>(ns), 128, 0, s>>>(seeds.get(), hist.get(), wp, painted.get());
  check_launch();
  take_labels<<<blocks_for(fg), kThreads, 0, s>>>(pixels.get(), bin.get(), fg, painted.get(), labels);
  check_launch();

  // Large masks out, renumber.
  Tables t = tables(labels, n, static_cast<std::uint32_t>(ns), s);
  std::vector<bool> drop(ns + 1, false);
  const double big = static_cast<double>(h) * w * p.max_size_fraction;
  for (std::int64_t l = 1; l <= ns; ++l) drop[l] = static_cast<double>(t.sizes[l]) > big;
  std::uint32_t count = relabel(labels, n, t, drop, s);

  if (count && p.flow_threshold > 0) count = quality_control(labels, h, w, count, f, p.flow_threshold, s);
  count = fill_holes_and_remove_small(labels, h, w, count, p.min_size, s);
  CPIPC_CUDA_TRY(cudaStreamSynchronize(s));
  return count;
}

Labels masks_from_flows_via_device(const Flows& f, const Params& p) {
  const std::size_t n = static_cast<std::size_t>(f.height) * static_cast<std::size_t>(f.width);
  if (f.dy.size() != n || f.dx.size() != n || f.cellprob.size() != n) {
    throw Error(Errc::invalid_argument,
                "flows and cellprob must all be " + std::to_string(f.height) + " x " + std::to_string(f.width));
  }
  Labels out;
  out.height = f.height;
  out.width = f.width;
  out.data.assign(n, 0);
  if (n == 0) return out;
  DeviceBuffer<float> dy(n), dx(n), cp(n);
  DeviceBuffer<std::uint32_t> labels(n);
  CPIPC_CUDA_TRY(cudaMemcpy(dy.get(), f.dy.data(), n * 4, cudaMemcpyHostToDevice));
  CPIPC_CUDA_TRY(cudaMemcpy(dx.get(), f.dx.data(), n * 4, cudaMemcpyHostToDevice));
  CPIPC_CUDA_TRY(cudaMemcpy(cp.get(), f.cellprob.data(), n * 4, cudaMemcpyHostToDevice));
  out.count = masks_from_flows(DeviceFlows{dy.get(), dx.get(), cp.get(), f.height, f.width}, labels.get(), p, nullptr);
  CPIPC_CUDA_TRY(cudaMemcpy(out.data.data(), labels.get(), n * 4, cudaMemcpyDeviceToHost));
  return out;
}

bool available(std::string* why) noexcept {
  int n = 0;
  const cudaError_t st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess || n == 0) {
    if (why) *why = st != cudaSuccess ? std::string(cudaGetErrorString(st)) : "no CUDA device";
    cudaGetLastError();
    return false;
  }
  return true;
}

}  // namespace cpipc::dynamics::gpu
