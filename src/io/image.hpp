// Image codecs behind read_array/write_array/read_frames
// (the OpenCV plugin, or none).
#pragma once

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "cpipc/io/array.hpp"
#include "cpipc/io/probe.hpp"

namespace cpipc::io::detail {

[[nodiscard]] Array read_image(const std::string& path);
void write_image(const std::string& path, const ipc::HostView& view, const std::string& ext);
// `info`: probe_image(path), which read_frames has made already.
[[nodiscard]] std::vector<Array> read_image_frames(const std::string& path, const ImageInfo& info);
[[nodiscard]] bool have_image_codecs() noexcept;

// The extension of `path`, lower case, with its dot (".tif").
[[nodiscard]] inline std::string extension_of(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

[[nodiscard]] inline bool is_image_ext(const std::string& ext) {
  return ext == ".png" || ext == ".tif" || ext == ".tiff" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

}  // namespace cpipc::io::detail
