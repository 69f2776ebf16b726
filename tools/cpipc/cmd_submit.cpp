// cpipc submit: send images to a running producer (cpipc serve), follow
// progress, print each result; --save writes the masks from the host view.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "axis_options.hpp"
#include "cli_common.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/outputs.hpp"
#include "cpipc/io/tiff.hpp"
#include "cpipc/service/client.hpp"
#include "image_options.hpp"
#include "number_checks.hpp"
#include "volume_flags.hpp"

namespace cpipc::cli {

namespace {

namespace fs = std::filesystem;

struct SubmitArgs {
  std::vector<std::string> images;
  std::string socket;
  std::string name = "cpipc";
  service::SubmitRequest params;  // the Cellpose parameters; id and image set per image
  std::string channels;
  double timeout_s = 0.0;
  std::string save_dir;
  bool json = false;
  ImageFlags image;
  VolumeFlags volume;
};

void run_submit(SubmitArgs a) {
  if (!a.channels.empty()) {
    const auto comma = a.channels.find(',');
    try {
      if (comma == std::string::npos) throw std::invalid_argument("no comma");
      a.params.channels =
          std::array<int, 2>{std::stoi(a.channels.substr(0, comma)), std::stoi(a.channels.substr(comma + 1))};
    } catch (const std::exception&) {
      throw Error(Errc::invalid_argument, "bad --channels '" + a.channels + "': expected SEG,NUC, e.g. 0,0 or 2,3");
    }
  }
  if (a.timeout_s > 0) a.params.timeout_s = a.timeout_s;
  // Only what was asked for travels: the rest stays the producer's default.
  const ImageFlags& f = a.image;
  if (f.no_norm) a.params.normalize = false;
  a.params.norm_percentile = f.percentiles();
  if (f.invert) a.params.invert = true;
  if (f.exclude_on_edges) a.params.exclude_on_edges = true;
  if (f.no_resample) a.params.resample = false;
  if (f.augment) a.params.augment = true;
  if (a.volume.do_3d) a.params.do_3d = true;
  if (a.volume.stitch_threshold > 0.0f) a.params.stitch_threshold = a.volume.stitch_threshold;
  if (a.volume.anisotropy != 1.0) a.params.anisotropy = a.volume.anisotropy;
  if (!a.volume.flow3d_smooth.empty()) a.params.flow3d_smooth = a.volume.smooth_sigmas();
  const std::string socket = a.socket.empty() ? service::default_socket_path(a.name) : a.socket;
  service::Client client = service::Client::connect(socket);
  const bool tty = ::isatty(STDERR_FILENO) == 1 && !a.json;

  int first_failure = 0;
  for (std::size_t i = 0; i < a.images.size(); ++i) {
    const std::string& image = a.images[i];
    service::SubmitRequest r = a.params;
    r.id = "image-" + std::to_string(i);
    std::error_code ec;
    r.image = fs::absolute(image, ec).string();  // the producer's working directory is not ours
    try {
      const service::SegmentResult res = client.segment(r, [&](const nlohmann::json& m) {
        if (tty && m.value("type", "") == "progress") {
          std::fprintf(stderr, "\r\033[K%s: %s %d/%d", image.c_str(), m.value("stage", "").c_str(),
                       m.value("tiles_done", 0), m.value("tiles_total", 0));
          std::fflush(stderr);
        }
      });
      if (tty) std::fprintf(stderr, "\r\033[K");
      const service::Result& result = res.result;
      nlohmann::json line = service::to_json(result);
      line["image"] = image;
      if (!a.save_dir.empty() && res.masks.desc.ndim == 3) {  // a z-stack: one mask stack, as segment writes
        const std::string path = (fs::path(a.save_dir) / (fs::path(image).stem().string() + "_cp_masks.tif")).string();
        std::error_code mk;
        fs::create_directories(a.save_dir, mk);
        io::write_tiff(path, res.masks.view(), "ZYX");
        line["saved"] = {path};
      } else if (!a.save_dir.empty()) {
        line["saved"] = io::save_cellpose_outputs(a.save_dir, fs::path(image).stem().string(), res.masks.view(),
                                                  result.objects, true);
      }
      if (a.json) {
        std::printf("%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        std::string size;
        for (std::int64_t e : result.shape) size += (size.empty() ? "" : " x ") + std::to_string(e);
        if (result.shape.size() == 3) size += " (a z-stack, each plane in 2-D)";
        std::printf(
            "%s: %u objects in %s at diameter %.2f px%s; segment %.3f s, request %.3f s -> segment '%s' slot %u seq "
            "%llu%s\n",
            image.c_str(), result.objects, size.c_str(), result.diameter,
            result.diameter_estimated ? " (estimated)" : "", result.timings.total_s, result.request_s,
            result.segment.c_str(), result.slot, static_cast<unsigned long long>(result.seq),
            line.contains("saved") ? (", saved " + line["saved"][0].get<std::string>()).c_str() : "");
      }
      std::fflush(stdout);
    } catch (const Error& e) {
      if (tty) std::fprintf(stderr, "\r\033[K");
      // A producer that is gone ends the run; other errors are this image's.
      if (e.code() == Errc::producer_gone && std::string(e.what()).find("closed the connection") != std::string::npos) {
        throw;
      }
      if (first_failure == 0) first_failure = exit_status(e.code());
      if (a.json) std::printf("%s\n", nlohmann::json{{"image", image}, {"error", e.what()}}.dump().c_str());
      std::fprintf(stderr, "cpipc: error: %s: %s\n", image.c_str(), e.what());
    }
  }
  if (first_failure != 0) throw ExitStatus{first_failure};
}

}  // namespace

void register_submit(CLI::App& app) {
  auto a = std::make_shared<SubmitArgs>();
  CLI::App* cmd = app.add_subcommand("submit", "Send images to a running producer (cpipc serve) and print the results");
  cmd->add_option("images", a->images, "Image files the producer can read (paths are made absolute)")->required();
  cmd->add_option("--socket", a->socket, "The producer's socket (default: that of --name)");
  cmd->add_option("--name", a->name, "The producer's stream name (default cpipc)");
  cmd->add_option("--diameter", a->params.diameter,
                  "Cell diameter, px (default: the producer's; 0, or none given to either: estimated)")
      ->check(diameter_pixels());
  cmd->add_option("--channels", a->channels, "SEG,NUC 1-based channels, 0,0 = grayscale");
  add_axis_options(*cmd, a->params.channel_axis, a->params.z_axis);
  cmd->add_option("--flow-threshold,--flow_threshold", a->params.flow_threshold, "Flow-error QC threshold, 0 = off")
      ->check(non_negative());
  cmd->add_option("--cellprob-threshold,--cellprob_threshold", a->params.cellprob_threshold,
                  "Foreground: cellprob above this");
  cmd->add_option("--min-size,--min_size", a->params.min_size, "Remove masks smaller than this, pixels");
  cmd->add_option("--niter", a->params.niter, "Flow-following steps (0 = automatic)")->check(non_negative());
  add_image_options(*cmd, a->image);
  add_volume_options(*cmd, a->volume);
  cmd->add_option("--timeout", a->timeout_s, "Give up on an image after this many seconds")->check(non_negative());
  cmd->add_option("--save", a->save_dir, "Also write <stem>_cp_masks.png and _cp_outlines.txt here");
  cmd->add_flag("--json", a->json, "One JSON object per image (the producer's result message)");
  cmd->callback([a] { run_submit(*a); });
}

}  // namespace cpipc::cli
