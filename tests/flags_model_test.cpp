// Cellpose's options on the model module, against what Cellpose 3.1.1.2
// computes (tests/data/flags, made by tools/parity/make_flag_fixtures.py):
// normalisation between other percentiles, no normalisation, and
// remove_edge_masks (--exclude_on_edges).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/model/preprocess.hpp"
#include "cpipc/model/tensor_dynamics.hpp"
#include "cpipc/model/tiling.hpp"

namespace model = cpipc::model;
namespace io = cpipc::io;

namespace {

const std::string kFlags = CPIPC_SOURCE_DIR "/tests/data/flags/";
const std::string kModel = CPIPC_SOURCE_DIR "/tests/data/model/";

TEST(CellposeFlags, NormalisationAtOtherPercentilesMatchesCellpose) {
  // eval(normalize={"percentile": (5, 95)}): what `cellpose --norm_percentile 5 95` runs.
  const io::Array image = io::read_npy(kModel + "gray8_nodiam/image.npy");
  const std::vector<float> expected = io::to_float32(io::read_npy(kFlags + "norm_5_95/input.npy"), "input");
  model::Normalization norm;
  norm.lower = 5.0f;
  norm.upper = 95.0f;
  const model::NetworkInput in = model::network_input(image, model::ChannelSpec::parse("0,0"), 2, norm);
  ASSERT_EQ(in.data.size(), expected.size());
  float worst = 0.0f;
  for (std::size_t i = 0; i < expected.size(); ++i) worst = std::max(worst, std::abs(in.data[i] - expected[i]));
  EXPECT_LE(worst, 1e-5f);
  // ...and not what the default percentiles give.
  const model::NetworkInput default_in = model::network_input(image, model::ChannelSpec::parse("0,0"), 2);
  EXPECT_NE(default_in.data, in.data);
}

TEST(CellposeFlags, WithoutNormalisationTheImageGoesThroughAsItIs) {
  const io::Array image = io::read_npy(kModel + "gray8_nodiam/image.npy");
  const std::vector<float> raw = io::to_float32(image, "image");
  model::Normalization off;
  off.enabled = false;
  off.invert = true;  // Cellpose's eval ignores invert when normalize is False
  const model::NetworkInput in = model::network_input(image, model::ChannelSpec::parse("0,0"), 2, off);
  ASSERT_EQ(in.data.size(), 2 * raw.size());
  EXPECT_TRUE(std::equal(raw.begin(), raw.end(), in.data.begin()));
  EXPECT_TRUE(std::all_of(in.data.begin() + static_cast<std::ptrdiff_t>(raw.size()), in.data.end(),
                          [](float v) { return v == 0.0f; }));
}

TEST(CellposeFlags, AugmentedTilesOverlapByHalfAndAreAtLeastTwo) {
  // make_tiles(augment=True): ny = max(2, ceil(2 Ly / 224)), linspace(0, Ly - 224, ny).
  const model::TileAxis a = model::augmented_tile_axis(400, 224);
  EXPECT_EQ(a.size, 224);
  EXPECT_EQ(a.starts, (std::vector<std::int64_t>{0, 58, 117, 176}));
  const model::TileAxis one = model::augmented_tile_axis(224, 224);  // a small image padded to one tile
  EXPECT_EQ(one.starts, (std::vector<std::int64_t>{0, 0}));
  EXPECT_EQ(model::augmented_tile_axis(528, 224).starts.size(), 5u);
}

model::TensorLabels tensor_labels(const io::Array& a) {
  const std::vector<std::uint32_t> v = io::to_labels(a, "labels");
  model::TensorLabels t;
  t.labels = torch::empty({a.desc.shape[0], a.desc.shape[1]}, torch::kInt32);
  std::memcpy(t.labels.data_ptr<std::int32_t>(), v.data(), v.size() * sizeof(std::uint32_t));
  t.count = v.empty() ? 0 : *std::max_element(v.begin(), v.end());
  return t;
}

TEST(CellposeFlags, RemoveEdgeMasksMatchesCellpose) {
  for (const auto& [in, out] : {std::pair{kFlags + "labels_small.npy", kFlags + "edges_small.npy"},
                                std::pair{kModel + "gray16_up/masks.npy", kFlags + "edges_gray16_up.npy"}}) {
    model::TensorLabels t = tensor_labels(io::read_npy(in));
    const std::uint32_t before = t.count;
    model::remove_edge_masks(t);
    const std::vector<std::uint32_t> expected = io::to_labels(io::read_npy(out), "expected");
    ASSERT_EQ(static_cast<std::size_t>(t.labels.numel()), expected.size());
    const at::Tensor got = t.labels.contiguous();
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), got.data_ptr<std::int32_t>(),
                           [](std::uint32_t e, std::int32_t g) { return e == static_cast<std::uint32_t>(g); }))
        << in;
    EXPECT_EQ(t.count, *std::max_element(expected.begin(), expected.end())) << in;
    EXPECT_LT(t.count, before) << in << ": some masks touch the border";
  }
  model::TensorLabels empty{torch::zeros({4, 5}, torch::kInt32), 0};
  model::remove_edge_masks(empty);
  EXPECT_EQ(empty.count, 0u);
}

}  // namespace
