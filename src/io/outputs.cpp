#include "cpipc/io/outputs.hpp"

#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>

#include "cpipc/error.hpp"
#include "cpipc/io/array.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/imagej_rois.hpp"
#include "cpipc/io/labels.hpp"
#include "cpipc/io/outlines.hpp"
#include "cpipc/io/replace_file.hpp"
#include "cpipc/io/seg_npy.hpp"
#include "cpipc/io/tiff.hpp"
#include "cpipc/post/outlines.hpp"
#include "tiff_writer.hpp"

namespace cpipc::io {

namespace {

namespace fs = std::filesystem;
using ipc::DTypeCode;

constexpr std::uint32_t kPngMaxCount = 65535;  // Cellpose: masks.max() < 2**16 -> PNG

template <class T>
void widen(const ipc::HostView& v, std::vector<std::uint32_t>& out) {
  const T* p = v.as<T>();
  for (std::size_t i = 0; i < out.size(); ++i) {
    if constexpr (std::numeric_limits<T>::is_signed) {
      if (p[i] < 0)
        throw Error(Errc::invalid_argument, "save_cellpose_outputs: negative label " + std::to_string(p[i]));
    }
    if (static_cast<std::uint64_t>(p[i]) > std::numeric_limits<std::uint32_t>::max()) {
      throw Error(Errc::invalid_argument, "save_cellpose_outputs: label " + std::to_string(p[i]) + " exceeds uint32");
    }
    out[i] = static_cast<std::uint32_t>(p[i]);
  }
}

std::vector<std::uint32_t> labels_u32(const ipc::HostView& v) {
  std::vector<std::uint32_t> out(static_cast<std::size_t>(v.desc.numel()));
  const auto d = v.desc.dtype;
  const bool u = d.code == DTypeCode::uint;
  const bool s = d.code == DTypeCode::int_;
  if (u && d.bits == 8) return widen<std::uint8_t>(v, out), out;
  if (u && d.bits == 16) return widen<std::uint16_t>(v, out), out;
  if (u && d.bits == 32) return widen<std::uint32_t>(v, out), out;
  if (u && d.bits == 64) return widen<std::uint64_t>(v, out), out;
  if (s && d.bits == 8) return widen<std::int8_t>(v, out), out;
  if (s && d.bits == 16) return widen<std::int16_t>(v, out), out;
  if (s && d.bits == 32) return widen<std::int32_t>(v, out), out;
  if (s && d.bits == 64) return widen<std::int64_t>(v, out), out;
  throw Error(Errc::invalid_argument,
              "save_cellpose_outputs: labels are " + ipc::to_string(d) + "; expected an integer type");
}

void make_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return;
  if (fs::exists(dir, ec)) throw Error(Errc::io, "cannot save into '" + dir + "': it exists and is not a directory");
  fs::create_directories(dir, ec);
  if (ec) throw Error(Errc::io, "cannot create output directory '" + dir + "': " + ec.message());
}

}  // namespace

std::string masks_output_path(const std::string& dir, const std::string& stem, std::uint32_t count) {
  return (fs::path(dir) / (stem + "_cp_masks" + (count > kPngMaxCount ? ".tif" : ".png"))).string();
}

std::string outlines_output_path(const std::string& dir, const std::string& stem) {
  return (fs::path(dir) / (stem + "_cp_outlines.txt")).string();
}

std::vector<std::string> save_cellpose_outputs(const std::string& dir, const std::string& stem,
                                               const ipc::HostView& labels, std::uint32_t count, bool outlines) {
  CellposeFiles files;
  files.outlines_txt = outlines;
  const SavedFiles saved = save_cellpose_files(dir, stem, labels, count, files, {});
  std::vector<std::string> written{saved.masks()};
  if (outlines) written.push_back(saved.outlines_txt);
  return written;
}

SavedFiles save_cellpose_files(const std::string& dir, const std::string& stem, const ipc::HostView& labels,
                               std::uint32_t count, const CellposeFiles& files, const CellposeFileInputs& inputs) {
  const auto& d = labels.desc;
  if (d.ndim != 2 || !d.is_contiguous() || (labels.data == nullptr && d.numel() > 0)) {
    throw Error(Errc::invalid_argument,
                "save_cellpose_outputs: labels must be a C-contiguous [H, W] view, not " + d.to_string());
  }
  if (d.shape[0] > std::numeric_limits<int>::max() || d.shape[1] > std::numeric_limits<int>::max()) {
    throw Error(Errc::invalid_argument, "save_cellpose_outputs: image too large (" + d.to_string() + ")");
  }
  if (stem.empty()) throw Error(Errc::invalid_argument, "save_cellpose_outputs: empty file stem");
  if (files.seg_npy && inputs.flows == nullptr && d.numel() > 0) {
    throw Error(Errc::invalid_argument, "save_cellpose_outputs: _seg.npy needs the flows");
  }
  const int height = static_cast<int>(d.shape[0]);
  const int width = static_cast<int>(d.shape[1]);
  const std::vector<std::uint32_t> wide = labels_u32(labels);
  for (const std::uint32_t v : wide) {
    if (v > count) {
      throw Error(Errc::invalid_argument,
                  "save_cellpose_outputs: label " + std::to_string(v) + " is above the count " + std::to_string(count));
    }
  }
  // The outlines text and the ROIs are the same polygons (Cellpose's utils.outlines_list).
  std::vector<Polygon> polygons;
  if (files.outlines_txt || files.rois) polygons = outline_polygons(wide.data(), height, width, count);

  make_dir(dir);
  SavedFiles saved;
  const bool png = files.png || !files.tif;
  const bool tif = files.tif || (png && count > kPngMaxCount);  // Cellpose: no PNG from 65536 masks
  if (png && count <= kPngMaxCount) {
    saved.masks_png = masks_output_path(dir, stem, count);
    // Cellpose: masks.astype(np.uint16); every label is at most count < 65536.
    write_array(saved.masks_png, narrow_labels(wide, height, width).view());
  }
  if (tif) {
    saved.masks_tif = (fs::path(dir) / (stem + "_cp_masks.tif")).string();
    if (count > kPngMaxCount) {
      detail::write_uint32_tiff(saved.masks_tif, wide, static_cast<std::uint32_t>(height),
                                static_cast<std::uint32_t>(width));
    } else {
      write_tiff(saved.masks_tif, narrow_labels(wide, height, width).view(), "YX");
    }
  }
  if (files.outlines_txt) {
    saved.outlines_txt = outlines_output_path(dir, stem);
    write_outlines_txt(saved.outlines_txt, polygons);
  }
  if (files.rois) {
    saved.rois = rois_output_path(dir, stem);
    write_imagej_rois(saved.rois, polygons);
  }
  if (files.outlines_png) {
    saved.outlines_png = (fs::path(dir) / (stem + "_outlines_cp_masks.png")).string();
    const std::vector<std::uint8_t> rgb =
        post::draw_outlines(wide.data(), height, width, inputs.image, inputs.image ? inputs.image_channels : 1);
    const std::int64_t shape[3] = {height, width, 3};
    write_array(saved.outlines_png, ipc::HostView{reinterpret_cast<const std::byte*>(rgb.data()),
                                                  ipc::TensorDesc::contiguous(ipc::kUInt8, shape)});
  }
  if (files.seg_npy) {
    saved.seg_npy = (fs::path(dir) / (stem + "_seg.npy")).string();
    SegNpyContent c;
    c.labels = wide.data();
    c.height = height;
    c.width = width;
    c.flows = inputs.flows;
    c.filename = inputs.image_path;
    c.diameter = inputs.diameter;
    c.chan_choose = inputs.chan_choose;
    write_seg_npy(saved.seg_npy, c);
  }
  return saved;
}

}  // namespace cpipc::io
