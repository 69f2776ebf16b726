// cpipc masks: Cellpose's dynamics on their own, flows (.npy) to masks.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "cpipc/cuda/device.hpp"
#include "cpipc/dynamics/cuda.hpp"
#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/labels.hpp"
#include "cpipc/io/npy.hpp"
#include "number_checks.hpp"

namespace cpipc::cli {

namespace {

struct MasksOptions {
  std::string flows;
  std::string cellprob;
  std::string output;
  dynamics::Params params;
  std::string device = "cpu";
  int repeat = 1;
  bool json = false;
};

// Times `run` N times (median), after a warm-up that pays one-time costs
// (CUDA context, thread pool) when N > 1; keeps the last result.
template <class Result, class Run>
double timed(int repeat, Result& result, const Run& run) {
  if (repeat > 1) result = run();
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    result = run();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void check_device(const MasksOptions& o) {
  if (o.device == "cuda" && cuda::built_with_cuda()) {
    std::string why;
    if (!dynamics::gpu::available(&why)) throw Error(Errc::not_found, "no CUDA device for --device cuda: " + why);
  }
}

void print_result(const MasksOptions& o, std::uint32_t count, const std::vector<std::int64_t>& shape,
                  const io::Array& out, double ms) {
  if (o.json) {
    std::printf("%s\n", nlohmann::json{{"objects", count},
                                       {"shape", shape},
                                       {"dtype", ipc::to_string(out.desc.dtype)},
                                       {"dynamics_ms", ms},
                                       {"device", o.device},
                                       {"output", o.output}}
                            .dump()
                            .c_str());
    return;
  }
  std::string dims;
  for (const std::int64_t v : shape) dims += (dims.empty() ? "" : " x ") + std::to_string(v);
  std::printf("%u objects in %s, dynamics %.1f ms -> %s (%s)\n", count, dims.c_str(), ms, o.output.c_str(),
              ipc::to_string(out.desc.dtype).c_str());
}

// A [4, Z, Y, X] (or [3, Z, Y, X] with --cellprob [Z, Y, X]) stack: Cellpose's
// 3-D dynamics; the masks go to .npy or .bin as [Z, Y, X].
void run_masks_3d(const MasksOptions& o, const io::Array& flows) {
  const auto& fd = flows.desc;
  const int d = static_cast<int>(fd.shape[1]), h = static_cast<int>(fd.shape[2]), w = static_cast<int>(fd.shape[3]);
  const std::string ext = o.output.substr(std::min(o.output.size(), o.output.rfind('.')));
  if (ext != ".npy" && ext != ".bin") {
    throw Error(Errc::invalid_argument, "3-D masks are written as .npy or .bin, not '" + o.output + "'");
  }
  const std::vector<float> all = io::to_float32(flows, "flows '" + o.flows + "'");
  const std::size_t n = static_cast<std::size_t>(d) * h * w;
  std::vector<float> cellprob;
  if (!o.cellprob.empty()) {
    const io::Array cp = io::read_npy(o.cellprob);
    if (cp.desc.ndim != 3 || cp.desc.shape[0] != d || cp.desc.shape[1] != h || cp.desc.shape[2] != w) {
      throw Error(Errc::invalid_argument, "cellprob '" + o.cellprob + "' is " + cp.desc.to_string() +
                                              " but the flows are " + std::to_string(d) + " x " + std::to_string(h) +
                                              " x " + std::to_string(w) + "; they must match");
    }
    cellprob = io::to_float32(cp, "cellprob '" + o.cellprob + "'");
  } else if (fd.shape[0] == 4) {
    cellprob.assign(all.begin() + 3 * n, all.begin() + 4 * n);
  } else {
    throw Error(Errc::invalid_argument, "'" + o.flows + "' has no cellprob channel; pass --cellprob FILE.npy");
  }
  const dynamics::Flows3D f{
      {all.data(), n}, {all.data() + n, n}, {all.data() + 2 * n, n}, {cellprob.data(), n}, d, h, w};
  check_device(o);
  dynamics::Labels3D labels;
  const double ms = timed(o.repeat, labels, [&] {
    if (o.device == "cuda") return dynamics::gpu::masks_from_flows_3d_via_device(f, o.params);
    return dynamics::masks_from_flows_3d(f, o.params);
  });
  io::Array out = io::narrow_labels(labels.data, static_cast<std::int64_t>(d) * h, w);
  const std::int64_t shape[3] = {d, h, w};
  out.desc = ipc::TensorDesc::contiguous(out.desc.dtype, shape);
  io::write_array(o.output, out.view());
  print_result(o, labels.count, {d, h, w}, out, ms);
}

void run_masks(const MasksOptions& o) {
  const io::Array flows = io::read_npy(o.flows);
  const auto& fd = flows.desc;
  if (fd.ndim == 4 && (fd.shape[0] == 3 || fd.shape[0] == 4)) return run_masks_3d(o, flows);
  if (fd.ndim != 3 || (fd.shape[0] != 2 && fd.shape[0] != 3)) {
    throw Error(Errc::invalid_argument,
                "'" + o.flows + "' is " + fd.to_string() +
                    "; expected flows [2, H, W] (dY, dX) or [3, H, W] with cellprob third, or a stack's [3, Z, Y, X] "
                    "(dZ, dY, dX) or [4, Z, Y, X] with cellprob fourth");
  }
  const int h = static_cast<int>(fd.shape[1]);
  const int w = static_cast<int>(fd.shape[2]);
  const std::vector<float> all = io::to_float32(flows, "flows '" + o.flows + "'");
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  std::vector<float> cellprob;
  if (!o.cellprob.empty()) {
    const io::Array cp = io::read_npy(o.cellprob);
    if (cp.desc.ndim != 2 || cp.desc.shape[0] != h || cp.desc.shape[1] != w) {
      throw Error(Errc::invalid_argument, "cellprob '" + o.cellprob + "' is " + cp.desc.to_string() +
                                              " but the flows are " + std::to_string(h) + " x " + std::to_string(w) +
                                              "; they must match");
    }
    cellprob = io::to_float32(cp, "cellprob '" + o.cellprob + "'");
  } else if (fd.shape[0] == 3) {
    cellprob.assign(all.begin() + 2 * plane, all.begin() + 3 * plane);
  } else {
    throw Error(Errc::invalid_argument, "'" + o.flows + "' has no cellprob channel; pass --cellprob FILE.npy");
  }
  dynamics::Flows f{{all.data(), plane}, {all.data() + plane, plane}, {cellprob.data(), plane}, h, w};

  check_device(o);
  dynamics::Labels labels;
  const double ms = timed(o.repeat, labels, [&] {
    if (o.device == "cuda") return dynamics::gpu::masks_from_flows_via_device(f, o.params);
    return dynamics::masks_from_flows(f, o.params);
  });
  // Cellpose's dtype rule: uint16 below 65 536 labels, uint32 from there.
  const io::Array out = io::narrow_labels(labels.data, h, w);
  io::write_array(o.output, out.view());
  print_result(o, labels.count, {h, w}, out, ms);
}

}  // namespace

void register_masks(CLI::App& app) {
  auto o = std::make_shared<MasksOptions>();
  CLI::App* cmd = app.add_subcommand("masks", "Cellpose's dynamics alone: flows (.npy) to masks (.npy, .png, .tif)");
  cmd->add_option("--flows", o->flows,
                  "Flows [2,H,W] (dY, dX) or [3,H,W] with cellprob third, float .npy; a stack's [3,Z,Y,X] "
                  "(dZ, dY, dX) or [4,Z,Y,X] runs Cellpose's 3-D dynamics")
      ->required();
  cmd->add_option("--cellprob", o->cellprob,
                  "Cellprob logits [H,W] (or [Z,Y,X]) .npy, when the flows have no cellprob channel");
  cmd->add_option("-o,--output", o->output, "Masks file: .npy, .png (below 65 536 masks), .tif")->required();
  cmd->add_option("--cellprob-threshold", o->params.cellprob_threshold, "Foreground: cellprob above this (0.0)");
  cmd->add_option("--flow-threshold", o->params.flow_threshold,
                  "Flow-error QC threshold, 0 = off (0.4; not used in 3-D, as Cellpose)")
      ->check(non_negative());
  cmd->add_option("--min-size", o->params.min_size, "Remove masks smaller than this, pixels (15; <= 0 keeps all)");
  cmd->add_option("--max-size-fraction", o->params.max_size_fraction,
                  "Remove masks over this fraction of the image (0.4)")
      ->check(positive());
  cmd->add_option("--niter", o->params.niter, "Flow-following steps (200)")->check(non_negative());
  cmd->add_option("--device", o->device, "cpu (all cores) or cuda (the masks are computed on the GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--repeat", o->repeat, "Run N times after a warm-up and report the median time (benchmarks)")
      ->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] { run_masks(*o); });
}

}  // namespace cpipc::cli
