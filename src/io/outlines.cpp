#include "cpipc/io/outlines.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>

#include "cpipc/error.hpp"
#include "image.hpp"

namespace cpipc::io {

std::vector<Polygon> outline_polygons(const std::uint32_t* labels, int height, int width, std::uint32_t count) {
  if (height < 0 || width < 0 || (labels == nullptr && height > 0 && width > 0)) {
    throw Error(Errc::invalid_argument, "outline_polygons: bad label image (" + std::to_string(height) + " x " +
                                            std::to_string(width) + (labels ? ")" : ", no data)"));
  }
  if (height == 0 || width == 0 || count == 0) return {};
  return detail::outlines(labels, height, width, count);
}

void write_outlines_txt(const std::string& path, const std::vector<Polygon>& polygons) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(Errc::io, "cannot write '" + path + "': " + std::strerror(errno));
  std::string line;
  char number[16];
  for (const Polygon& polygon : polygons) {
    line.clear();
    for (const auto& point : polygon) {
      for (const int v : point) {
        if (!line.empty()) line += ',';
        line.append(number, std::to_chars(number, number + sizeof number, v).ptr);
      }
    }
    line += '\n';
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
  if (!out.flush()) throw Error(Errc::io, "cannot write '" + path + "': " + std::strerror(errno));
}

}  // namespace cpipc::io
