// What `cpipc stats` and `cpipc outlines` share: the label frame of a
// segment and the source image beside it, checked, as plain arrays.
#pragma once

#include <CLI/CLI.hpp>

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/ipc/reader.hpp"

namespace cpipc::cli {

// Which frame of the segment to read, and how long to wait for it.
struct FrameOptions {
  std::string frame = "latest";  // latest | next
  long wait_ms = -1;             // -1: latest waits 0 ms, next 10 s

  void add_to(CLI::App* cmd) {
    cmd->add_option("--frame", frame,
                    "latest: the newest frame (default); next: the first frame published after this starts")
        ->check(CLI::IsMember({"latest", "next"}));
    cmd->add_option("--wait-ms", wait_ms,
                    "How long to wait for the frame: latest waits only if there is none yet (default 0), "
                    "next waits for a new one (default 10000)")
        ->check(CLI::NonNegativeNumber);
  }
};

// A label image from a segment, as uint32: [height, width], or with depth
// > 0 a label volume [depth, height, width].
struct LabelFrame {
  std::vector<std::uint32_t> labels;
  int depth = 0;
  int height = 0;
  int width = 0;
  std::uint64_t frame_id = 0;
  ipc::TensorDesc desc;
};

// True when `source` names a mask file rather than a segment: a path (it
// has a '/'), or an existing file ending in .png, .tif, .tiff or .npy
// (segment names cannot hold '/', and files are what Cellpose writes).
inline bool is_mask_file(const std::string& source) {
  if (source.find('/') != std::string::npos) return true;
  struct stat st {};
  for (const char* ext : {".png", ".tif", ".tiff", ".npy"}) {
    if (source.ends_with(ext)) return ::stat(source.c_str(), &st) == 0;
  }
  return false;
}

// Reads `path` as io::read_image_file does; with `z_stack`, a 3-axis array
// whose axes the file does not name (a .npy, a plain multi-page TIFF) is
// read as [Z, Y, X] rather than guessed to have channels.
inline io::ImageFile read_image_or_stack(const std::string& path, bool z_stack) {
  io::ImageFile file = io::read_image_file(path);
  if (z_stack && file.frames.size() == 1 && file.frames.front().axes == "YXC" &&
      file.decided_by == "guessed as Cellpose 4 does") {
    io::AxisOptions axes;
    axes.z_axis = 0;
    file = io::read_image_file(path, axes);
  }
  return file;
}

// The label image of a mask file (`_cp_masks.png`, `.tif`, `.npy`): its one
// [H, W] page of unsigned or non-negative integers, or with `volumes` also
// one [Z, Y, X] stack. Throws what io::read_image_file throws, and
// Error(invalid_argument) for anything else.
inline LabelFrame read_label_file(const std::string& path, bool volumes = false) {
  io::ImageFile file = read_image_or_stack(path, volumes);
  const ipc::TensorDesc& desc = file.frames.front().array.desc;
  const bool volume = volumes && file.frames.front().axes == "ZYX";
  if (file.frames.size() != 1 || (desc.ndim != 2 && !volume)) {
    throw Error(Errc::invalid_argument, "'" + path + "' holds " + std::to_string(file.frames.size()) + " image(s) of " +
                                            desc.to_string() + " (" + file.frames.front().axes +
                                            (volumes ? "); expected one label image [H, W] or stack [Z, Y, X]"
                                                     : "); expected one label image [H, W]"));
  }
  LabelFrame f;
  f.labels = io::to_labels(file.frames.front().array, "'" + path + "'");
  f.depth = volume ? static_cast<int>(desc.shape[0]) : 0;
  f.height = static_cast<int>(desc.shape[desc.ndim - 2]);
  f.width = static_cast<int>(desc.shape[desc.ndim - 1]);
  f.desc = desc;
  return f;
}

// Attaches to segment `name` and reads the frame `o` asks for, copying it
// out (a seqlock copy: never torn, never holds the producer up). The frame
// must be a C-contiguous [H, W] array of unsigned or non-negative signed
// integers. Throws Error(not_found) for a missing segment or one with no
// frame, Error(producer_gone) when its producer is gone, Error(timed_out)
// when no next frame comes, Error(invalid_argument) for another tensor.
// A mask file (is_mask_file) is read as it is; `o` then must ask for the
// latest frame. With `volumes`, a [Z, Y, X] frame (or stack file) is read
// too, as a LabelFrame with depth > 0.
inline LabelFrame read_label_frame(const std::string& name, const FrameOptions& o, bool volumes = false) {
  if (is_mask_file(name)) {
    if (o.frame == "next")
      throw Error(Errc::invalid_argument, "--frame next needs a segment, not the file '" + name + "'");
    return read_label_file(name, volumes);
  }
  const ipc::SegmentReader reader = ipc::SegmentReader::attach(name);
  const ipc::TensorDesc& desc = reader.desc();
  if (!(desc.ndim == 2 || (volumes && desc.ndim == 3)) || !desc.is_contiguous()) {
    throw Error(Errc::invalid_argument, "segment '" + name + "' holds " + desc.to_string() +
                                            (volumes ? "; expected a label image [H, W] or volume [Z, Y, X]"
                                                     : "; expected a label image [H, W]") +
                                            " (C-contiguous)");
  }
  io::Array frame{desc, {}};
  std::optional<ipc::FrameInfo> info;
  if (o.frame == "next") {
    const auto latest = reader.status().latest;
    const long wait_ms = o.wait_ms < 0 ? 10000 : o.wait_ms;
    reader.wait_next(latest ? latest->frame_id : 0, std::chrono::milliseconds(wait_ms));
    info = reader.copy_latest(frame.data);
  } else {
    info = reader.copy_latest(frame.data);
    if (!info && o.wait_ms > 0) {
      reader.wait_next(0, std::chrono::milliseconds(o.wait_ms));
      info = reader.copy_latest(frame.data);
    }
  }
  if (!info) {
    reader.check_producer();
    throw Error(Errc::not_found, "segment '" + name + "' has no frame yet; wait for one with --wait-ms");
  }
  LabelFrame f;
  f.labels = io::to_labels(frame, "segment '" + name + "'");
  f.depth = desc.ndim == 3 ? static_cast<int>(desc.shape[0]) : 0;
  f.height = static_cast<int>(desc.shape[desc.ndim - 2]);
  f.width = static_cast<int>(desc.shape[desc.ndim - 1]);
  f.frame_id = info->frame_id;
  f.desc = desc;
  return f;
}

// A source image as float32, channels last.
struct SourceImage {
  std::vector<float> pixels;
  int channels = 1;
  ipc::TensorDesc desc;  // as read from the file
};

// The first frame of image file `path`, which must be `masks.height` x
// `masks.width`; for a label volume (masks.depth > 0), a z-stack [Z, Y, X]
// or [Z, Y, X, C] of the masks' depth, height and width (a .npy or plain
// TIFF with 3 axes is read as [Z, Y, X]). `channel` >= 0 keeps only that
// channel (0-based). Throws what io::read_image_file throws, and
// Error(invalid_argument) for another size or a channel the image lacks.
inline SourceImage read_source_image(const std::string& path, const LabelFrame& masks, const std::string& name,
                                     int channel) {
  io::ImageFile file = read_image_or_stack(path, masks.depth > 0);
  io::Array& image = file.frames.front().array;
  const ipc::TensorDesc& d = image.desc;
  const std::string& axes = file.frames.front().axes;
  if (masks.depth > 0) {
    if (!axes.starts_with("ZYX") || d.shape[0] != masks.depth || d.shape[1] != masks.height ||
        d.shape[2] != masks.width) {
      throw Error(Errc::invalid_argument, "image '" + path + "' is " + d.to_string() + " (" + axes +
                                              ") but the masks of '" + name + "' are " + masks.desc.to_string() +
                                              " (ZYX); a z-stack of the same depth, height and width is needed");
    }
  } else if (d.shape[0] != masks.height || d.shape[1] != masks.width) {
    throw Error(Errc::invalid_argument, "image '" + path + "' is " + d.to_string() + " but the masks of '" + name +
                                            "' are " + masks.desc.to_string() + "; height and width must match");
  }
  const int channel_axis = masks.depth > 0 ? 3 : 2;
  SourceImage s;
  s.desc = d;
  s.channels = d.ndim == static_cast<std::uint32_t>(channel_axis) + 1 ? static_cast<int>(d.shape[channel_axis]) : 1;
  s.pixels = io::to_float32(image, "image '" + path + "'");
  if (channel >= 0) {
    if (channel >= s.channels) {
      throw Error(Errc::invalid_argument, "--channel " + std::to_string(channel) + ": image '" + path + "' (" +
                                              d.to_string() + ") has " + std::to_string(s.channels) +
                                              (s.channels == 1 ? " channel" : " channels") + ", numbered from 0");
    }
    if (s.channels > 1) {
      const std::size_t pixels = s.pixels.size() / static_cast<std::size_t>(s.channels);
      for (std::size_t i = 0; i < pixels; ++i) s.pixels[i] = s.pixels[i * s.channels + channel];
      s.pixels.resize(pixels);
      s.channels = 1;
    }
  }
  return s;
}

}  // namespace cpipc::cli
