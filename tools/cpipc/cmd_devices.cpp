// cpipc devices: the CUDA devices this process can use, optionally proven
// by running a kernel on device 0.
#include <cstdio>
#include <memory>

#include "cli_common.hpp"
#include "cpipc/cuda/device.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cli {

namespace {

void run_devices(bool json, bool probe) {
  std::string why;
  const int n = cuda::device_count(&why);
  nlohmann::json out = {{"built_with_cuda", cuda::built_with_cuda()}, {"devices", nlohmann::json::array()}};
  if (n == 0) out["why_none"] = why;
  for (int i = 0; i < n; ++i) {
    const auto d = cuda::device_info(i);
    if (!d) continue;
    out["devices"].push_back({{"ordinal", i},
                              {"name", d->name},
                              {"uuid", cuda::uuid_string(d->uuid)},
                              {"memory_bytes", d->total_memory},
                              {"compute_capability", std::to_string(d->cc_major) + "." + std::to_string(d->cc_minor)}});
  }
  if (probe) {
    if (n == 0) throw Error(Errc::not_found, "no CUDA device to probe: " + why);
    const std::size_t count = 1 << 20;
    const auto values = cuda::run_probe_kernel(count, 3, 7);
    bool ok = true;
    for (std::size_t i = 0; i < count && ok; ++i) ok = values[i] == static_cast<std::uint32_t>(i) * 3u + 7u;
    out["probe"] = ok ? "kernel ran on device 0 and its results are right" : "kernel results are WRONG";
    if (!ok) throw Error(Errc::system, "the probe kernel on device 0 returned wrong values");
  }
  if (json) {
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  if (n == 0) std::printf("no CUDA device: %s\n", why.c_str());
  for (const auto& d : out["devices"]) {
    std::printf("%d: %s  %s  %.1f GiB  sm_%s\n", d["ordinal"].get<int>(), d["name"].get<std::string>().c_str(),
                d["uuid"].get<std::string>().c_str(), d["memory_bytes"].get<double>() / (1 << 30),
                d["compute_capability"].get<std::string>().c_str());
  }
  if (probe) std::printf("probe: %s\n", out["probe"].get<std::string>().c_str());
}

}  // namespace

void register_devices(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  auto probe = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("devices", "List the CUDA devices this process can use");
  cmd->add_flag("--json", *json, "One JSON object");
  cmd->add_flag("--probe", *probe, "Also run a kernel on device 0 and check its results (exit 3 without a device)");
  cmd->callback([json, probe] { run_devices(*json, *probe); });
}

}  // namespace cpipc::cli
