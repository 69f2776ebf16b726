// Which object each pixel belongs to, shared by the stats and the outlines.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cpipc/error.hpp"

namespace cpipc::post::detail {

inline void check_image(const void* data, int height, int width, const char* what) {
  if (height < 0 || width < 0 || (data == nullptr && height > 0 && width > 0)) {
    throw Error(Errc::invalid_argument, std::string(what) + ": bad image (" + std::to_string(height) + " x " +
                                            std::to_string(width) + (data ? ")" : ", no data)"));
  }
}

// The labels present in an image, ascending, and for each pixel 0
// (background) or 1 + the index of its label in that list.
struct LabelIndex {
  std::vector<std::uint32_t> labels;
  std::vector<std::uint32_t> object_of_pixel;
};

[[nodiscard]] inline LabelIndex index_labels(const std::uint32_t* labels, std::size_t pixels) {
  LabelIndex ix;
  ix.object_of_pixel.assign(pixels, 0);
  if (pixels == 0) return ix;
  const std::uint32_t max_label = *std::max_element(labels, labels + pixels);
  if (max_label == 0) return ix;
  if (max_label <= pixels) {
    // Dense: a table indexed by label, at most one entry per pixel.
    std::vector<std::uint32_t> object_of_label(static_cast<std::size_t>(max_label) + 1, 0);
    for (std::size_t i = 0; i < pixels; ++i) object_of_label[labels[i]] = 1;
    for (std::uint32_t label = 1; label <= max_label; ++label) {
      if (object_of_label[label]) {
        ix.labels.push_back(label);
        object_of_label[label] = static_cast<std::uint32_t>(ix.labels.size());
      }
    }
    for (std::size_t i = 0; i < pixels; ++i) ix.object_of_pixel[i] = labels[i] ? object_of_label[labels[i]] : 0;
  } else {
    // Sparse (labels above the pixel count): sorted list and binary search.
    for (std::size_t i = 0; i < pixels; ++i) {
      if (labels[i]) ix.labels.push_back(labels[i]);
    }
    std::sort(ix.labels.begin(), ix.labels.end());
    ix.labels.erase(std::unique(ix.labels.begin(), ix.labels.end()), ix.labels.end());
    for (std::size_t i = 0; i < pixels; ++i) {
      if (labels[i]) {
        const auto it = std::lower_bound(ix.labels.begin(), ix.labels.end(), labels[i]);
        ix.object_of_pixel[i] = static_cast<std::uint32_t>(it - ix.labels.begin()) + 1;
      }
    }
  }
  return ix;
}

}  // namespace cpipc::post::detail
