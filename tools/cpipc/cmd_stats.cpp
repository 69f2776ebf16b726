// cpipc stats NAME -o FILE.csv: per-object measurements of a segment's
// label frame (regionprops' definitions; docs/CONSUMERS.md).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "cli_common.hpp"
#include "cpipc/cuda/post.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/replace_file.hpp"
#include "cpipc/post/stats.hpp"
#include "device_input.hpp"
#include "number_checks.hpp"
#include "post_input.hpp"

namespace cpipc::cli {

namespace {

struct StatsOptions {
  std::string name;
  std::string image;
  std::string output;
  int channel = -1;
  FrameOptions frame;
  bool json = false;
  std::string device = "cpu";
};

void write_text(const std::string& path, const std::string& text) {
  if (path == "-") {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
      throw Error(Errc::io, std::string("cannot write to stdout: ") + std::strerror(errno));
    }
    return;
  }
  io::write_file(path, {text});
}

void run_stats(const StatsOptions& o) {
  if (o.channel >= 0 && o.image.empty()) throw Error(Errc::invalid_argument, "--channel needs --image");
  LabelFrame masks;
  SourceImage image;
  std::optional<std::vector<post::ObjectStats>> stats;
  std::optional<std::vector<post::ObjectStats3D>> stats_3d;
  const char* view = "host";
  if (o.device != "cpu" && !is_mask_file(o.name)) {
    if (std::optional<DeviceLabelFrame> d = device_label_frame(o.name, o.frame, cuda_ordinal(o.device))) {
      if (!o.image.empty()) image = read_source_image(o.image, d->frame, o.name, o.channel);
      std::vector<post::ObjectStats> measured = cuda::object_stats_of_device_labels(
          d->labels(), d->frame.desc.dtype, d->frame.height, d->frame.width,
          o.image.empty() ? nullptr : image.pixels.data(), std::max(image.channels, 1), nullptr);
      if (d->lease->valid()) {  // else the producer took the slot back meanwhile: read the host view below
        masks = std::move(d->frame);
        stats = std::move(measured);
        view = "device";
      }
    }
  }
  if (!stats) {
    masks = read_label_frame(o.name, o.frame, /*volumes=*/true);
    if (!o.image.empty()) image = read_source_image(o.image, masks, o.name, o.channel);
    const float* intensity = o.image.empty() ? nullptr : image.pixels.data();
    const int c = std::max(image.channels, 1);
    if (masks.depth > 0) {
      // A label volume [Z, Y, X]: measured on the host whatever --device
      // says, as the CUDA stats (cuda::object_stats_*) are 2-D only.
      stats_3d = post::object_stats_3d(masks.labels.data(), masks.depth, masks.height, masks.width, intensity, c);
    } else if (o.device == "cpu") {
      stats = post::object_stats(masks.labels.data(), masks.height, masks.width, intensity, c);
    } else {
      stats = cuda::object_stats_from_host(masks.labels.data(), masks.height, masks.width, intensity, c,
                                           cuda_ordinal(o.device));
    }
  }
  const int channels = o.image.empty() ? 0 : image.channels;
  write_text(o.output, stats_3d ? post::stats_csv_3d(*stats_3d, channels) : post::stats_csv(*stats, channels));
  const std::size_t objects = stats_3d ? stats_3d->size() : stats->size();
  if (o.output == "-") return;  // stdout holds the table
  if (o.json) {
    const bool file = is_mask_file(o.name);
    nlohmann::json j = {{file ? "file" : "segment", o.name},
                        {"frame_id", file ? nlohmann::json() : nlohmann::json(masks.frame_id)},
                        {"masks", masks.desc.to_string()},
                        {"objects", objects},
                        {"image", o.image.empty() ? nlohmann::json() : nlohmann::json(o.image)},
                        {"channels", channels},
                        {"view", view},
                        {"output", o.output}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    const std::string from =
        is_mask_file(o.name) ? "'" + o.name + "'" : "frame " + std::to_string(masks.frame_id) + " of '" + o.name + "'";
    std::printf("%zu objects in %s (%s) -> %s\n", objects, from.c_str(), masks.desc.to_string().c_str(),
                o.output.c_str());
  }
}

}  // namespace

void register_stats(CLI::App& app) {
  auto o = std::make_shared<StatsOptions>();
  CLI::App* cmd =
      app.add_subcommand("stats",
                         "Per-object measurements of a segment's label frame as CSV: area, centroid, box, perimeter, "
                         "diameter, and intensity under each mask with --image; for a [Z, Y, X] frame volume, "
                         "centroid, box and diameter in 3-D (see docs/CONSUMERS.md)");
  cmd->add_option("NAME", o->name,
                  "Segment name, or a mask file (.png, .tif, .npy; a path with '/' or an existing file): a label "
                  "image, 0 = background")
      ->required();
  cmd->add_option("-o,--output", o->output, "CSV file, or - for stdout")->required();
  cmd->add_option("--image", o->image,
                  "Source image (.tif, .png, .jpg, .npy; first frame), same height and width as the masks (for "
                  "[Z, Y, X] masks a z-stack [Z, Y, X] or [Z, Y, X, C] of the same shape): adds "
                  "intensity_mean/min/max, per channel (_c0, _c1, ...) for a multi-channel image");
  cmd->add_option("--channel", o->channel, "Measure only this channel of --image (0-based)")->check(non_negative());
  o->frame.add_to(cmd);
  cmd->add_flag("--json", o->json, "Print the summary as one JSON object (nothing is printed with -o -)");
  add_post_device_option(cmd, o->device);
  cmd->callback([o] { run_stats(*o); });
}

}  // namespace cpipc::cli
