// cpipc publish FILE NAME: a file's array as a live segment until a signal.
#include <cstdio>
#include <memory>
#include <thread>

#include "cli_common.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/writer.hpp"

namespace cpipc::cli {

namespace {

struct PublishOptions {
  std::string file;
  std::string name;
  std::uint64_t frames = 1;
  std::uint32_t slots = 4;
  double interval_ms = 0;
  double linger_ms = -1;
};

std::string json_escape(const std::string& s) { return dump_json(nlohmann::json(s)); }

void run_publish(const PublishOptions& o) {
  ipc::validate_name(o.name);  // before reading a large file
  block_stop_signals();        // from here a signal ends the loop, not the process
  const io::Array array = io::read_array(o.file);
  ipc::SegmentOptions seg;
  seg.slots = o.slots;
  ipc::SegmentWriter writer = ipc::SegmentWriter::create(o.name, array.desc, seg);

  int sig = 0;
  for (std::uint64_t i = 1; i <= o.frames && sig == 0; ++i) {
    ipc::FrameMeta meta;
    meta.json = "{\"source\":" + json_escape(o.file.size() > 180 ? o.file.substr(o.file.size() - 180) : o.file) +
                ",\"frame\":" + std::to_string(i) + "}";
    if (meta.json.size() > ipc::format::kMetaBytes) meta.json = "{\"frame\":" + std::to_string(i) + "}";
    writer.publish(array.data, meta);
    if (i == 1) {
      std::printf("published '%s' %s in %u slots (%s); stop with Ctrl-C or SIGTERM\n", o.name.c_str(),
                  array.desc.to_string().c_str(), o.slots, ipc::shm_file_path(o.name).c_str());
      std::fflush(stdout);
    }
    if (i < o.frames) {
      // Without an interval, still look for a pending signal after every
      // frame (one cheap syscall): SIGTERM must not wait for all N frames.
      sig = wait_for_stop_signal(std::chrono::milliseconds(static_cast<long>(o.interval_ms)));
    }
  }
  if (o.frames > 1) {
    std::printf("published %llu frames to '%s'\n", static_cast<unsigned long long>(writer.frames_published()),
                o.name.c_str());
    std::fflush(stdout);
  }
  if (sig == 0) {
    if (o.linger_ms < 0) {
      while (sig == 0) sig = wait_for_stop_signal(std::chrono::milliseconds(1000));
    } else {
      sig = wait_for_stop_signal(std::chrono::milliseconds(static_cast<long>(o.linger_ms)));
    }
  }
  // writer's destructor marks the segment closed, wakes readers and unlinks it.
}

}  // namespace

void register_publish(CLI::App& app) {
  auto o = std::make_shared<PublishOptions>();
  CLI::App* cmd = app.add_subcommand("publish",
                                     "Publish an image (.png, .tif, .jpg) or .npy array as a segment; stays alive "
                                     "until SIGINT/SIGTERM, then unlinks it");
  cmd->add_option("FILE", o->file, "Image or .npy file")->required();
  cmd->add_option("NAME", o->name, "Segment name: 1-128 of A-Z a-z 0-9 . _ -")->required();
  cmd->add_option("--frames", o->frames, "Publish the array this many times into the ring")
      ->check(CLI::Range(1ull, 1ull << 40));
  cmd->add_option("--slots", o->slots, "Ring slots (1-8)")->check(CLI::Range(1u, 8u));
  cmd->add_option("--interval-ms", o->interval_ms, "Pause between frames")->check(CLI::NonNegativeNumber);
  cmd->add_option("--linger-ms", o->linger_ms,
                  "Exit (and unlink) this long after the last frame instead of waiting for a signal");
  cmd->callback([o] { run_publish(*o); });
}

}  // namespace cpipc::cli
