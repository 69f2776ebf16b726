// cpipc stats NAME -o FILE.csv: per-object measurements of a segment's
// label frame (regionprops' definitions; docs/CONSUMERS.md).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "cli_common.hpp"
#include "cpipc/error.hpp"
#include "cpipc/post/stats.hpp"
#if CPIPC_HAVE_POST_CUDA
#include "cpipc/cuda/post.hpp"
#endif
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
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(Errc::io, "cannot write '" + path + "': " + std::strerror(errno));
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out.flush()) throw Error(Errc::io, "cannot write '" + path + "': " + std::strerror(errno));
}

void run_stats(const StatsOptions& o) {
  if (o.channel >= 0 && o.image.empty()) throw Error(Errc::invalid_argument, "--channel needs --image");
  const LabelFrame masks = read_label_frame(o.name, o.frame);
  SourceImage image;
  if (!o.image.empty()) image = read_source_image(o.image, masks, o.name, o.channel);
  const float* intensity = o.image.empty() ? nullptr : image.pixels.data();
  const int channels = o.image.empty() ? 0 : image.channels;
  std::vector<post::ObjectStats> stats;
  if (o.device == "cpu") {
    stats = post::object_stats(masks.labels.data(), masks.height, masks.width, intensity, std::max(channels, 1));
  } else {
#if CPIPC_HAVE_POST_CUDA
    stats = cuda::object_stats_from_host(masks.labels.data(), masks.height, masks.width, intensity,
                                         std::max(channels, 1), cuda_ordinal(o.device));
#else
    throw Error(Errc::invalid_argument, "this cpipc was built without CUDA; use --device cpu");
#endif
  }
  write_text(o.output, post::stats_csv(stats, channels));
  if (o.output == "-") return;  // stdout holds the table
  if (o.json) {
    nlohmann::json j = {{"segment", o.name},
                        {"frame_id", masks.frame_id},
                        {"masks", masks.desc.to_string()},
                        {"objects", stats.size()},
                        {"image", o.image.empty() ? nlohmann::json() : nlohmann::json(o.image)},
                        {"channels", channels},
                        {"output", o.output}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%zu objects in frame %llu of '%s' (%s) -> %s\n", stats.size(),
                static_cast<unsigned long long>(masks.frame_id), o.name.c_str(), masks.desc.to_string().c_str(),
                o.output.c_str());
  }
}

}  // namespace

void register_stats(CLI::App& app) {
  auto o = std::make_shared<StatsOptions>();
  CLI::App* cmd =
      app.add_subcommand("stats",
                         "Per-object measurements of a segment's label frame as CSV: area, centroid, box, perimeter, "
                         "diameter, and intensity under each mask with --image (see docs/CONSUMERS.md)");
  cmd->add_option("NAME", o->name, "Segment name (a label image, 0 = background)")->required();
  cmd->add_option("-o,--output", o->output, "CSV file, or - for stdout")->required();
  cmd->add_option("--image", o->image,
                  "Source image (.tif, .png, .jpg, .npy; first frame), same height and width as the masks: adds "
                  "intensity_mean/min/max, per channel (_c0, _c1, ...) for a multi-channel image");
  cmd->add_option("--channel", o->channel, "Measure only this channel of --image (0-based)")
      ->check(CLI::NonNegativeNumber);
  o->frame.add_to(cmd);
  cmd->add_flag("--json", o->json, "Print the summary as one JSON object (nothing is printed with -o -)");
  add_post_device_option(cmd, o->device);
  cmd->callback([o] { run_stats(*o); });
}

}  // namespace cpipc::cli
