// Per-object measurements of a label image, as scikit-image's regionprops
// defines them (docs/CONSUMERS.md lists each column and its definition).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cpipc::post {

// The intensity of one image channel under one mask.
struct IntensityStats {
  double mean = 0;  // sum / area, summed in double
  float min = 0;
  float max = 0;
};

// One object (all pixels of one label, whether or not they are connected).
// Coordinates are pixel indices: row y, column x, pixel centres at integers.
struct ObjectStats {
  std::uint32_t label = 0;
  std::int64_t area = 0;  // pixels
  // Mean row and column of the object's pixels (regionprops' centroid).
  double centroid_y = 0;
  double centroid_x = 0;
  // Bounding box, end exclusive: rows [bbox_y0, bbox_y1), columns
  // [bbox_x0, bbox_x1) (regionprops' bbox).
  int bbox_y0 = 0;
  int bbox_x0 = 0;
  int bbox_y1 = 0;
  int bbox_x1 = 0;
  // Pixels; skimage.measure.perimeter(mask, neighborhood=4), which is
  // regionprops' perimeter: border pixels are mask pixels with a
  // 4-neighbour outside the mask (or the image); each border pixel weighs 1,
  // sqrt(2) or (1 + sqrt(2)) / 2 by which of its 8 neighbours are border
  // pixels too (Benkrid & Crookes' estimator).
  double perimeter = 0;
  // sqrt(4 * area / pi): the diameter of a disk of the same area
  // (regionprops' equivalent_diameter_area).
  double equivalent_diameter = 0;
  // One entry per channel of the intensity image; empty without one.
  std::vector<IntensityStats> intensity;
};

// The objects of `labels` (row-major, height x width, 0 = background), one
// per label present, in increasing label order. `intensity`, when not null,
// is a float image of the same height and width with `channels` values per
// pixel (channels last, interleaved); each object then gets the mean, min
// and max of each channel under its mask. Labels may be any uint32 values
// (gaps and large values are fine). Costs O(height * width) time, plus
// O(max label) memory when the labels are at most height * width.
// Throws Error(invalid_argument) for a negative size, channels < 1, or null
// labels with pixels.
[[nodiscard]] std::vector<ObjectStats> object_stats(const std::uint32_t* labels, int height, int width,
                                                    const float* intensity = nullptr, int channels = 1);

// The CSV table of `stats`: a header row, then one row per object.
// Columns: label, area, centroid_y, centroid_x, bbox_y0, bbox_x0, bbox_y1,
// bbox_x1, perimeter, equivalent_diameter, then for `channels` == 1
// intensity_mean, intensity_min, intensity_max, or for `channels` > 1 those
// three per channel with a suffix "_c0", "_c1", ...; `channels` == 0 means
// no intensity columns. Numbers are written in the shortest form that reads
// back to the same value ("28", "5.5", "61.65685424949238"). Lines end in
// "\n". Throws Error(invalid_argument) when an object has a different
// number of intensity channels.
[[nodiscard]] std::string stats_csv(const std::vector<ObjectStats>& stats, int channels);

// One object of a 3-D label volume (all voxels of one label). Coordinates
// are voxel indices: plane z, row y, column x, voxel centres at integers.
struct ObjectStats3D {
  std::uint32_t label = 0;
  std::int64_t volume = 0;  // voxels (regionprops' area of a 3-D image)
  // Mean plane, row and column of the object's voxels (regionprops' centroid).
  double centroid_z = 0;
  double centroid_y = 0;
  double centroid_x = 0;
  // Bounding box, end exclusive: [bbox_z0, bbox_z1) x [bbox_y0, bbox_y1) x
  // [bbox_x0, bbox_x1) (regionprops' bbox).
  int bbox_z0 = 0;
  int bbox_y0 = 0;
  int bbox_x0 = 0;
  int bbox_z1 = 0;
  int bbox_y1 = 0;
  int bbox_x1 = 0;
  // cbrt(6 * volume / pi) (as pow(6 * volume / pi, 1 / 3.)): the diameter of
  // a ball of the same volume (regionprops' equivalent_diameter_area in 3-D).
  double equivalent_diameter = 0;
  // One entry per channel of the intensity volume; empty without one.
  std::vector<IntensityStats> intensity;
};

// The objects of the label volume `labels` ([depth, height, width],
// row-major, 0 = background), one per label present, in increasing label
// order. `intensity`, when not null, is a float volume of the same shape
// with `channels` values per voxel (channels last, interleaved); each
// object then gets the mean, min and max of each channel under its mask.
// Labels may be any uint32 values. No perimeter (regionprops has none in
// 3-D). CPU only: the CUDA stats (cpipc/cuda/post.hpp) are 2-D.
// Throws Error(invalid_argument) for a negative size, channels < 1, or null
// labels with voxels.
[[nodiscard]] std::vector<ObjectStats3D> object_stats_3d(const std::uint32_t* labels, int depth, int height, int width,
                                                         const float* intensity = nullptr, int channels = 1);

// The CSV table of 3-D `stats`, as stats_csv. Columns: label, volume,
// centroid_z, centroid_y, centroid_x, bbox_z0, bbox_y0, bbox_x0, bbox_z1,
// bbox_y1, bbox_x1, equivalent_diameter, then the intensity columns as
// stats_csv names them. Throws Error(invalid_argument) when an object has a
// different number of intensity channels.
[[nodiscard]] std::string stats_csv_3d(const std::vector<ObjectStats3D>& stats, int channels);

}  // namespace cpipc::post
