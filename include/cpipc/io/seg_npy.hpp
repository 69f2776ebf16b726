// Cellpose's `<stem>_seg.npy`: the file its GUI opens to show (and edit) a
// segmentation, and that scripts load with np.load(..., allow_pickle=True).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace cpipc::io {

// One segmented 2-D image, as Cellpose's io.masks_flows_to_seg gets it.
struct SegNpyContent {
  const std::uint32_t* labels = nullptr;  // [height, width], 0 = background
  int height = 0;
  int width = 0;
  const float* flows = nullptr;          // [3, height, width]: dY, dX, cellprob (the network's, at the image's size)
  std::string filename;                  // the image's path, as the GUI looks for it
  double diameter = 0.0;                 // the diameter used, pixels
  std::array<int, 2> chan_choose{0, 0};  // Cellpose 3's channels [seg, nuc]
};

// Writes `c` as Cellpose 3.1's io.masks_flows_to_seg writes it (np.save of
// a dict, so a .npy holding a 0-d object array, whose pickle loads with
// numpy 1.x and 2.x): keys in its order, "outlines" (labels on each mask's
// outline pixels, else 0), "masks", "chan_choose" (list of 2 ints),
// "ismanual" (bool [max label], all False), "filename" (str), "flows" (a
// list: uint8 [1, H, W, 3] flow picture, uint8 [1, H, W] cell probability,
// uint8 [1, H, W, 3] zeros, [], float32 [3, H, W] dY, dX, cellprob) and
// "diameter" (float). masks and outlines are uint16 while the largest
// outline label is below 65535, else uint32, as there.
// Throws Error(invalid_argument) for missing labels or flows or a negative
// size; Error(io) when the file cannot be written (the old one then stays).
void write_seg_npy(const std::string& path, const SegNpyContent& c);

}  // namespace cpipc::io
