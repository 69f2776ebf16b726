// cpipc save NAME FILE: the latest frame of a segment, written by extension.
#include <cctype>
#include <cstdio>
#include <memory>

#include "cli_common.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/tiff.hpp"
#include "cpipc/ipc/reader.hpp"
#include "number_checks.hpp"

namespace cpipc::cli {

namespace {

struct SaveOptions {
  std::string name;
  std::string file;
  long wait_ms = 0;
};

bool is_tiff(const std::string& path) {
  std::string ext = path.substr(path.find_last_of('.') == std::string::npos ? path.size() : path.find_last_of('.'));
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".tif" || ext == ".tiff";
}

// The frame's axes for a TIFF that Fiji opens as what it is: the "axes" its
// producer put in the metadata (cpipc publish does), else [H, W] is YX,
// [Z, H, W] is ZYX (a mask stack) unless its last extent is at most 4
// (channels), and 4-D is ZYXC.
std::string tiff_axes(const ipc::TensorDesc& d, const std::string& meta) {
  const nlohmann::json j = nlohmann::json::parse(meta, nullptr, false);
  if (j.is_object() && j.contains("axes") && j["axes"].is_string()) {
    const std::string axes = j["axes"];
    if (axes.size() == d.ndim && (axes == "YX" || axes == "YXC" || axes == "ZYX" || axes == "ZYXC")) return axes;
  }
  if (d.ndim == 2) return "YX";
  if (d.ndim == 3) return d.shape[2] <= 4 ? "YXC" : "ZYX";
  return "ZYXC";
}

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
  const ipc::HostView view{frame.data(), reader.desc()};
  if (is_tiff(o.file)) {
    io::write_tiff(o.file, view, tiff_axes(reader.desc(), info->meta.json));
  } else {
    io::write_array(o.file, view);
  }
  std::printf("saved frame %llu of '%s' (%s) to %s\n", static_cast<unsigned long long>(info->frame_id), o.name.c_str(),
              reader.desc().to_string().c_str(), o.file.c_str());
}

}  // namespace

void register_save(CLI::App& app) {
  auto o = std::make_shared<SaveOptions>();
  CLI::App* cmd =
      app.add_subcommand("save", "Write the latest frame of a segment to FILE: .npy, .bin (raw), .png (16-bit), .tif (ImageJ axes)");
  cmd->add_option("NAME", o->name, "Segment name")->required();
  cmd->add_option("FILE", o->file, "Output file; the extension picks the format")->required();
  cmd->add_option("--wait-ms", o->wait_ms, "Wait this long for a first frame if there is none yet")
      ->check(non_negative());
  cmd->callback([o] { run_save(*o); });
}

}  // namespace cpipc::cli
