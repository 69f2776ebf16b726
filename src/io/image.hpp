// Image codecs behind read_array/write_array (OpenCV, or none).
#pragma once

#include <string>

#include "cpipc/io/array.hpp"

namespace cpipc::io::detail {

[[nodiscard]] Array read_image(const std::string& path);
void write_image(const std::string& path, const ipc::HostView& view, const std::string& ext);
[[nodiscard]] bool have_image_codecs() noexcept;

}  // namespace cpipc::io::detail
