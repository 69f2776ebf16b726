// cpipc publish FILE NAME: a file's array as a live segment until a signal.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "axis_options.hpp"
#include "cli_common.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/writer.hpp"
#include "number_checks.hpp"

namespace cpipc::cli {

namespace {

struct PublishOptions {
  std::string file;
  std::string name;
  io::AxisOptions axes;
  std::uint64_t frames = 0;  // 0: one per time point of the file
  std::uint32_t slots = 4;
  double interval_ms = 0;
  double linger_ms = -1;
  bool json = false;
};

// What publish sends: the file's time points in cpipc's order ([Z,] Y, X
// [, C]); a .npy is an array, published as stored unless axes are named.
io::ImageFile read_for_publish(const PublishOptions& o) {
  if (o.file.ends_with(".npy") && o.axes.empty()) {
    io::ImageFile f;
    f.frames.push_back({io::read_array(o.file), ""});
    f.decided_by = "a .npy is published as stored";
    return f;
  }
  io::ImageFile f = io::read_image_file(o.file, o.axes);
  for (const io::Image& img : f.frames) {
    if (!img.array.desc.same_layout(f.frames.front().array.desc)) {
      throw Error(Errc::invalid_argument, "'" + o.file + "' holds images of different shapes (" +
                                              f.frames.front().array.desc.to_string() + ", " +
                                              img.array.desc.to_string() + "); a segment holds one shape");
    }
  }
  return f;
}

// A Cellpose masks file (<stem>_masks, <stem>_cp_masks, Cellpose's own rule
// for telling masks from images) is published with its object count, which
// `watch` and `info` show: the distinct non-zero labels of each frame.
std::vector<std::uint32_t> mask_counts(const PublishOptions& o, const io::ImageFile& file) {
  std::vector<std::uint32_t> counts(file.frames.size(), 0);
  if (!std::filesystem::path(o.file).stem().string().ends_with("_masks")) return counts;
  for (std::size_t t = 0; t < file.frames.size(); ++t) {
    std::vector<std::uint32_t> labels;
    try {
      labels = io::to_labels(file.frames[t].array, o.file);
    } catch (const Error&) {
      return counts;  // not labels after all (float data): no count
    }
    std::sort(labels.begin(), labels.end());
    counts[t] = static_cast<std::uint32_t>(std::unique(labels.begin(), labels.end()) - labels.begin());
    if (!labels.empty() && labels.front() == 0) --counts[t];
  }
  return counts;
}

void run_publish(const PublishOptions& o) {
  ipc::validate_name(o.name);  // before reading a large file
  block_stop_signals();        // from here a signal ends the loop, not the process
  const io::ImageFile file = read_for_publish(o);
  const ipc::TensorDesc& desc = file.frames.front().array.desc;
  const std::string& axes = file.frames.front().axes;
  const std::uint64_t frames = o.frames ? o.frames : file.frames.size();
  const std::vector<std::uint32_t> objects = mask_counts(o, file);
  ipc::SegmentOptions seg;
  seg.slots = o.slots;
  ipc::SegmentWriter writer = ipc::SegmentWriter::create(o.name, desc, seg);

  int sig = 0;
  for (std::uint64_t i = 1; i <= frames && sig == 0; ++i) {
    const std::size_t t = static_cast<std::size_t>((i - 1) % file.frames.size());
    ipc::FrameMeta meta;
    meta.object_count = objects[t];
    nlohmann::json m{{"source", o.file.size() > 180 ? o.file.substr(o.file.size() - 180) : o.file}, {"frame", i}};
    if (!axes.empty()) m["axes"] = axes;
    if (file.frames.size() > 1) m["time"] = t;
    meta.json = dump_json(m);
    if (meta.json.size() > ipc::format::kMetaBytes) meta.json = "{\"frame\":" + std::to_string(i) + "}";
    writer.publish(file.frames[t].array.data, meta);
    if (i == 1) {
      if (o.json) {
        nlohmann::json j{{"name", o.name},
                         {"shape", nlohmann::json::array()},
                         {"dtype", ipc::to_string(desc.dtype)},
                         {"axes", axes},
                         {"stored_axes", file.stored_axes},
                         {"axes_from", file.decided_by},
                         {"time_points", file.frames.size()},
                         {"slots", o.slots},
                         {"path", ipc::shm_file_path(o.name)}};
        for (std::uint32_t k = 0; k < desc.ndim; ++k) j["shape"].push_back(desc.shape[k]);
        std::printf("%s\n", dump_json(j).c_str());
      } else {
        const std::string about = axes.empty() ? "" : " " + axes + " (" + file.decided_by + ")";
        std::printf("published '%s' %s%s in %u slots (%s); stop with Ctrl-C or SIGTERM\n", o.name.c_str(),
                    desc.to_string().c_str(), about.c_str(), o.slots, ipc::shm_file_path(o.name).c_str());
      }
      std::fflush(stdout);
    }
    if (i < frames) {
      // Without an interval, still look for a pending signal after every
      // frame (one cheap syscall): SIGTERM must not wait for all N frames.
      sig = wait_for_stop_signal(std::chrono::milliseconds(static_cast<long>(o.interval_ms)));
    }
  }
  if (frames > 1 && !o.json) {
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
  cmd->add_option("FILE", o->file,
                  "Image (.tif with its axes: [Z,] Y, X [, C], one frame per time point; .png, .jpg) or .npy array")
      ->required();
  cmd->add_option("NAME", o->name, "Segment name: 1-128 of A-Z a-z 0-9 . _ -")->required();
  add_axis_options(*cmd, o->axes.channel_axis, o->axes.z_axis);
  cmd->add_option("--frames", o->frames,
                  "Publish this many frames into the ring, cycling through the file's time points (default: one each)")
      ->check(CLI::Range(1ull, 1ull << 40));
  cmd->add_option("--slots", o->slots, "Ring slots (1-8)")->check(CLI::Range(1u, 8u));
  cmd->add_option("--interval-ms", o->interval_ms, "Pause between frames")->check(non_negative());
  cmd->add_option("--linger-ms", o->linger_ms,
                  "Exit (and unlink) this long after the last frame instead of waiting for a signal");
  cmd->add_flag("--json", o->json, "Print what was published (shape, dtype, axes and how they were decided) as JSON");
  cmd->callback([o] { run_publish(*o); });
}

}  // namespace cpipc::cli
