#include "cpipc/io/array_file.hpp"

#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/io/labels.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/io/replace_file.hpp"
#include "cpipc/io/tiff.hpp"
#include "image.hpp"
#include "png_codec.hpp"
#include "tiff_writer.hpp"

namespace cpipc::io {

using detail::extension_of;
using detail::is_image_ext;

Array read_array(const std::string& path) {
  const std::string ext = extension_of(path);
  if (ext == ".npy") return read_npy(path);
  if (is_image_ext(ext)) return std::move(read_image_file(path).frames.front().array);
  throw Error(Errc::invalid_argument,
              "cannot read '" + path + "': unknown extension '" + ext + "'; use .npy, .png, .tif, .jpg or .bmp");
}

void write_array(const std::string& path, const ipc::HostView& view) {
  const std::string ext = extension_of(path);
  if (ext == ".npy") return write_npy(path, view);
  if (ext == ".bin" || ext == ".raw") {
    return write_file(path, {{reinterpret_cast<const char*>(view.data), static_cast<std::size_t>(view.desc.nbytes())}});
  }
  const ipc::TensorDesc& d = view.desc;
  if (ext == ".tif" || ext == ".tiff") {
    if (d.ndim != 2 && d.ndim != 3) {
      throw Error(Errc::invalid_argument, "cannot write " + d.to_string() + " to '" + path +
                                              "': a .tif here holds [H, W] or [H, W, C]; save it as .npy");
    }
    // Label images narrow to uint16 where every label fits, as Cellpose
    // saves masks below 65 536 labels (int32 stays: TIFF holds it as is).
    if (d.ndim == 2 && d.is_contiguous() && d.dtype != ipc::kInt32) {
      if (const auto narrowed = labels_as_uint16(view)) return detail::write_tiff(path, narrowed->view(), "YX");
    }
    return detail::write_tiff(path, view, d.ndim == 2 ? "YX" : "YXC");
  }
  if (ext == ".png") {
    // Encoded before the temporary is made: a refused image leaves nothing.
    std::vector<unsigned char> png;
    try {
      png = detail::encode_png(view);
    } catch (const Error& e) {
      throw Error(e.code(), "cannot write '" + path + "': " + e.what());
    }
    return write_replacing(path, [&](const std::string& to) {
      OutputFile out(to);
      out.write(png.data(), png.size());
      out.close();
    });
  }
  throw Error(Errc::invalid_argument,
              "cannot write '" + path + "': unknown extension '" + ext + "'; use .npy, .bin, .png or .tif");
}

void write_tiff(const std::string& path, const ipc::HostView& view, std::string_view axes) {
  detail::write_tiff(path, view, axes);
}

bool image_codecs_available() noexcept { return detail::have_image_codecs(); }

void write_picture(const std::string& path, const ipc::HostView& view) {
  const ipc::TensorDesc& d = view.desc;
  const std::string ext = extension_of(path);
  if (ext == ".tif" || ext == ".tiff") return detail::write_tiff(path, view, d.ndim == 4 ? "ZYXS" : "YXS");
  if (d.ndim == 4 && ext == ".png") {
    throw Error(Errc::invalid_argument, "cannot write a stack of pictures (" + d.to_string() + ") to '" + path +
                                            "': a .png holds one plane; write .tif (an RGB stack) or .npy");
  }
  write_array(path, view);
}

}  // namespace cpipc::io
