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

constexpr int kSlots = 32;  // voxels stepped together: independent chains hide latency
using detail::kHistPad;

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

// Where a voxel starts and which histogram bin its end falls in.
struct Geometry {
  const float* field;
  std::int64_t sy, sz;  // the field's row and plane strides, voxels
  int depth, height, width;
  float lx, ly, lz;  // extent - 1 (at least 1)
  std::int64_t plane, hp, wp;
  bool detect;  // stop at cycles
  float* ends;  // optional: end positions (x, y, z) per voxel

  __m128 start(std::int64_t p) const {
    const float gz = depth == 1 ? -1.0f : static_cast<float>(p / plane) / lz * 2.0f - 1.0f;
    const float gy = height == 1 ? -1.0f : static_cast<float>(p % plane / width) / ly * 2.0f - 1.0f;
    const float gx = width == 1 ? -1.0f : static_cast<float>(p % width) / lx * 2.0f - 1.0f;
    return _mm_setr_ps(gx, gy, gz, 0.0f);
  }
  // Voxel `i`'s end: its bin, and its position where asked.
  void end(std::int64_t i, __m128 g, std::int64_t* bins) const {
    alignas(16) float v[4];
    _mm_store_ps(v, g);
    if (ends != nullptr) std::copy(v, v + 3, ends + 3 * i);
    bins[i] = bin(v);
  }
  std::int64_t bin(const float* v) const {
    const auto x = static_cast<std::int64_t>((v[0] + 1.0f) * 0.5f * lx);
    const auto y = static_cast<std::int64_t>((v[1] + 1.0f) * 0.5f * ly);
    const auto z = static_cast<std::int64_t>((v[2] + 1.0f) * 0.5f * lz);
    return (std::clamp<std::int64_t>(z + kHistPad, 0, depth + kHistPad - 1) * hp +
            std::clamp<std::int64_t>(y + kHistPad, 0, height + kHistPad - 1)) *
               wp +
           std::clamp<std::int64_t>(x + kHistPad, 0, width + kHistPad - 1);
  }
};

// A step is a pure function of the position, so once a position comes
// back, the path is a cycle from there on and where it is after `niter`
// steps is known: k steps in, with a cycle of length L, it is where it will
// be after (niter - k) mod L more. In float32 most voxels fall into a short
// cycle around their cell's centre after a few dozen of Cellpose's 200 steps
// (on the 64x512x512 benchmark, 42 % of the steps are needed). Brent's
// algorithm finds the cycle with one saved position and one comparison a
// step; the voxel stops bit for bit where the full loop would have left it.
// A slot whose path ends takes the next voxel, so every slot's dependency
// chain stays busy.
class Path {
 public:
  enum class Next { go, save, done };  // save: the position is the new reference
  // `detect` false: all niter steps (what tests compare against).
  void start(std::int64_t first, int niter, bool detect) {
    who = first;
    steps_ = 0;
    stop_ = niter;
    power_ = detect ? 1 : 0;
    lam_ = 1;
  }
  // After a step; `repeats`: the position is bitwise the saved one.
  Next after_step(bool repeats, int niter) {
    if (++steps_ == stop_) return Next::done;
    if (power_ == 0) return Next::go;  // cycle known: walking to its end
    if (repeats) {
      stop_ = steps_ + (niter - steps_) % lam_;
      power_ = 0;
      return steps_ == stop_ ? Next::done : Next::go;
    }
    if (power_ == lam_) {
      power_ *= 2;
      lam_ = 1;
      return Next::save;
    }
    ++lam_;
    return Next::go;
  }
  std::int64_t who = 0;  // the slot's (first) voxel in its range

 private:
  int steps_ = 0, stop_ = 0;
  int power_ = 1, lam_ = 1;  // Brent's; power 0 once the cycle is known
};

inline bool same(__m128 a, __m128 b) {
  return _mm_movemask_epi8(_mm_cmpeq_epi32(_mm_castps_si128(a), _mm_castps_si128(b))) == 0xffff;
}

// Follows voxels pixels[0, n) of a range, one per slot (SSE), writing
// their bins.
void follow_range(const Geometry& geo, const std::int64_t* pixels, std::int64_t* bins, std::int64_t n, int niter) {
  const __m128 size =
      _mm_setr_ps(static_cast<float>(geo.width), static_cast<float>(geo.height), static_cast<float>(geo.depth), 0);
  __m128 pos[kSlots], saved[kSlots];
  Path path[kSlots];
  std::int64_t next = 0;
  int active = 0;
  for (; active < kSlots && next < n; ++active, ++next) {
    pos[active] = saved[active] = geo.start(pixels[next]);
    path[active].start(next, niter, geo.detect);
  }
  while (active > 0) {
    for (int j = 0; j < active; ++j) {
      step(geo.field, geo.sy, geo.sz, size, pos[j]);
      switch (path[j].after_step(same(pos[j], saved[j]), niter)) {
        case Path::Next::go:
          continue;
        case Path::Next::save:
          saved[j] = pos[j];
          continue;
        case Path::Next::done:
          break;
      }
      geo.end(path[j].who, pos[j], bins);
      if (next < n) {
        pos[j] = saved[j] = geo.start(pixels[next]);
        path[j].start(next++, niter, geo.detect);
      } else {
        --active;  // the last slot moves here and takes its step in this round
        pos[j] = pos[active], saved[j] = saved[active], path[j] = path[active];
        --j;
      }
    }
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

__attribute__((target("avx2"))) inline bool same_pair(__m256 a, __m256 b) {
  return _mm256_movemask_epi8(_mm256_cmpeq_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b))) == -1;
}

// Two voxels from pixels[first] (an odd last one with a copy of itself).
__attribute__((target("avx2"))) inline __m256 start_pair(const Geometry& geo, const std::int64_t* pixels,
                                                         std::int64_t first, std::int64_t n) {
  const __m128 a = geo.start(pixels[first]);
  return _mm256_set_m128(first + 1 < n ? geo.start(pixels[first + 1]) : a, a);
}

// follow_range with AVX2: two voxels per slot, one per 128-bit lane, which
// end together (their joint path's cycle). Its loop repeats follow_range's
// rather than sharing a template: GCC inlines into a target("avx2") function
// only callees with that attribute too, so a shared generic loop would run the
// AVX2 step through a call per voxel and lose what the pairs gain.
__attribute__((target("avx2"))) void follow_range_avx2(const Geometry& geo, const std::int64_t* pixels,
                                                       std::int64_t* bins, std::int64_t n, int niter) {
  const __m256 size =
      _mm256_setr_ps(static_cast<float>(geo.width), static_cast<float>(geo.height), static_cast<float>(geo.depth), 0,
                     static_cast<float>(geo.width), static_cast<float>(geo.height), static_cast<float>(geo.depth), 0);
  constexpr int kPairs = kSlots / 2;
  __m256 pos[kPairs], saved[kPairs];
  Path path[kPairs];
  std::int64_t next = 0;
  int active = 0;
  for (; active < kPairs && next < n; ++active, next += 2) {
    pos[active] = saved[active] = start_pair(geo, pixels, next, n);
    path[active].start(next, niter, geo.detect);
  }
  while (active > 0) {
    for (int j = 0; j < active; ++j) {
      step_pair(geo.field, geo.sy, geo.sz, size, pos[j]);
      switch (path[j].after_step(same_pair(pos[j], saved[j]), niter)) {
        case Path::Next::go:
          continue;
        case Path::Next::save:
          saved[j] = pos[j];
          continue;
        case Path::Next::done:
          break;
      }
      const std::int64_t who = path[j].who;
      geo.end(who, _mm256_castps256_ps128(pos[j]), bins);
      if (who + 1 < n) geo.end(who + 1, _mm256_extractf128_ps(pos[j], 1), bins);
      if (next < n) {
        pos[j] = saved[j] = start_pair(geo, pixels, next, n);
        path[j].start(next, niter, geo.detect);
        next += 2;
      } else {
        --active;
        pos[j] = pos[active], saved[j] = saved[active], path[j] = path[active];
        --j;
      }
    }
  }
}

}  // namespace

namespace detail {

void follow_flows_3d(const Flows3D& f, std::span<const std::int64_t> pixels, float cellprob_threshold, int niter,
                     float* field, std::int64_t* bins, float* ends, bool stop_at_cycles) {
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

  const Geometry geo{field,
                     stride_y,
                     stride_y * (h + 2),
                     d,
                     h,
                     w,
                     lx,
                     ly,
                     lz,
                     static_cast<std::int64_t>(h) * w,
                     h + 2 * kHistPad,
                     w + 2 * kHistPad,
                     stop_at_cycles,
                     ends};
  const bool avx2 = use_avx2();
  constexpr std::int64_t kRange = 4096;  // voxels a task: the slots refill within it
  const std::int64_t ranges = (n + kRange - 1) / kRange;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t r = 0; r < ranges; ++r) {
    const std::int64_t first = r * kRange, count = std::min(kRange, n - first);
    if (niter <= 0) {
      for (std::int64_t i = first; i < first + count; ++i) geo.end(i, geo.start(pixels[i]), bins);
    } else {
      // A range's voxels are numbered from 0 there: offset the outputs.
      Geometry range = geo;
      if (range.ends != nullptr) range.ends += 3 * first;
      if (avx2) {
        follow_range_avx2(range, pixels.data() + first, bins + first, count, niter);
      } else {
        follow_range(range, pixels.data() + first, bins + first, count, niter);
      }
    }
  }
}

}  // namespace detail

}  // namespace cpipc::dynamics
