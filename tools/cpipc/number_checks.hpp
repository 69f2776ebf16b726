// Checks that say what a number should be. CLI11's NonNegativeNumber and
// PositiveNumber report their range up to DBL_MAX, a 300-digit number, and a
// word where a number belongs only as "Could not convert".
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>

namespace cpipc::cli {

// The text must be a finite number v with ok(v); else "expected <what>, got '<text>'".
inline CLI::Validator number_check(std::function<bool(double)> ok, const std::string& what) {
  return CLI::Validator(
      [ok = std::move(ok), what](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        const bool number = !text.empty() && end == text.c_str() + text.size() && std::isfinite(v);
        return number && ok(v) ? std::string() : "expected " + what + ", got '" + text + "'";
      },
      "");
}

inline CLI::Validator non_negative(const std::string& what = "a number >= 0") {
  return number_check([](double v) { return v >= 0.0; }, what);
}
inline CLI::Validator positive(const std::string& what = "a number > 0") {
  return number_check([](double v) { return v > 0.0; }, what);
}
// --diameter: 0 leaves the choice to cpipc.
inline CLI::Validator diameter_pixels() { return non_negative("a positive number of pixels (0: automatic)"); }

}  // namespace cpipc::cli
