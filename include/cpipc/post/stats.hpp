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

}  // namespace cpipc::post
