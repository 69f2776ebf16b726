// --channel-axis and --z-axis, shared by segment, publish and submit.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

namespace cpipc::cli {

// Cellpose's spellings are accepted too (--channel_axis, --z_axis): axes of
// the image as stored, which win over its metadata and over guessing.
inline void add_axis_options(CLI::App& cmd, std::optional<int>& channel_axis, std::optional<int>& z_axis) {
  cmd.add_option_function<int>(
      "--channel-axis,--channel_axis", [&channel_axis](int v) { channel_axis = v; },
      "Which axis of the stored array holds the channels (default: the file's metadata, else guessed as Cellpose)");
  cmd.add_option_function<int>(
      "--z-axis,--z_axis", [&z_axis](int v) { z_axis = v; },
      "Which axis of the stored array is Z (default: the file's metadata, else guessed as Cellpose)");
}

}  // namespace cpipc::cli
