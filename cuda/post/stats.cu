#include <cuda_runtime_api.h>
#include <math_constants.h>
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/iterator/constant_iterator.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/permutation_iterator.h>
#include <thrust/reduce.h>
#include <thrust/scan.h>
#include <thrust/sort.h>

#include <limits>
#include <string>

#include "cpipc/post/detail/object_sums.hpp"
#include "../runtime/check.cuh"
#include "cpipc/cuda/device.hpp"
#include "cpipc/cuda/post.hpp"
#include "cpipc/error.hpp"
#include "on_device.cuh"

namespace cpipc::cuda {

namespace {

using post::detail::ObjectSums;

// A mask pixel with a 4-neighbour outside its object or the image
// (skimage.measure.perimeter's border), as stats.cpp.
__global__ void border_pixels(const std::uint32_t* lab, std::uint8_t* border, int h, int w) {
  const std::size_t n = static_cast<std::size_t>(h) * w;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint32_t o = lab[i];
    const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
    border[i] = o != 0 && (y == 0 || y + 1 == h || x == 0 || x + 1 == w || lab[i - w] != o || lab[i + w] != o ||
                           lab[i - 1] != o || lab[i + 1] != o);
  }
}

// Each border pixel's weight class from its border neighbours of the same
// object: 0 none, 1 one, 2 sqrt(2), 3 (1 + sqrt(2)) / 2 (stats.cpp's table).
__global__ void perimeter_classes(const std::uint32_t* lab, const std::uint8_t* border, std::uint8_t* cls, int h,
                                  int w) {
  const std::size_t n = static_cast<std::size_t>(h) * w;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    cls[i] = 0;
    if (!border[i]) continue;
    const std::uint32_t o = lab[i];
    const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
    const auto same = [&](std::size_t j) { return border[j] && lab[j] == o; };
    const bool up = y > 0, down = y + 1 < h, left = x > 0, right = x + 1 < w;
    const int edges = (up && same(i - w)) + (down && same(i + w)) + (left && same(i - 1)) + (right && same(i + 1));
    const int corners = (up && left && same(i - w - 1)) + (up && right && same(i - w + 1)) +
                        (down && left && same(i + w - 1)) + (down && right && same(i + w + 1));
    const int code = 1 + 2 * edges + 10 * corners;
    cls[i] = (code == 5 || code == 7 || code == 15 || code == 17 || code == 25 || code == 27) ? 1
             : (code == 21 || code == 33)                                                     ? 2
             : (code == 13 || code == 23)                                                     ? 3
                                                                                              : 0;
  }
}

// One thread per object walks its pixels in raster order (the sort was
// stable): the same additions, in the same order, as stats.cpp.
__global__ void gather(const std::uint32_t* labels_sorted, const std::uint32_t* pixels, const std::int64_t* offsets,
                       const std::int64_t* counts, std::size_t objects, const std::uint8_t* cls, const float* intensity,
                       int channels, int h, int w, ObjectSums* sums, double* sum_i, float* min_i, float* max_i) {
  for (std::size_t k = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; k < objects;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    ObjectSums s;
    s.label = labels_sorted[offsets[k]];
    s.bbox_y0 = h;
    s.bbox_x0 = w;
    for (int c = 0; c < channels; ++c) {
      sum_i[k * channels + c] = 0.0;
      min_i[k * channels + c] = CUDART_INF_F;
      max_i[k * channels + c] = -CUDART_INF_F;
    }
    for (std::int64_t p = offsets[k]; p < offsets[k] + counts[k]; ++p) {
      const std::size_t i = pixels[p];
      const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
      ++s.area;
      s.sum_y += y;
      s.sum_x += x;
      s.bbox_y0 = min(s.bbox_y0, y);
      s.bbox_x0 = min(s.bbox_x0, x);
      s.bbox_y1 = max(s.bbox_y1, y + 1);
      s.bbox_x1 = max(s.bbox_x1, x + 1);
      s.perimeter_one += cls[i] == 1;
      s.perimeter_sqrt2 += cls[i] == 2;
      s.perimeter_half += cls[i] == 3;
      for (int c = 0; c < channels; ++c) {
        const float v = intensity[i * channels + c];
        sum_i[k * channels + c] += v;
        float& lo = min_i[k * channels + c];
        float& hi = max_i[k * channels + c];
        lo = v < lo ? v : lo;  // std::min(lo, v), NaN included
        hi = hi < v ? v : hi;  // std::max(hi, v)
      }
    }
    sums[k] = s;
  }
}

struct InMask {
  const std::uint32_t* lab;
  __device__ bool operator()(std::uint32_t i) const { return lab[i] != 0; }
};

unsigned blocks_for(std::size_t n) { return static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535)); }

}  // namespace

std::vector<post::ObjectStats> object_stats(const void* labels, ipc::DType dtype, int height, int width,
                                            const float* intensity, int channels, StreamView stream) {
  if (height < 0 || width < 0) throw Error(Errc::invalid_argument, "object_stats: negative image size");
  if (dtype != ipc::kUInt16 && dtype != ipc::kUInt32) {
    throw Error(Errc::invalid_argument,
                "object_stats on the GPU takes uint16 or uint32 labels, not " + to_string(dtype));
  }
  if (intensity && channels < 1) throw Error(Errc::invalid_argument, "object_stats: channels must be at least 1");
  const int c = intensity ? channels : 0;
  const std::size_t n = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  if (n == 0) return {};
  if (n > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(Errc::invalid_argument, "object_stats on the GPU takes at most 2^32 pixels");
  }
  const cudaStream_t s = stream.value();
  const auto policy = thrust::cuda::par.on(s);
  return detail::thrust_errors_as_cpipc("object_stats", [&]() -> std::vector<post::ObjectStats> {
    thrust::device_vector<std::uint32_t> lab(n);
    if (dtype == ipc::kUInt16) {
      detail::widen<<<blocks_for(n), 256, 0, s>>>(static_cast<const std::uint16_t*>(labels), lab.data().get(), n);
    } else {
      detail::widen<<<blocks_for(n), 256, 0, s>>>(static_cast<const std::uint32_t*>(labels), lab.data().get(), n);
    }
    thrust::device_vector<std::uint8_t> border(n);
    thrust::device_vector<std::uint8_t> cls(n);
    border_pixels<<<blocks_for(n), 256, 0, s>>>(lab.data().get(), border.data().get(), height, width);
    perimeter_classes<<<blocks_for(n), 256, 0, s>>>(lab.data().get(), border.data().get(), cls.data().get(), height,
                                                    width);
    CPIPC_CUDA_TRY(cudaGetLastError());

    // Mask pixels in raster order, then grouped by label (stable: raster
    // order kept within each object).
    thrust::device_vector<std::uint32_t> pixels(n);
    const auto end = thrust::copy_if(policy, thrust::counting_iterator<std::uint32_t>(0),
                                     thrust::counting_iterator<std::uint32_t>(static_cast<std::uint32_t>(n)),
                                     pixels.begin(), InMask{lab.data().get()});
    const std::size_t m = static_cast<std::size_t>(end - pixels.begin());
    if (m == 0) return {};
    pixels.resize(m);
    thrust::device_vector<std::uint32_t> keys(m);
    thrust::copy(policy, thrust::make_permutation_iterator(lab.begin(), pixels.begin()),
                 thrust::make_permutation_iterator(lab.begin(), pixels.end()), keys.begin());
    thrust::stable_sort_by_key(policy, keys.begin(), keys.end(), pixels.begin());

    thrust::device_vector<std::uint32_t> unique(m);
    thrust::device_vector<std::int64_t> counts(m);
    const auto ends = thrust::reduce_by_key(policy, keys.begin(), keys.end(),
                                            thrust::constant_iterator<std::int64_t>(1), unique.begin(), counts.begin());
    const std::size_t objects = static_cast<std::size_t>(ends.first - unique.begin());
    thrust::device_vector<std::int64_t> offsets(objects);
    thrust::exclusive_scan(policy, counts.begin(), counts.begin() + static_cast<std::ptrdiff_t>(objects),
                           offsets.begin());

    thrust::device_vector<ObjectSums> sums(objects);
    thrust::device_vector<double> sum_i(objects * c);
    thrust::device_vector<float> min_i(objects * c);
    thrust::device_vector<float> max_i(objects * c);
    gather<<<blocks_for(objects), 256, 0, s>>>(
        keys.data().get(), pixels.data().get(), offsets.data().get(), counts.data().get(), objects, cls.data().get(),
        intensity, c, height, width, sums.data().get(), sum_i.data().get(), min_i.data().get(), max_i.data().get());
    CPIPC_CUDA_TRY(cudaGetLastError());
    CPIPC_CUDA_TRY(cudaStreamSynchronize(s));

    std::vector<ObjectSums> h_sums(objects);
    std::vector<double> h_sum(objects * c);
    std::vector<float> h_min(objects * c), h_max(objects * c);
    thrust::copy(sums.begin(), sums.end(), h_sums.begin());
    thrust::copy(sum_i.begin(), sum_i.end(), h_sum.begin());
    thrust::copy(min_i.begin(), min_i.end(), h_min.begin());
    thrust::copy(max_i.begin(), max_i.end(), h_max.begin());
    std::vector<post::ObjectStats> out;
    out.reserve(objects);
    for (std::size_t k = 0; k < objects; ++k) {
      out.push_back(post::detail::finish(h_sums[k], h_sum.data() + k * c, h_min.data() + k * c, h_max.data() + k * c,
                                         static_cast<std::size_t>(c)));
    }
    return out;
  });
}

std::vector<post::ObjectStats> object_stats_of_device_labels(const void* labels, ipc::DType dtype, int height,
                                                             int width, const float* intensity, int channels,
                                                             StreamView stream) {
  if (height < 0 || width < 0) throw Error(Errc::invalid_argument, "object_stats: negative image size");
  const std::size_t n = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  return detail::thrust_errors_as_cpipc("object_stats", [&]() -> std::vector<post::ObjectStats> {
    thrust::device_vector<float> d_image;
    if (intensity) d_image.assign(intensity, intensity + n * static_cast<std::size_t>(channels));
    return object_stats(labels, dtype, height, width, intensity ? d_image.data().get() : nullptr, channels, stream);
  });
}

std::vector<post::ObjectStats> object_stats_from_host(const std::uint32_t* labels, int height, int width,
                                                      const float* intensity, int channels, int ordinal) {
  if (height < 0 || width < 0) throw Error(Errc::invalid_argument, "object_stats: negative image size");
  detail::use_device(ordinal);
  const std::size_t n = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  return detail::thrust_errors_as_cpipc("object_stats", [&]() -> std::vector<post::ObjectStats> {
    const thrust::device_vector<std::uint32_t> d_labels(labels, labels + n);
    return object_stats_of_device_labels(d_labels.data().get(), ipc::kUInt32, height, width, intensity, channels,
                                         nullptr);
  });
}

}  // namespace cpipc::cuda
