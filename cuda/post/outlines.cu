#include <cuda_runtime_api.h>
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/functional.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/scan.h>
#include <thrust/sort.h>
#include <thrust/transform_scan.h>
#include <thrust/unique.h>

#include <limits>
#include <string>

#include "../runtime/check.cuh"
#include "cpipc/cuda/device.hpp"
#include "cpipc/cuda/post.hpp"
#include "cpipc/error.hpp"
#include "on_device.cuh"

namespace cpipc::cuda {

namespace {

struct Box {
  int y0, x0, y1, x1;  // end exclusive
};

enum : std::uint8_t { kOther = 0, kObject = 1, kOutside = 2 };

__global__ void label_boxes(const std::uint32_t* lab, int h, int w, const std::uint32_t* labels, std::size_t count,
                            int* y0, int* x0, int* y1, int* x1) {
  const std::size_t n = static_cast<std::size_t>(h) * w;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint32_t l = lab[i];
    if (l == 0) continue;
    // The object's index: labels is sorted and holds l.
    std::size_t lo = 0, hi = count;
    while (lo < hi) {
      const std::size_t mid = (lo + hi) / 2;
      if (labels[mid] < l) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
    atomicMin(y0 + lo, y);
    atomicMin(x0 + lo, x);
    atomicMax(y1 + lo, y + 1);
    atomicMax(x1 + lo, x + 1);
  }
}

// One block per object, in its box padded by one cell, as outlines.cpp: the
// cells that are not the object and are 4-connected to the padding are the
// outside (flooded here by relaxation until nothing changes: the same set
// as the CPU's stack flood, a connected component); object cells with a
// 4-neighbour outside are outline pixels.
__global__ void outline_objects(const std::uint32_t* lab, int w, const std::uint32_t* labels, const int* y0,
                                const int* x0, const int* y1, const int* x1, const std::size_t* cell_offset,
                                std::uint8_t* cells_all, std::uint8_t* outlines) {
  const std::size_t k = blockIdx.x;
  const std::uint32_t o = labels[k];
  const int bw = x1[k] - x0[k] + 2, bh = y1[k] - y0[k] + 2;
  const std::size_t nc = static_cast<std::size_t>(bw) * bh;
  std::uint8_t* cells = cells_all + cell_offset[k];
  for (std::size_t c = threadIdx.x; c < nc; c += blockDim.x) {
    const int cy = static_cast<int>(c / bw), cx = static_cast<int>(c % bw);
    const bool rim = cy == 0 || cx == 0 || cy == bh - 1 || cx == bw - 1;
    cells[c] =
        rim ? kOutside : (lab[static_cast<std::size_t>(y0[k] + cy - 1) * w + (x0[k] + cx - 1)] == o ? kObject : kOther);
  }
  __syncthreads();
  for (bool changed = true; changed;) {
    bool mine = false;
    for (std::size_t c = threadIdx.x; c < nc; c += blockDim.x) {
      if (cells[c] != kOther) continue;  // never on the rim: the rim starts outside
      if (cells[c - bw] == kOutside || cells[c + bw] == kOutside || cells[c - 1] == kOutside ||
          cells[c + 1] == kOutside) {
        cells[c] = kOutside;
        mine = true;
      }
    }
    changed = __syncthreads_or(mine);
  }
  for (std::size_t c = threadIdx.x; c < nc; c += blockDim.x) {
    if (cells[c] != kObject) continue;
    if (cells[c - bw] == kOutside || cells[c + bw] == kOutside || cells[c - 1] == kOutside ||
        cells[c + 1] == kOutside) {
      const int cy = static_cast<int>(c / bw), cx = static_cast<int>(c % bw);
      outlines[static_cast<std::size_t>(y0[k] + cy - 1) * w + (x0[k] + cx - 1)] = 1;
    }
  }
}

struct BoxCells {
  const int *y0, *x0, *y1, *x1;
  __device__ std::size_t operator()(std::size_t k) const {
    return static_cast<std::size_t>(x1[k] - x0[k] + 2) * static_cast<std::size_t>(y1[k] - y0[k] + 2);
  }
};

}  // namespace

std::vector<std::uint8_t> outline_mask(const void* labels, ipc::DType dtype, int height, int width, StreamView stream) {
  if (height < 0 || width < 0) throw Error(Errc::invalid_argument, "outline_mask: negative image size");
  if (dtype != ipc::kUInt16 && dtype != ipc::kUInt32) {
    throw Error(Errc::invalid_argument,
                "outline_mask on the GPU takes uint16 or uint32 labels, not " + to_string(dtype));
  }
  const std::size_t n = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  std::vector<std::uint8_t> out(n, 0);
  if (n == 0) return out;
  const cudaStream_t s = stream.value();
  const auto policy = thrust::cuda::par.on(s);
  return detail::thrust_errors_as_cpipc("outline_mask", [&]() -> std::vector<std::uint8_t> {
    const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535));
    thrust::device_vector<std::uint32_t> lab(n);
    if (dtype == ipc::kUInt16) {
      detail::widen<<<blocks, 256, 0, s>>>(static_cast<const std::uint16_t*>(labels), lab.data().get(), n);
    } else {
      detail::widen<<<blocks, 256, 0, s>>>(static_cast<const std::uint32_t*>(labels), lab.data().get(), n);
    }
    CPIPC_CUDA_TRY(cudaGetLastError());
    thrust::device_vector<std::uint32_t> present(n);
    thrust::copy(policy, lab.begin(), lab.end(), present.begin());
    thrust::sort(policy, present.begin(), present.end());
    present.erase(thrust::unique(policy, present.begin(), present.end()), present.end());
    if (!present.empty() && present.front() == 0) present.erase(present.begin());
    const std::size_t count = present.size();
    thrust::device_vector<std::uint8_t> outlines(n, 0);
    if (count > 0) {
      thrust::device_vector<int> y0(count, height), x0(count, width), y1(count, 0), x1(count, 0);
      label_boxes<<<blocks, 256, 0, s>>>(lab.data().get(), height, width, present.data().get(), count, y0.data().get(),
                                         x0.data().get(), y1.data().get(), x1.data().get());
      CPIPC_CUDA_TRY(cudaGetLastError());
      thrust::device_vector<std::size_t> offset(count);
      thrust::transform_exclusive_scan(policy, thrust::counting_iterator<std::size_t>(0),
                                       thrust::counting_iterator<std::size_t>(count), offset.begin(),
                                       BoxCells{y0.data().get(), x0.data().get(), y1.data().get(), x1.data().get()},
                                       std::size_t{0}, thrust::plus<std::size_t>());
      CPIPC_CUDA_TRY(cudaStreamSynchronize(s));
      const std::size_t last = offset.back();
      const int ly0 = y0.back(), lx0 = x0.back(), ly1 = y1.back(), lx1 = x1.back();
      thrust::device_vector<std::uint8_t> cells(last + static_cast<std::size_t>(lx1 - lx0 + 2) * (ly1 - ly0 + 2));
      if (count > std::numeric_limits<unsigned>::max()) throw Error(Errc::invalid_argument, "too many objects");
      outline_objects<<<static_cast<unsigned>(count), 256, 0, s>>>(
          lab.data().get(), width, present.data().get(), y0.data().get(), x0.data().get(), y1.data().get(),
          x1.data().get(), offset.data().get(), cells.data().get(), outlines.data().get());
      CPIPC_CUDA_TRY(cudaGetLastError());
    }
    CPIPC_CUDA_TRY(cudaStreamSynchronize(s));
    thrust::copy(outlines.begin(), outlines.end(), out.begin());
    return out;
  });
}

std::vector<std::uint8_t> outline_mask_from_host(const std::uint32_t* labels, int height, int width, int ordinal) {
  if (height < 0 || width < 0) throw Error(Errc::invalid_argument, "outline_mask: negative image size");
  detail::use_device(ordinal);
  const std::size_t n = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  if (n == 0) return {};
  return detail::thrust_errors_as_cpipc("outline_mask", [&]() -> std::vector<std::uint8_t> {
    const thrust::device_vector<std::uint32_t> lab(labels, labels + n);
    return outline_mask(lab.data().get(), ipc::kUInt32, height, width, nullptr);
  });
}

}  // namespace cpipc::cuda
