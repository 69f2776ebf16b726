// cpipc segment --dir: the images of a folder, chosen as Cellpose 3.1's
// io.get_image_files chooses them. Torch-free, so it is tested on its own.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cpipc::cli {

struct FolderQuery {
  std::string dir;
  std::string img_filter;              // stems must end with this; "" takes any
  std::string mask_filter = "_masks";  // Cellpose's --mask_filter: one more ending to skip
  bool look_one_level_down = false;    // also the folder's subfolders (not deeper)
};

struct FolderImages {
  std::vector<std::string> images;       // dir/name, natsort order
  std::vector<std::string> unsupported;  // files Cellpose would read but cpipc cannot (.flex, .dax, .nd2, .nrrd)
};

// Cellpose's rules: names (not hidden) ending in <img_filter> plus one of
// .png .jpg .jpeg .tif .tiff (as written or upper case), in `dir` and, with
// look_one_level_down, its direct subfolders; files whose stem ends with an
// output's suffix (_masks, _cp_output, _flows, _flows_0.._2, _cellprob, the
// mask filter, and cpipc's _outlines and _seg) are skipped; sorted as Python's
// natsort sorts the paths. Throws Error(not_found) for a missing folder, an
// empty one, or one without such images (each its own message, as Cellpose's
// three), Error(invalid_argument) when `dir` is not a folder.
[[nodiscard]] FolderImages folder_images(const FolderQuery& query);

// natsort.natsorted's order (its default, ns.INT): strings split into runs of
// digits and of other characters, digit runs compared as numbers, a string
// that starts with a digit compared as if it started with an empty run; ties
// (e.g. "a01", "a1") broken by the bytes, so the order is total.
[[nodiscard]] bool natural_less(std::string_view a, std::string_view b);

}  // namespace cpipc::cli
