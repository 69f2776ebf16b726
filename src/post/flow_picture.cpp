#include "cpipc/post/flow_picture.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "cpipc/error.hpp"
#include "percentiles.hpp"

namespace cpipc::post {

namespace {

void check(const void* p, std::size_t n, const char* what) {
  if (p == nullptr && n > 0) throw Error(Errc::invalid_argument, std::string(what) + ": no data");
}

// transforms.normalize99 in place: (x - p1) / (p99 - p1) in float32, or 0
// everywhere when p99 - p1 <= 1e-3.
void normalize99(std::vector<float>& x) {
  std::vector<float> finite;
  finite.reserve(x.size());
  for (const float v : x) {
    if (!std::isnan(v)) finite.push_back(v);
  }
  if (finite.empty()) return;
  const auto [p1, p99] = detail::percentiles(finite, 1, 99);
  const float range = p99 - p1;
  if (!(range > 1e-3f)) {
    std::fill(x.begin(), x.end(), 0.0f);
    return;
  }
  for (float& v : x) v = (v - p1) / range;  // X -= x01; X /= (x99 - x01)
}

// np.clip(v, 0, 255).astype(np.uint8): truncation (NaN, which numpy makes 0 on x86, as 0).
std::uint8_t to_u8(float v) {
  if (!(v > 0.0f)) return 0;
  return static_cast<std::uint8_t>(std::min(v, 255.0f));
}

}  // namespace

std::vector<std::uint8_t> flow_picture(const float* dy, const float* dx, std::size_t n) {
  check(dy, n, "flow_picture");
  check(dx, n, "flow_picture");
  std::vector<float> mag(n);
  for (std::size_t i = 0; i < n; ++i) mag[i] = std::sqrt(dy[i] * dy[i] + dx[i] * dx[i]);  // np.sum(dP**2, axis=0)
  normalize99(mag);
  // Python floats meet float32 arrays as float32 (numpy's weak scalars).
  constexpr float kPi = std::numbers::pi_v<float>;
  constexpr auto kThird = static_cast<float>(2 * std::numbers::pi / 3);
  constexpr auto kTwoThirds = static_cast<float>(4 * std::numbers::pi / 3);
  std::vector<std::uint8_t> rgb(n * 3);
  for (std::size_t i = 0; i < n; ++i) {
    const float m = (255.0f * std::clamp(mag[i], 0.0f, 1.0f)) / 2.0f;
    const float angle = std::atan2(dx[i], dy[i]) + kPi;
    rgb[3 * i] = to_u8(m * (std::cos(angle) + 1.0f));
    rgb[3 * i + 1] = to_u8(m * (std::cos(angle + kThird) + 1.0f));
    rgb[3 * i + 2] = to_u8(m * (std::cos(angle + kTwoThirds) + 1.0f));
  }
  return rgb;
}

std::vector<std::uint8_t> normalized_u8(const float* v, std::size_t n) {
  check(v, n, "normalized_u8");
  std::vector<float> x(v, v + n);
  normalize99(x);
  std::vector<std::uint8_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = to_u8(std::min(x[i], 1.0f) * 255.0f);
  return out;
}

}  // namespace cpipc::post
