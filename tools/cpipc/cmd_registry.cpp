// cpipc ls / info / rm / gc: the user's segments on this machine.
#include <cstdio>
#include <memory>

#include "cli_common.hpp"
#include "cpipc/cuda/device.hpp"
#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/registry.hpp"

namespace cpipc::cli {

namespace {

void run_ls(bool json) {
  const auto entries = ipc::list_segments();
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : entries) {
      if (e.status) {
        out.push_back(status_json(e.name, *e.status));
      } else {
        out.push_back({{"name", e.name},
                       {"total_bytes", e.bytes},
                       {"state", e.untrusted ? "untrusted" : "corrupt"},
                       {"problem", e.problem}});
      }
    }
    std::printf("%s\n", dump_json(out).c_str());
    return;
  }
  if (entries.empty()) {
    std::printf("no segments (none of this user's in /dev/shm)\n");
    return;
  }
  std::printf("%-24s %-24s %5s %8s %10s %-9s %s\n", "NAME", "TENSOR", "SLOTS", "FRAMES", "SIZE", "STATE", "PRODUCER");
  for (const auto& e : entries) {
    if (!e.status) {
      std::printf("%-24s %-24s %5s %8s %10s %-9s %s\n", e.name.c_str(), "-", "-", "-", human_bytes(e.bytes).c_str(),
                  e.untrusted ? "untrusted" : "corrupt", e.problem.c_str());
      continue;
    }
    const auto& s = *e.status;
    const std::string producer =
        std::to_string(s.layout.producer.pid) + (s.producer_alive ? " (running)" : " (gone: 'cpipc gc' removes it)");
    std::printf("%-24s %-24s %5u %8llu %10s %-9s %s\n", e.name.c_str(), s.layout.desc.to_string().c_str(),
                s.layout.slot_count, static_cast<unsigned long long>(s.frames_published),
                human_bytes(s.layout.total_bytes).c_str(), s.stuck ? "stuck" : state_name(s.state),
                (s.stuck ? producer + ", stuck mid-write" : producer).c_str());
  }
}

void run_info(const std::string& name, bool json) {
  const auto reader = ipc::SegmentReader::attach(name);
  const auto s = reader.status();
  if (s.stuck) {
    throw Error(Errc::timed_out, "the producer of '" + name + "' (pid " + std::to_string(s.layout.producer.pid) +
                                     ") is stuck mid-write: its latest frame stayed unreadable for " +
                                     std::to_string(ipc::kDefaultPatience.count()) +
                                     " ms; try again, or 'cpipc gc' if it is dead");
  }
  nlohmann::json j = status_json(name, s);
  // Whether this process could open the device view: it needs CUDA IPC
  // export and the same device (by UUID) here.
  std::string why;
  bool can_open = false;
  if (s.layout.export_kind == ipc::format::ExportKind::cuda_ipc) {
    const int n = cuda::device_count(&why);
    for (int i = 0; i < n && !can_open; ++i) {
      if (auto d = cuda::device_info(i); d && d->uuid == s.layout.device_uuid) can_open = true;
    }
    if (!can_open && why.empty()) why = "the segment's device is not visible to this process";
  } else {
    why = "the producer exports host views only";
  }
  j["device_view"] = can_open ? "available" : "unavailable: " + why;
  j["shm_path"] = ipc::shm_file_path(name);
  if (json) {
    std::printf("%s\n", dump_json(j).c_str());
    return;
  }
  for (const auto& [key, value] : j.items()) {
    std::printf("%-17s %s\n", (key + ":").c_str(),
                value.is_string() ? value.get<std::string>().c_str() : dump_json(value).c_str());
  }
}

void run_rm(const std::vector<std::string>& names) {
  for (const auto& name : names) {
    ipc::remove_segment(name);
    std::printf("removed '%s'\n", name.c_str());
  }
}

void run_gc(bool json, const std::vector<std::string>& names) {
  const auto removed = ipc::collect_garbage(10.0, names);
  if (json) {
    std::printf("%s\n", dump_json(nlohmann::json(removed)).c_str());
    return;
  }
  for (const auto& name : removed) std::printf("removed '%s'\n", name.c_str());
  std::printf("%zu segment%s removed\n", removed.size(), removed.size() == 1 ? "" : "s");
}

}  // namespace

void register_registry(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* ls = app.add_subcommand("ls", "List this user's segments");
  ls->add_flag("--json", *json, "One JSON array");
  ls->callback([json] { run_ls(*json); });

  auto name = std::make_shared<std::string>();
  auto info_json = std::make_shared<bool>(false);
  CLI::App* info = app.add_subcommand("info", "Show a segment's header, producer, frames and device view");
  info->add_option("NAME", *name, "Segment name")->required();
  info->add_flag("--json", *info_json, "One JSON object");
  info->callback([name, info_json] { run_info(*name, *info_json); });

  auto names = std::make_shared<std::vector<std::string>>();
  CLI::App* rm = app.add_subcommand("rm", "Remove segments by name (readers keep their mappings)");
  rm->add_option("NAME", *names, "Segment names")->required();
  rm->callback([names] { run_rm(*names); });

  auto gc_json = std::make_shared<bool>(false);
  auto gc_names = std::make_shared<std::vector<std::string>>();
  CLI::App* gc = app.add_subcommand("gc", "Remove segments whose producer is gone");
  gc->add_option("NAME", *gc_names, "Only these segments (default: all of this user's)");
  gc->add_flag("--json", *gc_json, "Print the removed names as a JSON array");
  gc->callback([gc_json, gc_names] { run_gc(*gc_json, *gc_names); });
}

}  // namespace cpipc::cli
