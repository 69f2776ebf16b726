#include "cpipc/io/frames.hpp"

#include "cpipc/io/image.hpp"

namespace cpipc::io {

std::vector<Array> read_frames(const std::string& path) {
  ImageFile file = read_image_file(path);
  std::vector<Array> out;
  out.reserve(file.frames.size());
  for (Image& img : file.frames) out.push_back(std::move(img.array));
  return out;
}

}  // namespace cpipc::io
