// Cellpose's 3-D options (--do_3D, --stitch_threshold, --anisotropy,
// --flow3D_smooth), shared by segment (applied here) and submit (sent to serve).
#pragma once

#include <CLI/CLI.hpp>

#include <array>
#include <cstdlib>
#include <string>

#include "cpipc/error.hpp"
#include "number_checks.hpp"

namespace cpipc::cli {

struct VolumeFlags {
  bool do_3d = false;
  float stitch_threshold = 0.0f;
  double anisotropy = 1.0;
  std::string flow3d_smooth;  // "S" or "Z,Y,X"; empty: none

  [[nodiscard]] bool any() const { return do_3d || stitch_threshold > 0.0f; }

  // Cellpose 4's flow3D_smooth: one sigma for all three axes, or one per
  // axis (Z, Y, X). Throws Error(invalid_argument).
  [[nodiscard]] std::array<double, 3> smooth_sigmas() const {
    if (flow3d_smooth.empty()) return {0.0, 0.0, 0.0};
    std::array<double, 3> s{};
    std::size_t n = 0;
    const char* p = flow3d_smooth.c_str();
    while (true) {
      char* end = nullptr;
      const double v = std::strtod(p, &end);
      if (end == p || n == 3 || !(v >= 0.0 && v <= 100.0)) break;
      s[n++] = v;
      if (*end == '\0') {
        if (n == 1) s = {v, v, v};
        if (n == 1 || n == 3) return s;
        break;
      }
      if (*end != ',') break;
      p = end + 1;
    }
    throw Error(Errc::invalid_argument,
                "--flow3d-smooth: expected one sigma in [0, 100] or three as Z,Y,X, got '" + flow3d_smooth + "'");
  }
};

inline void add_volume_options(CLI::App& cmd, VolumeFlags& f) {
  CLI::Option* do_3d = cmd.add_flag(
      "--do-3d,--do_3D", f.do_3d,
      "Segment z-stacks in 3-D: the network on YX, ZY and ZX planes, flows combined, 3-D dynamics (Cellpose's do_3D)");
  cmd.add_option("--stitch-threshold,--stitch_threshold", f.stitch_threshold,
                 "Segment z-stacks plane by plane and stitch masks across planes whose IoU is above this (0: off)")
      ->check(number_check([](double v) { return v >= 0.0 && v <= 1.0; }, "an IoU in [0, 1]"))
      ->excludes(do_3d);
  cmd.add_option("--anisotropy", f.anisotropy,
                 "With --do-3d: Z spacing over XY spacing (2.0: planes twice as far apart as pixels); Z is rescaled "
                 "by it (1.0)")
      ->check(positive());
  cmd.add_option("--flow3d-smooth,--flow3D_smooth", f.flow3d_smooth,
                 "With --do-3d: Gaussian sigma for the 3-D flows, one value or Z,Y,X (0: none)");
}

}  // namespace cpipc::cli
