// 3-D flow following: every foreground voxel takes `niter` Euler steps along
// the network's flow field, sampled trilinearly the way Cellpose does it in
// 3-D (torch grid_sample on a 5-D input, align_corners=False, zeros outside;
// torch's scalar CPU kernel), in float32 and in grid_sample's normalised
// [-1, 1] coordinates, with its products and sums in its order so that
// rounding matches.
#include <emmintrin.h>
#include <immintrin.h>
#include <xmmintrin.h>

#include <algorithm>

#include "cpipc/dynamics/dynamics.hpp"
#include "flows_detail.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

namespace {

constexpr int kBlock = 32;  // voxels stepped together: independent chains hide latency

// One Euler step of one position (x, y, z, 0 in an SSE vector, normalised)
// through the field. The field holds (fx, fy, fz, 0) per voxel with a
// one-voxel zero border (row stride sy, plane stride sz voxels), so one load
// reads a corner's three channels and the channels are the lanes:
// lane-wise, every multiply and add is the scalar kernel's, in its order
// (no FMA):
//   out = 0; out += v(z0,y0,x0) tnw; += v(z0,y0,x1) tne; += v(z0,y1,x0) tsw;
//   += v(z0,y1,x1) tse; then the same four at z1 (bnw, bne, bsw, bse),
// with weights such as tnw = ((x1 - ix) (y1 - iy)) (z1 - iz).
__attribute__((always_inline)) inline void step(const float* field, std::int64_t sy, std::int64_t sz, __m128 size,
                                                __m128& g) {
  const __m128 one = _mm_set1_ps(1.0f), minus_one = _mm_set1_ps(-1.0f), half = _mm_set1_ps(0.5f);
  const __m128 i = _mm_mul_ps(_mm_sub_ps(_mm_mul_ps(_mm_add_ps(g, one), size), one), half);
  // floor: truncate, then step back where the value is below it
  __m128i i0 = _mm_cvttps_epi32(i);
  i0 = _mm_add_epi32(i0, _mm_castps_si128(_mm_cmplt_ps(i, _mm_cvtepi32_ps(i0))));
  const __m128 f0 = _mm_cvtepi32_ps(i0);
  const __m128 w1 = _mm_sub_ps(i, f0);                   // ix - x0, iy - y0, iz - z0
  const __m128 w0 = _mm_sub_ps(_mm_add_ps(f0, one), i);  // x1 - ix, y1 - iy, z1 - iz
  alignas(16) std::int32_t c[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(c), i0);
  // (x weight) * (y weight) for the plane's corners (x0y0, x1y0, x0y1,
  // x1y1), then * the z weight of each plane
  const __m128 u = _mm_unpacklo_ps(w0, w1);  // x1 - ix, ix - x0, y1 - iy, iy - y0
  const __m128 xy = _mm_mul_ps(_mm_movelh_ps(u, u), _mm_shuffle_ps(u, u, _MM_SHUFFLE(3, 3, 2, 2)));
  const __m128 top = _mm_mul_ps(xy, _mm_shuffle_ps(w0, w0, _MM_SHUFFLE(2, 2, 2, 2)));
  const __m128 bottom = _mm_mul_ps(xy, _mm_shuffle_ps(w1, w1, _MM_SHUFFLE(2, 2, 2, 2)));
  const float* p = field + 4 * ((c[2] + 1) * sz + (c[1] + 1) * sy + (c[0] + 1));
  __m128 d = _mm_mul_ps(_mm_load_ps(p), _mm_shuffle_ps(top, top, _MM_SHUFFLE(0, 0, 0, 0)));
  d = _mm_add_ps(d, _mm_mul_ps(_mm_load_ps(p + 4), _mm_shuffle_ps(top, top, _MM_SHUFFLE(1, 1, 1, 1))));
  d = _mm_add_ps(d, _mm_mul_ps(_mm_load_ps(p + 4 * sy), _mm_shuffle_ps(top, top, _MM_SHUFFLE(2, 2, 2, 2))));
  d = _mm_add_ps(d, _mm_mul_ps(_mm_load_ps(p + 4 * sy + 4), _mm_shuffle_ps(top, top, _MM_SHUFFLE(3, 3, 3, 3))));
  p += 4 * sz;
  d = _mm_add_ps(d, _mm_mul_ps(_mm_load_ps(p), _mm_shuffle_ps(bottom, bottom, _MM_SHUFFLE(0, 0, 0, 0))));
  d = _mm_add_ps(d, _mm_mul_ps(_mm_load_ps(p + 4), _mm_shuffle_ps(bottom, bottom, _MM_SHUFFLE(1, 1, 1, 1))));
  d = _mm_add_ps(d, _mm_mul_ps(_mm_load_ps(p + 4 * sy), _mm_shuffle_ps(bottom, bottom, _MM_SHUFFLE(2, 2, 2, 2))));
  d = _mm_add_ps(d, _mm_mul_ps(_mm_load_ps(p + 4 * sy + 4), _mm_shuffle_ps(bottom, bottom, _MM_SHUFFLE(3, 3, 3, 3))));
  g = _mm_max_ps(_mm_min_ps(_mm_add_ps(g, d), one), minus_one);
}

// Steps `m` positions `niter` times, time outermost and four positions in
// one loop body: their long dependency chains overlap (a third faster than
// one at a time).
void step_block(const float* field, int depth, int height, int width, __m128* g, int m, int niter) {
  const __m128 size = _mm_setr_ps(static_cast<float>(width), static_cast<float>(height), static_cast<float>(depth), 0);
  const std::int64_t sy = width + 2, sz = sy * (height + 2);
  for (int t = 0; t < niter; ++t) {
    int j = 0;
    for (; j + 4 <= m; j += 4) {
      step(field, sy, sz, size, g[j]);
      step(field, sy, sz, size, g[j + 1]);
      step(field, sy, sz, size, g[j + 2]);
      step(field, sy, sz, size, g[j + 3]);
    }
    for (; j < m; ++j) step(field, sy, sz, size, g[j]);
  }
}

// One corner's (fx, fy, fz, 0) for two positions: a's in the low lane.
__attribute__((target("avx2"), always_inline)) inline __m256 corner_pair(const float* a, const float* b,
                                                                         std::int64_t off) {
  return _mm256_set_m128(_mm_load_ps(b + off), _mm_load_ps(a + off));
}

// step() for two positions at once, one per 128-bit lane of an AVX vector
// (x, y, z, 0 each): lane by lane the same operations in the same order, so
// the same results, with half the arithmetic instructions. Each lane reads
// its own corners: a 16-byte load per corner and lane.
__attribute__((target("avx2"), always_inline)) inline void step_pair(const float* field, std::int64_t sy,
                                                                     std::int64_t sz, __m256 size, __m256& g) {
  const __m256 one = _mm256_set1_ps(1.0f), minus_one = _mm256_set1_ps(-1.0f), half = _mm256_set1_ps(0.5f);
  const __m256 i = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(g, one), size), one), half);
  __m256i i0 = _mm256_cvttps_epi32(i);
  i0 = _mm256_add_epi32(i0, _mm256_castps_si256(_mm256_cmp_ps(i, _mm256_cvtepi32_ps(i0), _CMP_LT_OQ)));
  const __m256 f0 = _mm256_cvtepi32_ps(i0);
  const __m256 w1 = _mm256_sub_ps(i, f0);
  const __m256 w0 = _mm256_sub_ps(_mm256_add_ps(f0, one), i);
  alignas(32) std::int32_t c[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(c), i0);
  const __m256 u = _mm256_unpacklo_ps(w0, w1);
  const __m256 xy =
      _mm256_mul_ps(_mm256_shuffle_ps(u, u, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(u, u, _MM_SHUFFLE(3, 3, 2, 2)));
  const __m256 top = _mm256_mul_ps(xy, _mm256_shuffle_ps(w0, w0, _MM_SHUFFLE(2, 2, 2, 2)));
  const __m256 bottom = _mm256_mul_ps(xy, _mm256_shuffle_ps(w1, w1, _MM_SHUFFLE(2, 2, 2, 2)));
  const float* a = field + 4 * ((c[2] + 1) * sz + (c[1] + 1) * sy + (c[0] + 1));
  const float* b = field + 4 * ((c[6] + 1) * sz + (c[5] + 1) * sy + (c[4] + 1));
  __m256 d = _mm256_mul_ps(corner_pair(a, b, 0), _mm256_shuffle_ps(top, top, _MM_SHUFFLE(0, 0, 0, 0)));
  d = _mm256_add_ps(d, _mm256_mul_ps(corner_pair(a, b, 4), _mm256_shuffle_ps(top, top, _MM_SHUFFLE(1, 1, 1, 1))));
  d = _mm256_add_ps(d, _mm256_mul_ps(corner_pair(a, b, 4 * sy), _mm256_shuffle_ps(top, top, _MM_SHUFFLE(2, 2, 2, 2))));
  d = _mm256_add_ps(d,
                    _mm256_mul_ps(corner_pair(a, b, 4 * sy + 4), _mm256_shuffle_ps(top, top, _MM_SHUFFLE(3, 3, 3, 3))));
  const std::int64_t below = 4 * sz;
  d = _mm256_add_ps(
      d, _mm256_mul_ps(corner_pair(a, b, below), _mm256_shuffle_ps(bottom, bottom, _MM_SHUFFLE(0, 0, 0, 0))));
  d = _mm256_add_ps(
      d, _mm256_mul_ps(corner_pair(a, b, below + 4), _mm256_shuffle_ps(bottom, bottom, _MM_SHUFFLE(1, 1, 1, 1))));
  d = _mm256_add_ps(
      d, _mm256_mul_ps(corner_pair(a, b, below + 4 * sy), _mm256_shuffle_ps(bottom, bottom, _MM_SHUFFLE(2, 2, 2, 2))));
  d = _mm256_add_ps(d, _mm256_mul_ps(corner_pair(a, b, below + 4 * sy + 4),
                                     _mm256_shuffle_ps(bottom, bottom, _MM_SHUFFLE(3, 3, 3, 3))));
  g = _mm256_max_ps(_mm256_min_ps(_mm256_add_ps(g, d), one), minus_one);
}

// step_block with AVX: pairs of positions, two pairs per loop body. An odd
// last position takes the SSE step.
__attribute__((target("avx2"))) void step_block_avx2(const float* field, int depth, int height, int width, __m128* g,
                                                     int m, int niter) {
  const __m256 size =
      _mm256_setr_ps(static_cast<float>(width), static_cast<float>(height), static_cast<float>(depth), 0,
                     static_cast<float>(width), static_cast<float>(height), static_cast<float>(depth), 0);
  const __m128 size4 = _mm256_castps256_ps128(size);
  const std::int64_t sy = width + 2, sz = sy * (height + 2);
  __m256 pairs[kBlock / 2];
  const int np = m / 2;
  for (int j = 0; j < np; ++j) pairs[j] = _mm256_set_m128(g[2 * j + 1], g[2 * j]);
  for (int t = 0; t < niter; ++t) {
    int j = 0;
    for (; j + 2 <= np; j += 2) {
      step_pair(field, sy, sz, size, pairs[j]);
      step_pair(field, sy, sz, size, pairs[j + 1]);
    }
    for (; j < np; ++j) step_pair(field, sy, sz, size, pairs[j]);
    if (m % 2) step(field, sy, sz, size4, g[m - 1]);
  }
  for (int j = 0; j < np; ++j) {
    g[2 * j] = _mm256_castps256_ps128(pairs[j]);
    g[2 * j + 1] = _mm256_extractf128_ps(pairs[j], 1);
  }
}

}  // namespace

namespace detail {

void follow_flows_3d(const Flows3D& f, std::span<const std::int64_t> pixels, float cellprob_threshold, int niter,
                     float* field, std::int64_t* bins) {
  const int d = f.depth, h = f.height, w = f.width;
  const auto n = static_cast<std::int64_t>(pixels.size());
  // An axis of length 1 cannot move (Cellpose would divide by zero there).
  const float sx = w > 1 ? static_cast<float>(2.0 / (w - 1)) : 0.0f;
  const float sy = h > 1 ? static_cast<float>(2.0 / (h - 1)) : 0.0f;
  const float sz = d > 1 ? static_cast<float>(2.0 / (d - 1)) : 0.0f;
  const float lx = static_cast<float>(std::max(w - 1, 1));
  const float ly = static_cast<float>(std::max(h - 1, 1));
  const float lz = static_cast<float>(std::max(d - 1, 1));

  // The field Cellpose samples: dP * foreground / 5, in normalised units,
  // with a zero border.
  const std::int64_t stride_y = w + 2;
#pragma omp parallel for schedule(static)
  for (std::int64_t zy = 0; zy < static_cast<std::int64_t>(d + 2) * (h + 2); ++zy) {
    const int z = static_cast<int>(zy / (h + 2)) - 1, y = static_cast<int>(zy % (h + 2)) - 1;
    float* row = field + 4 * (zy * stride_y);
    if (z < 0 || z == d || y < 0 || y == h) {
      std::fill(row, row + 4 * stride_y, 0.0f);
      continue;
    }
    std::fill(row, row + 4, 0.0f);
    std::fill(row + 4 * (stride_y - 1), row + 4 * stride_y, 0.0f);
    for (int x = 0; x < w; ++x) {
      const std::int64_t i = (static_cast<std::int64_t>(z) * h + y) * w + x;
      const bool fg = f.cellprob[i] > cellprob_threshold;
      float* v = row + 4 * (x + 1);
      v[0] = (fg ? f.dx[i] : 0.0f) / 5.0f * sx;
      v[1] = (fg ? f.dy[i] : 0.0f) / 5.0f * sy;
      v[2] = (fg ? f.dz[i] : 0.0f) / 5.0f * sz;
      v[3] = 0.0f;
    }
  }

  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  const bool avx2 = use_avx2();
  const std::int64_t hp = h + 2 * kHistPad, wp = w + 2 * kHistPad;
  const std::int64_t plane = static_cast<std::int64_t>(h) * w;
#pragma omp parallel for schedule(dynamic, 16)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t first = blk * kBlock;
    const int m = static_cast<int>(std::min<std::int64_t>(kBlock, n - first));
    __m128 g[kBlock];
    for (int j = 0; j < m; ++j) {
      const std::int64_t p = pixels[first + j];
      const float gz = d == 1 ? -1.0f : static_cast<float>(p / plane) / lz * 2.0f - 1.0f;
      const float gy = h == 1 ? -1.0f : static_cast<float>(p % plane / w) / ly * 2.0f - 1.0f;
      const float gx = w == 1 ? -1.0f : static_cast<float>(p % w) / lx * 2.0f - 1.0f;
      g[j] = _mm_setr_ps(gx, gy, gz, 0.0f);
    }
    if (avx2) {
      step_block_avx2(field, d, h, w, g, m, niter);
    } else {
      step_block(field, d, h, w, g, m, niter);
    }
    for (int j = 0; j < m; ++j) {
      alignas(16) float v[4];
      _mm_store_ps(v, g[j]);
      const auto x = static_cast<std::int64_t>((v[0] + 1.0f) * 0.5f * lx);
      const auto y = static_cast<std::int64_t>((v[1] + 1.0f) * 0.5f * ly);
      const auto z = static_cast<std::int64_t>((v[2] + 1.0f) * 0.5f * lz);
      bins[first + j] = (std::clamp<std::int64_t>(z + kHistPad, 0, d + kHistPad - 1) * hp +
                         std::clamp<std::int64_t>(y + kHistPad, 0, h + kHistPad - 1)) *
                            wp +
                        std::clamp<std::int64_t>(x + kHistPad, 0, w + kHistPad - 1);
    }
  }
}

}  // namespace detail

}  // namespace cpipc::dynamics
