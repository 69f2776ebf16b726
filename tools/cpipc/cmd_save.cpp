// cpipc save NAME FILE: the latest frame of a segment, written by extension.
#include <cstdio>
#include <memory>

#include "cli_common.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/ipc/reader.hpp"

namespace cpipc::cli {

namespace {

struct SaveOptions {
  std::string name;
  std::string file;
  long wait_ms = 0;
};

void run_save(const SaveOptions& o) {
  const ipc::SegmentReader reader = ipc::SegmentReader::attach(o.name);
  // A seqlock copy, not a lease on the shared slot: encoding a file straight
  // from shared memory would die of SIGBUS if another process truncated the
  // object meanwhile; the copy is SIGBUS-safe (and never holds the producer).
  std::vector<std::byte> frame;
  auto info = reader.copy_latest(frame);
  if (!info && o.wait_ms > 0) {
    reader.wait_next(0, std::chrono::milliseconds(o.wait_ms));
    info = reader.copy_latest(frame);
  }
  if (!info) {
    reader.check_producer();
    throw Error(Errc::not_found, "segment '" + o.name + "' has no frame yet; wait for one with --wait-ms");
  }
  io::write_array(o.file, ipc::HostView{frame.data(), reader.desc()});
  std::printf("saved frame %llu of '%s' (%s) to %s\n", static_cast<unsigned long long>(info->frame_id), o.name.c_str(),
              reader.desc().to_string().c_str(), o.file.c_str());
}

}  // namespace

void register_save(CLI::App& app) {
  auto o = std::make_shared<SaveOptions>();
  CLI::App* cmd =
      app.add_subcommand("save", "Write the latest frame of a segment to FILE: .npy, .bin (raw), .png (16-bit), .tif");
  cmd->add_option("NAME", o->name, "Segment name")->required();
  cmd->add_option("FILE", o->file, "Output file; the extension picks the format")->required();
  cmd->add_option("--wait-ms", o->wait_ms, "Wait this long for a first frame if there is none yet")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o] { run_save(*o); });
}

}  // namespace cpipc::cli
