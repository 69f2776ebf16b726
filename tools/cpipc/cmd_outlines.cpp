// cpipc outlines NAME --image IMAGE -o FILE.png: the source image with the
// outlines of a segment's masks drawn on it, as Cellpose saves it; for a
// label volume, each plane's outlines on its plane, as an RGB stack.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "cli_common.hpp"
#include "cpipc/cuda/post.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/post/outlines.hpp"
#include "device_input.hpp"
#include "number_checks.hpp"
#include "post_input.hpp"

namespace cpipc::cli {

namespace {

struct OutlinesOptions {
  std::string name;
  std::string image;
  std::string output;
  int channel = -1;
  std::vector<int> colour{255, 0, 0};
  FrameOptions frame;
  bool json = false;
  std::string device = "cpu";
};

void run_outlines(const OutlinesOptions& o) {
  if (o.channel >= 0 && o.image.empty()) throw Error(Errc::invalid_argument, "--channel needs --image");
  const post::Rgb colour{static_cast<std::uint8_t>(o.colour[0]), static_cast<std::uint8_t>(o.colour[1]),
                         static_cast<std::uint8_t>(o.colour[2])};
  LabelFrame masks;
  SourceImage image;
  std::vector<std::uint8_t> rgb;
  const char* view = "host";
  if (o.device != "cpu" && !is_mask_file(o.name)) {
    if (std::optional<DeviceLabelFrame> d = device_label_frame(o.name, o.frame, cuda_ordinal(o.device))) {
      if (!o.image.empty()) image = read_source_image(o.image, d->frame, o.name, o.channel);
      const std::vector<std::uint8_t> edges =
          cuda::outline_mask(d->labels(), d->frame.desc.dtype, d->frame.height, d->frame.width, nullptr);
      if (d->lease->valid()) {  // else the producer took the slot back meanwhile: read the host view below
        masks = std::move(d->frame);
        rgb = post::outlines_picture(edges.data(), masks.height, masks.width,
                                     o.image.empty() ? nullptr : image.pixels.data(), image.channels, colour);
        view = "device";
      }
    }
  }
  if (rgb.empty()) {
    masks = read_label_frame(o.name, o.frame, /*volumes=*/true);
    if (!o.image.empty()) image = read_source_image(o.image, masks, o.name, o.channel);
    // A label volume: each plane's outlines, drawn as one tall picture, so
    // that the whole stack shares one display scaling (its percentiles).
    const int planes = std::max(masks.depth, 1);
    const std::size_t plane = static_cast<std::size_t>(masks.height) * static_cast<std::size_t>(masks.width);
    std::vector<std::uint8_t> edges(plane * static_cast<std::size_t>(planes));
    for (int z = 0; z < planes; ++z) {
      const std::uint32_t* labels = masks.labels.data() + static_cast<std::size_t>(z) * plane;
      const std::vector<std::uint8_t> e =
          o.device == "cpu" ? post::outline_mask(labels, masks.height, masks.width)
                            : cuda::outline_mask_from_host(labels, masks.height, masks.width, cuda_ordinal(o.device));
      std::copy(e.begin(), e.end(), edges.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(z) * plane));
    }
    rgb = post::outlines_picture(edges.data(), planes * masks.height, masks.width,
                                 o.image.empty() ? nullptr : image.pixels.data(), image.channels, colour);
  }
  const std::vector<std::int64_t> shape = masks.depth > 0
                                              ? std::vector<std::int64_t>{masks.depth, masks.height, masks.width, 3}
                                              : std::vector<std::int64_t>{masks.height, masks.width, 3};
  const ipc::TensorDesc desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  const ipc::HostView picture{reinterpret_cast<const std::byte*>(rgb.data()), desc};
  io::write_picture(o.output, picture);
  if (o.json) {
    const bool file = is_mask_file(o.name);
    nlohmann::json j = {{file ? "file" : "segment", o.name},
                        {"frame_id", file ? nlohmann::json() : nlohmann::json(masks.frame_id)},
                        {"masks", masks.desc.to_string()},
                        {"image", o.image.empty() ? nlohmann::json() : nlohmann::json(o.image)},
                        {"view", view},
                        {"output", o.output}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    const std::string from =
        is_mask_file(o.name) ? "'" + o.name + "'" : "frame " + std::to_string(masks.frame_id) + " of '" + o.name + "'";
    std::printf("outlines of %s (%s) on %s -> %s\n", from.c_str(), masks.desc.to_string().c_str(),
                o.image.empty() ? "black" : o.image.c_str(), o.output.c_str());
  }
}

}  // namespace

void register_outlines(CLI::App& app) {
  auto o = std::make_shared<OutlinesOptions>();
  CLI::App* cmd =
      app.add_subcommand("outlines",
                         "Draw the outlines of a segment's masks on the source image (8-bit, 1-99 percentile) as RGB: "
                         ".png, .tif, .npy; 3-D masks plane by plane, as an RGB stack (see docs/CONSUMERS.md)");
  cmd->add_option("NAME", o->name,
                  "Segment name, or a mask file (.png, .tif, .npy; a path with '/' or an existing file): a label "
                  "image [H, W] or volume [Z, H, W], 0 = background")
      ->required();
  cmd->add_option("-o,--output", o->output,
                  "Picture file: .png, .tif (RGB), .npy (uint8 [H, W, 3]; [Z, H, W, 3] for a label volume: "
                  ".tif, .npy or .bin), .bin")
      ->required();
  cmd->add_option("--image", o->image,
                  "Source image (.tif, .png, .jpg, .npy; first frame), same height and width as the masks (a z-stack "
                  "of the same depth for a label volume); without it the outlines are drawn on black");
  cmd->add_option("--channel", o->channel, "Show only this channel of --image, as gray (0-based)")
      ->check(non_negative());
  cmd->add_option("--colour,--color", o->colour, "Outline colour R,G,B (default 255,0,0, Cellpose's red)")
      ->delimiter(',')
      ->expected(3)
      ->check(CLI::Range(0, 255));
  o->frame.add_to(cmd);
  cmd->add_flag("--json", o->json, "Print the summary as one JSON object");
  add_post_device_option(cmd, o->device);
  cmd->callback([o] { run_outlines(*o); });
}

}  // namespace cpipc::cli
