// The labels of a masks PNG that cpipc wrote (save_cellpose_outputs, `cpipc
// segment`), read through libpng (io::detail::read_png), as every build
// writes and reads PNG.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../../src/io/png_codec.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "support/test_support.hpp"

namespace cpipc::test {

// The uint16 labels of the masks PNG at `path`, row-major; a test failure
// (and no labels) when it is not a 16-bit gray PNG.
inline std::vector<std::uint32_t> read_masks_png(const std::string& path) {
  io::Array masks;
  try {
    masks = io::detail::read_png(path);
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
    return {};
  }
  EXPECT_EQ(masks.desc.dtype, ipc::kUInt16) << path;
  EXPECT_EQ(masks.desc.ndim, 2u) << path << ": not gray";
  return io::to_labels(masks, path);
}

}  // namespace cpipc::test
