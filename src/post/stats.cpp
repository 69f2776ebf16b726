#include "cpipc/post/stats.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <numbers>

#include "cpipc/error.hpp"
#include "cpipc/post/detail/object_sums.hpp"
#include "label_index.hpp"

namespace cpipc::post {

namespace {

// skimage.measure.perimeter's weights: a border pixel's code is 1 + 2 * (its
// 4-neighbours that are border pixels) + 10 * (its diagonal neighbours that
// are border pixels); codes 5, 7, 15, 17, 25, 27 weigh 1, codes 21 and 33
// sqrt(2), codes 13 and 23 (1 + sqrt(2)) / 2, every other code 0.
enum Weight : std::uint8_t { kZero, kOne, kSqrt2, kHalf };

constexpr std::array<Weight, 50> perimeter_weights() {
  std::array<Weight, 50> w{};
  for (int code : {5, 7, 15, 17, 25, 27}) w[code] = kOne;
  for (int code : {21, 33}) w[code] = kSqrt2;
  for (int code : {13, 23}) w[code] = kHalf;
  return w;
}

void append(std::string& out, double v) {
  char buf[32];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}
void append(std::string& out, float v) {
  char buf[32];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}
void append(std::string& out, std::int64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

void append_intensity_header(std::string& out, int channels) {
  for (int ch = 0; ch < channels; ++ch) {
    const std::string suffix = channels == 1 ? "" : "_c" + std::to_string(ch);
    for (const char* column : {"intensity_mean", "intensity_min", "intensity_max"}) {
      out += ',';
      out += column;
      out += suffix;
    }
  }
  out += '\n';
}

void append_intensity(std::string& out, std::uint32_t label, const std::vector<IntensityStats>& intensity,
                      int channels) {
  if (intensity.size() != static_cast<std::size_t>(channels)) {
    throw Error(Errc::invalid_argument, "stats_csv: label " + std::to_string(label) + " has " +
                                            std::to_string(intensity.size()) + " intensity channels, not " +
                                            std::to_string(channels));
  }
  for (const IntensityStats& i : intensity) {
    out += ',';
    append(out, i.mean);
    out += ',';
    append(out, i.min);
    out += ',';
    append(out, i.max);
  }
}

}  // namespace

std::vector<ObjectStats> object_stats(const std::uint32_t* labels, int height, int width, const float* intensity,
                                      int channels) {
  detail::check_image(labels, height, width, "object_stats");
  if (channels < 1) throw Error(Errc::invalid_argument, "object_stats: channels must be at least 1");
  const std::size_t h = static_cast<std::size_t>(height);
  const std::size_t w = static_cast<std::size_t>(width);
  const std::size_t c = intensity ? static_cast<std::size_t>(channels) : 0;
  const detail::LabelIndex ix = detail::index_labels(labels, h * w);
  const std::vector<std::uint32_t>& obj = ix.object_of_pixel;
  const std::size_t count = ix.labels.size();

  std::vector<detail::ObjectSums> stats(count);
  std::vector<double> sum_i(count * c, 0.0);
  std::vector<float> min_i(count * c, std::numeric_limits<float>::infinity());
  std::vector<float> max_i(count * c, -std::numeric_limits<float>::infinity());
  for (std::size_t k = 0; k < count; ++k) {
    detail::ObjectSums& s = stats[k];
    s.label = ix.labels[k];
    s.bbox_y0 = height;
    s.bbox_x0 = width;
  }
  for (std::size_t y = 0; y < h; ++y) {
    for (std::size_t x = 0; x < w; ++x) {
      const std::size_t i = y * w + x;
      if (!obj[i]) continue;
      const std::size_t k = obj[i] - 1;
      detail::ObjectSums& s = stats[k];
      ++s.area;
      s.sum_y += static_cast<std::int64_t>(y);
      s.sum_x += static_cast<std::int64_t>(x);
      s.bbox_y0 = std::min(s.bbox_y0, static_cast<int>(y));
      s.bbox_x0 = std::min(s.bbox_x0, static_cast<int>(x));
      s.bbox_y1 = std::max(s.bbox_y1, static_cast<int>(y) + 1);
      s.bbox_x1 = std::max(s.bbox_x1, static_cast<int>(x) + 1);
      for (std::size_t ch = 0; ch < c; ++ch) {
        const float v = intensity[i * c + ch];
        sum_i[k * c + ch] += v;
        min_i[k * c + ch] = std::min(min_i[k * c + ch], v);
        max_i[k * c + ch] = std::max(max_i[k * c + ch], v);
      }
    }
  }

  // Border pixels: a 4-neighbour outside the object or the image
  // (skimage: the mask minus its binary erosion by a cross, border_value 0).
  std::vector<std::uint8_t> border(h * w, 0);
  for (std::size_t y = 0; y < h; ++y) {
    for (std::size_t x = 0; x < w; ++x) {
      const std::size_t i = y * w + x;
      const std::uint32_t o = obj[i];
      if (!o) continue;
      border[i] = y == 0 || y + 1 == h || x == 0 || x + 1 == w || obj[i - w] != o || obj[i + w] != o ||
                  obj[i - 1] != o || obj[i + 1] != o;
    }
  }
  // Each border pixel's code from its border neighbours of the same object.
  static constexpr std::array<Weight, 50> kWeights = perimeter_weights();
  for (std::size_t y = 0; y < h; ++y) {
    for (std::size_t x = 0; x < w; ++x) {
      const std::size_t i = y * w + x;
      if (!border[i]) continue;
      const std::uint32_t o = obj[i];
      const auto same = [&](std::size_t j) { return border[j] && obj[j] == o; };
      const bool up = y > 0, down = y + 1 < h, left = x > 0, right = x + 1 < w;
      const int edges = (up && same(i - w)) + (down && same(i + w)) + (left && same(i - 1)) + (right && same(i + 1));
      const int corners = (up && left && same(i - w - 1)) + (up && right && same(i - w + 1)) +
                          (down && left && same(i + w - 1)) + (down && right && same(i + w + 1));
      detail::ObjectSums& p = stats[o - 1];
      switch (kWeights[1 + 2 * edges + 10 * corners]) {
        case kOne:
          ++p.perimeter_one;
          break;
        case kSqrt2:
          ++p.perimeter_sqrt2;
          break;
        case kHalf:
          ++p.perimeter_half;
          break;
        case kZero:
          break;
      }
    }
  }

  std::vector<ObjectStats> out;
  out.reserve(count);
  for (std::size_t k = 0; k < count; ++k) {
    out.push_back(detail::finish(stats[k], sum_i.data() + k * c, min_i.data() + k * c, max_i.data() + k * c, c));
  }
  return out;
}

std::string stats_csv(const std::vector<ObjectStats>& stats, int channels) {
  if (channels < 0) throw Error(Errc::invalid_argument, "stats_csv: channels must not be negative");
  std::string out = "label,area,centroid_y,centroid_x,bbox_y0,bbox_x0,bbox_y1,bbox_x1,perimeter,equivalent_diameter";
  append_intensity_header(out, channels);
  for (const ObjectStats& s : stats) {
    append(out, static_cast<std::int64_t>(s.label));
    out += ',';
    append(out, s.area);
    for (const double v : {s.centroid_y, s.centroid_x}) {
      out += ',';
      append(out, v);
    }
    for (const int v : {s.bbox_y0, s.bbox_x0, s.bbox_y1, s.bbox_x1}) {
      out += ',';
      append(out, static_cast<std::int64_t>(v));
    }
    for (const double v : {s.perimeter, s.equivalent_diameter}) {
      out += ',';
      append(out, v);
    }
    append_intensity(out, s.label, s.intensity, channels);
    out += '\n';
  }
  return out;
}

std::vector<ObjectStats3D> object_stats_3d(const std::uint32_t* labels, int depth, int height, int width,
                                           const float* intensity, int channels) {
  if (depth < 0 || height < 0 || width < 0 || (labels == nullptr && depth > 0 && height > 0 && width > 0)) {
    throw Error(Errc::invalid_argument, "object_stats_3d: bad volume (" + std::to_string(depth) + " x " +
                                            std::to_string(height) + " x " + std::to_string(width) +
                                            (labels ? ")" : ", no data)"));
  }
  if (channels < 1) throw Error(Errc::invalid_argument, "object_stats_3d: channels must be at least 1");
  const std::size_t d = static_cast<std::size_t>(depth);
  const std::size_t h = static_cast<std::size_t>(height);
  const std::size_t w = static_cast<std::size_t>(width);
  const std::size_t c = intensity ? static_cast<std::size_t>(channels) : 0;
  const detail::LabelIndex ix = detail::index_labels(labels, d * h * w);
  const std::size_t count = ix.labels.size();

  struct Sums {
    std::int64_t volume = 0, sum_z = 0, sum_y = 0, sum_x = 0;
    int z0, y0, x0, z1 = 0, y1 = 0, x1 = 0;
  };
  std::vector<Sums> sums(count, Sums{0, 0, 0, 0, depth, height, width});
  std::vector<double> sum_i(count * c, 0.0);
  std::vector<float> min_i(count * c, std::numeric_limits<float>::infinity());
  std::vector<float> max_i(count * c, -std::numeric_limits<float>::infinity());
  std::size_t i = 0;
  for (int z = 0; z < depth; ++z) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x, ++i) {
        if (!ix.object_of_pixel[i]) continue;
        const std::size_t k = ix.object_of_pixel[i] - 1;
        Sums& s = sums[k];
        ++s.volume;
        s.sum_z += z;
        s.sum_y += y;
        s.sum_x += x;
        s.z0 = std::min(s.z0, z);
        s.y0 = std::min(s.y0, y);
        s.x0 = std::min(s.x0, x);
        s.z1 = std::max(s.z1, z + 1);
        s.y1 = std::max(s.y1, y + 1);
        s.x1 = std::max(s.x1, x + 1);
        for (std::size_t ch = 0; ch < c; ++ch) {
          const float v = intensity[i * c + ch];
          sum_i[k * c + ch] += v;
          min_i[k * c + ch] = std::min(min_i[k * c + ch], v);
          max_i[k * c + ch] = std::max(max_i[k * c + ch], v);
        }
      }
    }
  }
  std::vector<ObjectStats3D> out(count);
  for (std::size_t k = 0; k < count; ++k) {
    const Sums& s = sums[k];
    ObjectStats3D& o = out[k];
    const double volume = static_cast<double>(s.volume);
    o.label = ix.labels[k];
    o.volume = s.volume;
    o.centroid_z = static_cast<double>(s.sum_z) / volume;
    o.centroid_y = static_cast<double>(s.sum_y) / volume;
    o.centroid_x = static_cast<double>(s.sum_x) / volume;
    o.bbox_z0 = s.z0;
    o.bbox_y0 = s.y0;
    o.bbox_x0 = s.x0;
    o.bbox_z1 = s.z1;
    o.bbox_y1 = s.y1;
    o.bbox_x1 = s.x1;
    // regionprops: (2 * ndim * area / pi) ** (1 / ndim), in that order.
    o.equivalent_diameter = std::pow(6 * volume / std::numbers::pi, 1.0 / 3.0);
    o.intensity.resize(c);
    for (std::size_t ch = 0; ch < c; ++ch) {
      o.intensity[ch] = {sum_i[k * c + ch] / volume, min_i[k * c + ch], max_i[k * c + ch]};
    }
  }
  return out;
}

std::string stats_csv_3d(const std::vector<ObjectStats3D>& stats, int channels) {
  if (channels < 0) throw Error(Errc::invalid_argument, "stats_csv: channels must not be negative");
  std::string out =
      "label,volume,centroid_z,centroid_y,centroid_x,bbox_z0,bbox_y0,bbox_x0,bbox_z1,bbox_y1,bbox_x1,"
      "equivalent_diameter";
  append_intensity_header(out, channels);
  for (const ObjectStats3D& s : stats) {
    append(out, static_cast<std::int64_t>(s.label));
    out += ',';
    append(out, s.volume);
    for (const double v : {s.centroid_z, s.centroid_y, s.centroid_x}) {
      out += ',';
      append(out, v);
    }
    for (const int v : {s.bbox_z0, s.bbox_y0, s.bbox_x0, s.bbox_z1, s.bbox_y1, s.bbox_x1}) {
      out += ',';
      append(out, static_cast<std::int64_t>(v));
    }
    out += ',';
    append(out, s.equivalent_diameter);
    append_intensity(out, s.label, s.intensity, channels);
    out += '\n';
  }
  return out;
}

}  // namespace cpipc::post
