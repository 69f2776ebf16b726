// ImageJ ROIs of masks, as Cellpose's io.save_rois writes them
// (`<stem>_rois.zip`, which Fiji's ROI Manager opens).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cpipc/io/outlines.hpp"

namespace cpipc::io {

// "<dir>/<stem>_rois.zip".
[[nodiscard]] std::string rois_output_path(const std::string& dir, const std::string& stem);

// One ImageJ .roi file (ImageJ's RoiEncoder format, big-endian): the
// polygon `points` (pixel coordinates {x, y}) named `name`, byte for byte
// what roifile's ImagejRoi.frompoints(points, name=name).tobytes() makes: a
// FREEHAND ROI with the overlay-backgrounds and overlay-labels options,
// version 229, coordinates relative to the bounding box as int16, and also
// as float32 (the subpixel option) when one is above 60535, as roifile
// does. Throws Error(invalid_argument) for no points or a name that is not
// ASCII.
[[nodiscard]] std::string encode_imagej_roi(const Polygon& points, std::string_view name);

// A fresh time-based (version 1) UUID in its 36-character text form: the
// name roifile gives each of Cellpose's ROIs (str(uuid.uuid1())), made by
// libuuid's uuid_generate_time_safe as Python's uuid module makes it.
[[nodiscard]] std::string roi_name();

// Writes the non-empty polygons, in order, as an uncompressed ZIP of .roi
// files named "<roi_name()>.roi", as Cellpose's save_rois does (empty
// polygons, masks too small for an outline, are left out as there; with none
// left the archive is empty). Replaces the file as a whole, never appends
// to it. Throws Error(io) when it cannot be written.
void write_imagej_rois(const std::string& path, const std::vector<Polygon>& polygons);

}  // namespace cpipc::io
