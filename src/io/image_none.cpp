#include "cpipc/error.hpp"
#include "image.hpp"

namespace cpipc::io::detail {

Array read_image(const std::string& path) {
  throw Error(Errc::invalid_argument,
              "cannot read '" + path + "': this cpipc was built without OpenCV; use .npy, or rebuild with OpenCV");
}

void write_image(const std::string& path, const ipc::HostView&, const std::string&) {
  throw Error(Errc::invalid_argument,
              "cannot write '" + path + "': this cpipc was built without OpenCV; use .npy or .bin");
}

bool have_image_codecs() noexcept { return false; }

}  // namespace cpipc::io::detail
