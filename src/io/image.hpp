// The OpenCV codec plugin behind read_image_file for JPEG and BMP (TIFF is
// libtiff's, PNG libpng's, in every build), and file-name helpers.
#pragma once

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "cpipc/io/array.hpp"
#include "cpipc/io/probe.hpp"

namespace cpipc::io::detail {

// A JPEG or BMP decoded by OpenCV: [H, W] or [H, W, C] in RGB(A) order.
// `info`: probe_image(path), which the caller has made already.
[[nodiscard]] Array read_image(const std::string& path, const ImageInfo& info);
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
