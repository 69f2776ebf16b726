// Flow following: every foreground pixel takes `niter` Euler steps along the
// network's flow field, sampled bilinearly the way Cellpose 4 does it
// (torch grid_sample, align_corners=False, zeros outside), in float32 and in
// grid_sample's normalised [-1, 1] coordinates so that rounding matches.
#include <emmintrin.h>
#include <immintrin.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "cpipc/dynamics/dynamics.hpp"
#include "flows_detail.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

namespace {

constexpr int kBlock = 64;  // pixels stepped together: independent chains hide latency

// Steps `m` (a multiple of 4) positions, normalised as grid_sample's, `niter`
// times through the field, with the bilinear read and the clamp exactly as
// Cellpose's grid_sample loop: separate multiplies and adds in the same order
// (no FMA), so rounding matches. The field holds (fx, fy) pairs with a
// one-pixel zero border (stride width + 2): one 16-byte load reads both
// channels of two neighbouring corners, and a 4 x 4 transpose of four
// pixels' loads gives one vector per corner and channel. Plain SSE2 (every
// x86-64); gathers would be slower on CPUs with the gather microcode fix.
void step_block(const float* field, int height, int width, float* gx, float* gy, int m, int niter) {
  const __m128 one = _mm_set1_ps(1.0f), minus_one = _mm_set1_ps(-1.0f), half = _mm_set1_ps(0.5f);
  const __m128 fw = _mm_set1_ps(static_cast<float>(width)), fh = _mm_set1_ps(static_cast<float>(height));
  const std::int64_t stride = width + 2;
  // Time outermost: the groups of four are independent, so their long
  // dependency chains overlap in the pipeline.
  for (int t = 0; t < niter; ++t) {
    for (int j = 0; j < m; j += 4) {
      __m128 vx = _mm_loadu_ps(gx + j), vy = _mm_loadu_ps(gy + j);
      const __m128 ix = _mm_mul_ps(_mm_sub_ps(_mm_mul_ps(_mm_add_ps(vx, one), fw), one), half);
      const __m128 iy = _mm_mul_ps(_mm_sub_ps(_mm_mul_ps(_mm_add_ps(vy, one), fh), one), half);
      // floor: truncate, then step back where the value is below it (mask = -1)
      __m128i xi = _mm_cvttps_epi32(ix), yi = _mm_cvttps_epi32(iy);
      xi = _mm_add_epi32(xi, _mm_castps_si128(_mm_cmplt_ps(ix, _mm_cvtepi32_ps(xi))));
      yi = _mm_add_epi32(yi, _mm_castps_si128(_mm_cmplt_ps(iy, _mm_cvtepi32_ps(yi))));
      const __m128 fx0 = _mm_cvtepi32_ps(xi), fy0 = _mm_cvtepi32_ps(yi);
      const __m128 wx1 = _mm_sub_ps(ix, fx0), wy1 = _mm_sub_ps(iy, fy0);
      const __m128 wx0 = _mm_sub_ps(_mm_add_ps(fx0, one), ix), wy0 = _mm_sub_ps(_mm_add_ps(fy0, one), iy);
      alignas(16) std::int32_t xs[4], ys[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(xs), xi);
      _mm_store_si128(reinterpret_cast<__m128i*>(ys), yi);
      __m128 top[4], bottom[4];
      for (int k = 0; k < 4; ++k) {
        const float* p = field + 2 * ((static_cast<std::int64_t>(ys[k]) + 1) * stride + (xs[k] + 1));
        top[k] = _mm_loadu_ps(p);                  // fx00 fy00 fx01 fy01 of pixel k
        bottom[k] = _mm_loadu_ps(p + 2 * stride);  // fx10 fy10 fx11 fy11
      }
      _MM_TRANSPOSE4_PS(top[0], top[1], top[2], top[3]);              // fx00, fy00, fx01, fy01 of 4 pixels
      _MM_TRANSPOSE4_PS(bottom[0], bottom[1], bottom[2], bottom[3]);  // fx10, fy10, fx11, fy11
      const __m128 w00 = _mm_mul_ps(wx0, wy0), w01 = _mm_mul_ps(wx1, wy0);
      const __m128 w10 = _mm_mul_ps(wx0, wy1), w11 = _mm_mul_ps(wx1, wy1);
      __m128 dx = _mm_add_ps(_mm_mul_ps(top[0], w00), _mm_mul_ps(top[2], w01));
      dx = _mm_add_ps(_mm_add_ps(dx, _mm_mul_ps(bottom[0], w10)), _mm_mul_ps(bottom[2], w11));
      __m128 dy = _mm_add_ps(_mm_mul_ps(top[1], w00), _mm_mul_ps(top[3], w01));
      dy = _mm_add_ps(_mm_add_ps(dy, _mm_mul_ps(bottom[1], w10)), _mm_mul_ps(bottom[3], w11));
      vx = _mm_max_ps(_mm_min_ps(_mm_add_ps(vx, dx), one), minus_one);
      vy = _mm_max_ps(_mm_min_ps(_mm_add_ps(vy, dy), one), minus_one);
      _mm_storeu_ps(gx + j, vx);
      _mm_storeu_ps(gy + j, vy);
    }
  }
}

// A 4 x 4 transpose inside each 128-bit lane.
__attribute__((target("avx2"), always_inline)) inline void transpose_lanes(__m256& r0, __m256& r1, __m256& r2,
                                                                           __m256& r3) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpacklo_ps(r2, r3);
  const __m256 t2 = _mm256_unpackhi_ps(r0, r1), t3 = _mm256_unpackhi_ps(r2, r3);
  r0 = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0));
  r1 = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2));
  r2 = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(1, 0, 1, 0));
  r3 = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// step_block with eight pixels per AVX2 vector: the same operations in the
// same order, so the same results. Pixel k and k + 4 share a row of the
// lane-wise transpose. m must be a multiple of 8; the field's offsets must
// fit in int32 (2 (height + 2) (width + 2) < 2^31).
__attribute__((target("avx2"))) void step_block_avx2(const float* field, int height, int width, float* gx, float* gy,
                                                     int m, int niter) {
  const __m256 one = _mm256_set1_ps(1.0f), minus_one = _mm256_set1_ps(-1.0f), half = _mm256_set1_ps(0.5f);
  const __m256 fw = _mm256_set1_ps(static_cast<float>(width)), fh = _mm256_set1_ps(static_cast<float>(height));
  const std::int64_t stride = width + 2;
  const __m256i one_i = _mm256_set1_epi32(1), stride_v = _mm256_set1_epi32(static_cast<std::int32_t>(stride));
  const float* field_below = field + 2 * stride;
  for (int t = 0; t < niter; ++t) {
    for (int j = 0; j < m; j += 8) {
      __m256 vx = _mm256_loadu_ps(gx + j), vy = _mm256_loadu_ps(gy + j);
      const __m256 ix = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(vx, one), fw), one), half);
      const __m256 iy = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(vy, one), fh), one), half);
      __m256i xi = _mm256_cvttps_epi32(ix), yi = _mm256_cvttps_epi32(iy);
      xi = _mm256_add_epi32(xi, _mm256_castps_si256(_mm256_cmp_ps(ix, _mm256_cvtepi32_ps(xi), _CMP_LT_OQ)));
      yi = _mm256_add_epi32(yi, _mm256_castps_si256(_mm256_cmp_ps(iy, _mm256_cvtepi32_ps(yi), _CMP_LT_OQ)));
      const __m256 fx0 = _mm256_cvtepi32_ps(xi), fy0 = _mm256_cvtepi32_ps(yi);
      const __m256 wx1 = _mm256_sub_ps(ix, fx0), wy1 = _mm256_sub_ps(iy, fy0);
      const __m256 wx0 = _mm256_sub_ps(_mm256_add_ps(fx0, one), ix), wy0 = _mm256_sub_ps(_mm256_add_ps(fy0, one), iy);
      // Offsets of the top-left corners, in vector arithmetic: the scalar
      // ports stay free for the loads' addressing.
      alignas(32) std::int32_t offs[8];
      const __m256i off =
          _mm256_add_epi32(_mm256_mullo_epi32(_mm256_add_epi32(yi, one_i), stride_v), _mm256_add_epi32(xi, one_i));
      _mm256_store_si256(reinterpret_cast<__m256i*>(offs), _mm256_slli_epi32(off, 1));
      __m128 top[8], bottom[8];
      for (int k = 0; k < 8; ++k) {
        top[k] = _mm_loadu_ps(field + offs[k]);
        bottom[k] = _mm_loadu_ps(field_below + offs[k]);
      }
      __m256 a0 = _mm256_set_m128(top[4], top[0]), a1 = _mm256_set_m128(top[5], top[1]);
      __m256 a2 = _mm256_set_m128(top[6], top[2]), a3 = _mm256_set_m128(top[7], top[3]);
      __m256 b0 = _mm256_set_m128(bottom[4], bottom[0]), b1 = _mm256_set_m128(bottom[5], bottom[1]);
      __m256 b2 = _mm256_set_m128(bottom[6], bottom[2]), b3 = _mm256_set_m128(bottom[7], bottom[3]);
      transpose_lanes(a0, a1, a2, a3);  // fx00, fy00, fx01, fy01 of pixels 0-3 | 4-7
      transpose_lanes(b0, b1, b2, b3);  // fx10, fy10, fx11, fy11
      const __m256 w00 = _mm256_mul_ps(wx0, wy0), w01 = _mm256_mul_ps(wx1, wy0);
      const __m256 w10 = _mm256_mul_ps(wx0, wy1), w11 = _mm256_mul_ps(wx1, wy1);
      __m256 dx = _mm256_add_ps(_mm256_mul_ps(a0, w00), _mm256_mul_ps(a2, w01));
      dx = _mm256_add_ps(_mm256_add_ps(dx, _mm256_mul_ps(b0, w10)), _mm256_mul_ps(b2, w11));
      __m256 dy = _mm256_add_ps(_mm256_mul_ps(a1, w00), _mm256_mul_ps(a3, w01));
      dy = _mm256_add_ps(_mm256_add_ps(dy, _mm256_mul_ps(b1, w10)), _mm256_mul_ps(b3, w11));
      vx = _mm256_max_ps(_mm256_min_ps(_mm256_add_ps(vx, dx), one), minus_one);
      vy = _mm256_max_ps(_mm256_min_ps(_mm256_add_ps(vy, dy), one), minus_one);
      _mm256_storeu_ps(gx + j, vx);
      _mm256_storeu_ps(gy + j, vy);
    }
  }
}

}  // namespace

namespace detail {

bool use_avx2() {
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
  return has_avx2 && std::getenv("CPIPC_NO_AVX2") == nullptr;
}

void follow_flows(const Flows& f, std::span<const std::int64_t> pixels, float cellprob_threshold, int niter,
                  float* field, std::int32_t* out_y, std::int32_t* out_x, std::int32_t* bins) {
  const int h = f.height;
  const int w = f.width;
  const auto n = static_cast<std::int64_t>(pixels.size());
  // An axis of length 1 cannot move (Cellpose would divide by zero there).
  const float sx = w > 1 ? static_cast<float>(2.0 / (w - 1)) : 0.0f;
  const float sy = h > 1 ? static_cast<float>(2.0 / (h - 1)) : 0.0f;
  const float lx = static_cast<float>(std::max(w - 1, 1));
  const float ly = static_cast<float>(std::max(h - 1, 1));

  // The field Cellpose samples: dP * foreground / 5, in normalised units,
  // with a zero border.
  const std::int64_t stride = w + 2;
#pragma omp parallel for schedule(static)
  for (int y = -1; y <= h; ++y) {
    float* row = field + 2 * (y + 1) * stride;
    if (y < 0 || y == h) {
      std::fill(row, row + 2 * stride, 0.0f);
      continue;
    }
    row[0] = row[1] = row[2 * stride - 2] = row[2 * stride - 1] = 0.0f;
    for (int x = 0; x < w; ++x) {
      const std::int64_t i = static_cast<std::int64_t>(y) * w + x;
      const bool fg = f.cellprob[i] > cellprob_threshold;
      row[2 * (x + 1)] = (fg ? f.dx[i] : 0.0f) / 5.0f * sx;
      row[2 * (x + 1) + 1] = (fg ? f.dy[i] : 0.0f) / 5.0f * sy;
    }
  }

  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  const bool avx2 = use_avx2() && 2 * (h + 2) * stride < (std::int64_t{1} << 31);
  const int wp = w + 2 * kHistPad;
#pragma omp parallel for schedule(dynamic, 16)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t first = blk * kBlock;
    const int m = static_cast<int>(std::min<std::int64_t>(kBlock, n - first));
    float gx[kBlock], gy[kBlock];
    for (int j = 0; j < m; ++j) {
      const std::int64_t p = pixels[first + j];
      gy[j] = h == 1 ? -1.0f : static_cast<float>(p / w) / ly * 2.0f - 1.0f;
      gx[j] = w == 1 ? -1.0f : static_cast<float>(p % w) / lx * 2.0f - 1.0f;
    }
    const int mv = (m + 7) / 8 * 8;  // whole vectors: pad with a harmless start (a corner)
    for (int j = m; j < mv; ++j) gx[j] = gy[j] = -1.0f;
    if (avx2) {
      step_block_avx2(field, h, w, gx, gy, mv, niter);
    } else {
      step_block(field, h, w, gx, gy, mv, niter);
    }
    for (int j = 0; j < m; ++j) {
      const auto x = static_cast<std::int32_t>((gx[j] + 1.0f) * 0.5f * lx);
      const auto y = static_cast<std::int32_t>((gy[j] + 1.0f) * 0.5f * ly);
      if (bins) {
        bins[first + j] =
            std::clamp(y + kHistPad, 0, h + kHistPad - 1) * wp + std::clamp(x + kHistPad, 0, w + kHistPad - 1);
      } else {
        out_x[first + j] = x;
        out_y[first + j] = y;
      }
    }
  }
}

}  // namespace detail

Positions follow_flows(const Flows& f, std::span<const std::int64_t> pixels, float cellprob_threshold, int niter) {
  Positions out;
  out.y.resize(pixels.size());
  out.x.resize(pixels.size());
  std::vector<float> field(static_cast<std::size_t>(2) * (f.height + 2) * (f.width + 2));
  detail::follow_flows(f, pixels, cellprob_threshold, niter, field.data(), out.y.data(), out.x.data(), nullptr);
  return out;
}

}  // namespace cpipc::dynamics
