// The labels of a masks PNG that cpipc wrote (save_cellpose_outputs, `cpipc
// segment`), read whichever way this build can: with OpenCV through
// read_array; without it cpipc reads no PNG, but then it wrote its own stored
// one, which the strict decoder here reads (checking its structure).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "support/png_stored_decoder.hpp"
#include "support/test_support.hpp"

namespace cpipc::test {

// The uint16 labels of the masks PNG at `path`, row-major; a test failure
// (and no labels) when it is not a 16-bit gray PNG.
inline std::vector<std::uint32_t> read_masks_png(const std::string& path) {
  if (io::image_codecs_available()) {
    const io::Array masks = io::read_array(path);
    EXPECT_EQ(masks.desc.dtype, ipc::kUInt16) << path;
    return io::to_labels(masks, path);
  }
  StoredPng png;
  try {
    png = decode_stored_png(read_file_bytes(path));
  } catch (const std::runtime_error& e) {
    ADD_FAILURE() << path << ": " << e.what();
    return {};
  }
  EXPECT_EQ(png.bit_depth, 16) << path;
  EXPECT_EQ(png.colour_type, 0) << path << ": not gray";
  std::vector<std::uint32_t> labels(png.samples.size() / 2);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = png.samples[2 * i] << 8 | png.samples[2 * i + 1];
  return labels;
}

}  // namespace cpipc::test
