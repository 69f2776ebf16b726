// cpipc watch: follow a segment and print each new frame's metadata as a
// JSON line, until its producer ends.
#include <cstdio>
#include <memory>
#include <thread>

#include "cli_common.hpp"
#include "cpipc/error.hpp"
#include "cpipc/ipc/reader.hpp"
#include "number_checks.hpp"

namespace cpipc::cli {

namespace {

struct WatchArgs {
  std::string name;
  double attach_timeout_s = 10.0;
  std::uint64_t count = 0;  // 0: until the producer ends
};

// Attaches, waiting for a producer that has not published its first frame yet.
ipc::SegmentReader attach_waiting(const std::string& name, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    try {
      return ipc::SegmentReader::attach(name);
    } catch (const Error& e) {
      if (e.code() != Errc::not_found || std::chrono::steady_clock::now() > deadline) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void run_watch(const WatchArgs& a) {
  ipc::SegmentReader reader = attach_waiting(a.name, a.attach_timeout_s);
  std::uint64_t after = 0;
  std::uint64_t printed = 0;
  while (a.count == 0 || printed < a.count) {
    ipc::FrameInfo f;
    try {
      f = reader.wait_next(after, std::chrono::hours(24));
    } catch (const Error& e) {
      if (e.code() != Errc::producer_gone) throw;
      // Re-created with another shape (a `serve` stream does this): follow the new one.
      if (std::string(e.what()).find("re-created") != std::string::npos) {
        reader = attach_waiting(a.name, a.attach_timeout_s);
        after = 0;
        continue;
      }
      return;  // the producer ended: so does the watch
    }
    after = f.frame_id;
    nlohmann::json j{{"segment", a.name},
                     {"frame_id", f.frame_id},
                     {"seq", f.seq},
                     {"slot", f.slot},
                     {"shape", nlohmann::json::array()},
                     {"dtype", ipc::to_string(reader.desc().dtype)},
                     {"objects", f.meta.object_count},
                     {"diameter", f.meta.diameter},
                     {"publish_realtime_ns", f.publish_realtime_ns}};
    for (std::uint32_t d = 0; d < reader.desc().ndim; ++d) j["shape"].push_back(reader.desc().shape[d]);
    if (!f.meta.json.empty()) {
      std::string note;
      j["meta"] = meta_json(f.meta.json, &note);
      if (!note.empty()) j["meta_note"] = note;
    }
    std::printf("%s\n", dump_json(j).c_str());
    std::fflush(stdout);
    ++printed;
  }
}

}  // namespace

void register_watch(CLI::App& app) {
  auto a = std::make_shared<WatchArgs>();
  CLI::App* cmd = app.add_subcommand("watch", "Print each new frame's metadata as a JSON line until the producer ends");
  cmd->add_option("name", a->name, "Segment (or serve stream) name")->required();
  cmd->add_option("--attach-timeout", a->attach_timeout_s, "Wait this long for the segment to appear (10 s)")
      ->check(non_negative());
  cmd->add_option("--count", a->count, "Stop after N frames (default: until the producer ends)");
  cmd->callback([a] { run_watch(*a); });
}

}  // namespace cpipc::cli
