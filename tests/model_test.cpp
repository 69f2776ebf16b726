// The model module: Cellpose's preprocessing and tile geometry, the model
// contract (with TorchScript modules made here), and segmentation with the
// embedded network compared with Cellpose's own pipeline on the same weights
// (fixtures from tools/parity/make_parity.py in tests/data/model).
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <sys/stat.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/model/convolution_precision.hpp"
#include "cpipc/model/network.hpp"
#include "cpipc/model/segmenter.hpp"
#include "cpipc/model/tensor_dynamics.hpp"
#include "cpipc/model/tiling.hpp"
#include "support/metrics.hpp"
#include "support/test_support.hpp"

namespace model = cpipc::model;
namespace io = cpipc::io;
using cpipc::Errc;
using cpipc::Error;

namespace {

// Runs `body`, expecting an Error of `code` whose message contains `text`.
template <class F>
void expect_error(F&& body, Errc code, const std::string& text) {
  try {
    body();
    ADD_FAILURE() << "no error; expected one containing '" << text << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
  }
}

io::Array make_array(cpipc::ipc::DType dtype, std::vector<std::int64_t> shape, const std::vector<float>& values) {
  io::Array a;
  a.desc = cpipc::ipc::TensorDesc::contiguous(dtype, shape);
  a.data.resize(a.desc.nbytes());
  if (dtype == cpipc::ipc::kFloat32) {
    std::memcpy(a.data.data(), values.data(), a.data.size());
  } else if (dtype == cpipc::ipc::kUInt16) {
    auto* p = reinterpret_cast<std::uint16_t*>(a.data.data());
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<std::uint16_t>(values[i]);
  } else {
    auto* p = reinterpret_cast<std::uint8_t*>(a.data.data());
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<std::uint8_t>(values[i]);
  }
  return a;
}

// --- Tile geometry ---------------------------------------------------------

TEST(Tiling, PaddingReachesAMultipleOf16PlusEightEachSide) {
  for (std::int64_t l : {1, 15, 16, 17, 100, 224, 250, 333}) {
    const model::Padding p = model::network_padding(l);
    EXPECT_EQ((l + p.before + p.after) % 16, 0) << l;
    EXPECT_GE(p.before, 8);
    EXPECT_GE(p.after, p.before);
    EXPECT_LE(p.after - p.before, 1);
  }
  EXPECT_EQ(model::network_padding(16).before, 8);
  EXPECT_EQ(model::network_padding(16).after, 8);
}

TEST(Tiling, Cellpose4PadsAnImageSmallerThanATileUpToOne) {
  // get_pad_yx(L, min_size=256): below the tile, L + pads == 256 (at least 16 added).
  for (std::int64_t l : {1, 100, 200, 240}) {
    const model::Padding p = model::network_padding(l, 256);
    EXPECT_EQ(l + p.before + p.after, 256) << l;
    EXPECT_LE(p.after - p.before, 1);
  }
  EXPECT_EQ(model::network_padding(241, 256).before, 8);  // 241 + 16 > 256: just the 8 px each side
  EXPECT_EQ(model::network_padding(241, 256).after, 8);
  for (std::int64_t l : {256, 300, 513}) {  // at least a tile: Cellpose 3's padding
    EXPECT_EQ(model::network_padding(l, 256).before, model::network_padding(l).before) << l;
    EXPECT_EQ(model::network_padding(l, 256).after, model::network_padding(l).after) << l;
  }
}

TEST(ModelMemory, AModelThatCannotFitIsRefusedBeforeLoadingSayingWhatItNeeds) {
  const model::Device cpu{false, 0};
  const model::Device gpu{true, 0};
  const std::uint64_t cpsam = 1'237'149'821;  // a CP-SAM export, fp32
  try {
    model::check_model_memory(cpsam, cpu, model::Precision::fp32, 2'000'000'000, std::nullopt, "cpsam.pt");
    FAIL() << "2 GB of host memory is not enough to load 1.2 GB";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::out_of_memory);
    EXPECT_NE(std::string(e.what()).find("cpsam.pt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("needs about 2.3 GiB"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(model::check_model_memory(cpsam, cpu, model::Precision::fp32, 8'000'000'000, std::nullopt, "m"));
  EXPECT_NO_THROW(model::check_model_memory(cpsam, cpu, model::Precision::fp32, 0, std::nullopt, "m"));  // unknown
  // 1.5 GB free on a GPU: too little for fp32 weights and their working set, enough in bf16.
  EXPECT_THROW(model::check_model_memory(cpsam, gpu, model::Precision::fp32, 64'000'000'000, 1'500'000'000, "m"),
               Error);
  EXPECT_NO_THROW(model::check_model_memory(cpsam, gpu, model::Precision::bf16, 64'000'000'000, 1'500'000'000, "m"));
  // The embedded-size CPnet fits a small GPU.
  EXPECT_NO_THROW(model::check_model_memory(21'000'000, gpu, model::Precision::fp32, 4'000'000'000, 400'000'000, "m"));
}

TEST(Tiling, OneTileWhenTheImageFitsAndLinspaceStartsOtherwise) {
  const model::TileAxis small = model::tile_axis(48, 224, 0.1);
  EXPECT_EQ(small.size, 48);
  EXPECT_EQ(small.starts, std::vector<std::int64_t>{0});
  // ceil(1.2 * 400 / 224) = 3 tiles: linspace(0, 176, 3) = 0, 88, 176.
  const model::TileAxis three = model::tile_axis(400, 224, 0.1);
  EXPECT_EQ(three.size, 224);
  EXPECT_EQ(three.starts, (std::vector<std::int64_t>{0, 88, 176}));
  // linspace(0, 291, 3) = 0, 145.5, 291 -> truncated to 145.
  EXPECT_EQ(model::tile_axis(515, 224, 0.1).starts, (std::vector<std::int64_t>{0, 145, 291}));
  // The overlap is clipped to [0.05, 0.5].
  EXPECT_EQ(model::tile_axis(400, 224, 5.0).starts.size(), model::tile_axis(400, 224, 0.5).starts.size());
}

TEST(Tiling, TaperIsSymmetricNearOneInsideAndSmallAtTheEdges) {
  const std::vector<double> m = model::taper_mask(224, 224);
  ASSERT_EQ(m.size(), 224u * 224u);
  EXPECT_NEAR(m[112 * 224 + 112], 1.0, 1e-4);
  EXPECT_LT(m[0], 0.1);
  EXPECT_DOUBLE_EQ(m[5 * 224 + 7], m[(223 - 5) * 224 + (223 - 7)]);
  EXPECT_DOUBLE_EQ(m[5 * 224 + 7], m[7 * 224 + 5]);
  // A tile smaller than 224 takes the centre of the 224 mask.
  const std::vector<double> small = model::taper_mask(48, 64);
  EXPECT_DOUBLE_EQ(small[0], m[(112 - 24) * 224 + (112 - 32)]);
}

// --- Preprocessing ---------------------------------------------------------

TEST(Preprocess, PercentileInterpolatesLinearlyAsNumpy) {
  std::vector<float> v{4, 1, 3, 2, 5};  // sorted 1..5: index q/100 * 4
  EXPECT_FLOAT_EQ(model::percentile(v, 50.0f), 3.0f);
  EXPECT_FLOAT_EQ(model::percentile(v, 10.0f), 1.4f);
  EXPECT_FLOAT_EQ(model::percentile(v, 99.0f), 4.96f);
  EXPECT_FLOAT_EQ(model::percentile(v, 100.0f), 5.0f);
  EXPECT_FLOAT_EQ(model::percentile(v, 0.0f), 1.0f);
}

// The selection against a full sort, numpy's arithmetic spelled out, on
// values that stress it: duplicates, negatives, both zeros, wide ranges, one
// value, and integer images as microscopes write them.
TEST(Preprocess, PercentilesAgreeWithASortOnAnyValues) {
  std::mt19937 rng(11);
  const auto sorted_percentile = [](std::vector<float> v, float q) {
    std::sort(v.begin(), v.end());
    const float index = static_cast<float>(q / 100.0) * static_cast<float>(v.size() - 1);
    const float below_f = std::floor(index);
    const std::size_t below = std::min(static_cast<std::size_t>(below_f), v.size() - 1);
    const float a = v[below], b = v[std::min(below + 1, v.size() - 1)];
    const float gamma = index - below_f;
    return gamma >= 0.5f ? b - (b - a) * (1.0f - gamma) : a + (b - a) * gamma;
  };
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t n = trial % 7 == 0 ? 1 : std::uniform_int_distribution<std::size_t>(2, 20000)(rng);
    std::vector<float> v(n);
    const int kind = trial % 4;
    for (float& x : v) {
      if (kind == 0) x = static_cast<float>(std::uniform_int_distribution<int>(0, 65535)(rng));
      if (kind == 1) x = static_cast<float>(std::uniform_int_distribution<int>(-3, 3)(rng)) * (rng() % 2 ? 0.0f : 1.0f);
      if (kind == 2)
        x = std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng), static_cast<int>(rng() % 60) - 30);
      if (kind == 3) x = std::uniform_real_distribution<float>(-1e-3f, 1e-3f)(rng);
    }
    if (kind == 1 && n > 1) v[0] = -0.0f;
    const float lo = std::uniform_real_distribution<float>(0, 50)(rng);
    // Every fifth pair is close: both percentiles then share their ranks.
    const float hi = trial % 5 == 1 ? std::min(100.0f, lo + 0.5f) : std::uniform_real_distribution<float>(lo, 100)(rng);
    const auto [p_lo, p_hi] = model::percentiles(v.data(), v.size(), lo, hi);
    EXPECT_EQ(p_lo, sorted_percentile(v, lo)) << "trial " << trial << " q " << lo;
    EXPECT_EQ(p_hi, sorted_percentile(v, hi)) << "trial " << trial << " q " << hi;
    EXPECT_EQ(model::percentile(v, hi), sorted_percentile(v, hi));
  }
}

TEST(Preprocess, GrayImageBecomesImageAndZeroPlanesNormalisedTo1And99Percentiles) {
  std::vector<float> values(100);
  for (int i = 0; i < 100; ++i) values[i] = static_cast<float>(i);
  const model::NetworkInput in = model::network_input(make_array(cpipc::ipc::kUInt16, {10, 10}, values), {}, 2);
  ASSERT_EQ(in.channels, 2);
  // p1 = 0.99, p99 = 98.01 of 0..99.
  EXPECT_NEAR(in.data[0], (0.0 - 0.99) / (98.01 - 0.99), 1e-6);
  EXPECT_NEAR(in.data[99], (99.0 - 0.99) / (98.01 - 0.99), 1e-6);
  for (int i = 100; i < 200; ++i) EXPECT_EQ(in.data[i], 0.0f);
}

TEST(Preprocess, ChannelsSelectOrAverage) {
  // [2, 2, 3]: channel k of pixel i = 10 k + i.
  std::vector<float> v;
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 3; ++k) v.push_back(static_cast<float>(10 * k + i));
  }
  const io::Array rgb = make_array(cpipc::ipc::kFloat32, {2, 2, 3}, v);
  const model::Normalization off{.enabled = false};
  const model::NetworkInput sel = model::network_input(rgb, model::ChannelSpec::parse("2,3"), 2, off);
  EXPECT_EQ(sel.data[0], 10.0f);
  EXPECT_EQ(sel.data[4], 20.0f);
  const model::NetworkInput mean = model::network_input(rgb, model::ChannelSpec::parse("0,0"), 2, off);
  EXPECT_FLOAT_EQ(mean.data[1], (1.0f + 11.0f + 21.0f) / 3.0f);
  EXPECT_EQ(mean.data[5], 0.0f);
  const model::NetworkInput first3 = model::network_input(rgb, model::ChannelSpec::parse("first"), 3, off);
  EXPECT_EQ(first3.data[8 + 3], 23.0f);
}

TEST(Preprocess, BadChannelSpecsAndImagesAreOneLineErrors) {
  const io::Array five = make_array(cpipc::ipc::kUInt8, {4, 4, 5}, std::vector<float>(80, 1.0f));
  expect_error([&] { (void)model::network_input(five, model::ChannelSpec::parse("6,0"), 2); }, Errc::invalid_argument,
               "channel 6 requested");
  expect_error([&] { (void)model::network_input(five, model::ChannelSpec::parse("1,7"), 2); }, Errc::invalid_argument,
               "nuclear channel 7");
  expect_error([] { (void)model::ChannelSpec::parse("green"); }, Errc::invalid_argument, "bad channel spec");
  expect_error([] { (void)model::ChannelSpec::parse("1,-2"); }, Errc::invalid_argument, "bad channel spec");
  const io::Array empty = make_array(cpipc::ipc::kUInt8, {0, 0}, {});
  expect_error([&] { (void)model::network_input(empty, {}, 2); }, Errc::invalid_argument, "empty image");
  const io::Array nan = make_array(cpipc::ipc::kFloat32, {1, 2}, {1.0f, std::nanf("")});
  expect_error([&] { (void)model::network_input(nan, {}, 2); }, Errc::invalid_argument, "NaN");
}

// --- The model contract, with TorchScript modules made here ------------------

// Saves a scripted module whose forward is `body` (TorchScript source).
std::string save_module(const cpipc::test::TempDir& dir, const std::string& name, const std::string& body,
                        const std::string& json) {
  torch::jit::Module m("__torch__." + name);
  m.register_parameter("w", torch::ones({3, 2, 3, 3}), false);
  m.define(body);
  const std::string path = dir.file(name + ".pt");
  torch::jit::ExtraFilesMap extra;
  if (!json.empty()) extra["cpipc.json"] = json;
  m.save(path, extra);
  return path;
}

const std::string kJson = R"({"architecture": "test", "input_channels": 2, "diam_mean": 30.0, "tile": 224})";
const std::string kGood = R"(
def forward(self, x):
    y = torch.conv2d(x, self.w, padding=1)
    return y, torch.ones([x.size(0), 256])
)";

TEST(ModelContract, AGoodModuleLoadsAndReportsItsMetadata) {
  cpipc::test::TempDir dir;
  const model::Model m = model::Model::load(save_module(dir, "Good", kGood, kJson), {});
  EXPECT_EQ(m.info().architecture, "test");
  EXPECT_EQ(m.info().input_channels, 2);
  EXPECT_DOUBLE_EQ(m.info().diam_labels, 30.0);  // defaults to diam_mean
  const model::NetOutput out = m.forward(torch::zeros({2, 2, 16, 24}));
  EXPECT_EQ(out.y.sizes(), torch::IntArrayRef({2, 3, 16, 24}));
  EXPECT_EQ(out.style.sizes(), torch::IntArrayRef({2, 256}));
}

TEST(ModelContract, MissingFilesBlobsAndDirectoriesAreRefused) {
  cpipc::test::TempDir dir;
  expect_error([&] { (void)model::Model::load(dir.file("none.pt"), {}); }, Errc::not_found, "no model file");
  {
    std::ofstream blob(dir.file("blob.pt"), std::ios::binary);
    std::mt19937 rng(1);
    for (int i = 0; i < 4096; ++i) blob.put(static_cast<char>(rng()));
  }
  expect_error([&] { (void)model::Model::load(dir.file("blob.pt"), {}); }, Errc::invalid_argument,
               "is not a TorchScript model");
  std::ofstream(dir.file("empty.pt")).close();
  expect_error([&] { (void)model::Model::load(dir.file("empty.pt"), {}); }, Errc::invalid_argument,
               "is not a TorchScript model");
  expect_error([&] { (void)model::Model::load(dir.path().string(), {}); }, Errc::invalid_argument, "is a directory");
  // A FIFO with no writer would block the loader forever.
  ASSERT_EQ(::mkfifo(dir.file("fifo.pt").c_str(), 0600), 0);
  expect_error([&] { (void)model::Model::load(dir.file("fifo.pt"), {}); }, Errc::invalid_argument,
               "is not a regular file");
}

TEST(ModelContract, MetadataMustBeThereAndMakeSense) {
  cpipc::test::TempDir dir;
  expect_error([&] { (void)model::Model::load(save_module(dir, "NoJson", kGood, ""), {}); }, Errc::invalid_argument,
               "has no cpipc.json");
  expect_error([&] { (void)model::Model::load(save_module(dir, "BadJson", kGood, "{not json"), {}); },
               Errc::invalid_argument, "bad cpipc.json");
  expect_error(
      [&] {
        (void)model::Model::load(
            save_module(dir, "BadDiam", kGood, R"({"architecture": "t", "input_channels": 2, "diam_mean": -1})"), {});
      },
      Errc::invalid_argument, "diam_mean");
}

TEST(ModelContract, WrongChannelCountIsNamed) {
  cpipc::test::TempDir dir;
  const std::string three = R"({"architecture": "test", "input_channels": 3, "diam_mean": 30.0})";
  expect_error([&] { (void)model::Model::load(save_module(dir, "Three", kGood, three), {}); }, Errc::invalid_argument,
               "cpipc.json says 3 input channels");
}

TEST(ModelContract, OutputsOfTheWrongShapeOrKindAreNamed) {
  cpipc::test::TempDir dir;
  const std::string two_out = "def forward(self, x):\n    return x\n";
  expect_error([&] { (void)model::Model::load(save_module(dir, "TwoOut", two_out, kJson), {}); },
               Errc::invalid_argument, "returned y [1, 2, 32, 32]");
  const std::string dict = "def forward(self, x):\n    return {'y': x}\n";
  expect_error([&] { (void)model::Model::load(save_module(dir, "Dict", dict, kJson), {}); }, Errc::invalid_argument,
               "expected y [B, 3, H, W]");
  const std::string bad_style = R"(
def forward(self, x):
    return torch.conv2d(x, self.w, padding=1), torch.ones([5])
)";
  expect_error([&] { (void)model::Model::load(save_module(dir, "BadStyle", bad_style, kJson), {}); },
               Errc::invalid_argument, "returned style [5]");
}

TEST(ModelContract, DevicesArePlainWords) {
  EXPECT_FALSE(model::Device::parse("cpu").cuda);
  EXPECT_EQ(model::Device::parse("cuda:1").index, 1);
  expect_error([] { (void)model::Device::parse("gpu"); }, Errc::invalid_argument, "expected cpu, cuda or cuda:N");
  expect_error([] { (void)model::Model::load_bytes(model::default_model_bytes(), "x", {}, model::Precision::bf16); },
               Errc::invalid_argument, "for CUDA devices");
}

// --- The embedded network --------------------------------------------------

const model::Segmenter& embedded() {
  static const model::Segmenter s(model::Model::load_bytes(model::default_model_bytes(), model::kDefaultModelName, {}));
  return s;
}

// The flag each traced convolution carries, as the graph now says.
std::vector<bool> convolution_tf32_flags(const torch::jit::Module& module) {
  std::vector<bool> flags;
  for (const torch::jit::Module& m : module.modules()) {
    for (const torch::jit::Method& method : m.get_methods()) {
      for (const torch::jit::Node* node : method.graph()->nodes()) {
        if (node->kind() != c10::Symbol::fromQualString("aten::_convolution")) continue;
        flags.push_back(torch::jit::toIValue(node->inputs().back())->toBool());
      }
    }
  }
  return flags;
}

TEST(ConvolutionPrecision, EveryTracedConvolutionGetsTheFlagAndStillRuns) {
  torch::jit::Module module = torch::jit::load(CPIPC_SOURCE_DIR "/models/cpipc_default_cpnet.pt");
  module.eval();
  ASSERT_FALSE(convolution_tf32_flags(module).empty());
  EXPECT_EQ(convolution_tf32_flags(module), std::vector<bool>(convolution_tf32_flags(module).size(), true))
      << "the traced model no longer carries TF32: this rewrite may be unnecessary";
  const at::Tensor x = torch::rand({1, 2, 64, 64});
  c10::InferenceMode guard;
  const at::Tensor before = module.forward({x}).toTupleRef().elements()[0].toTensor();

  EXPECT_EQ(model::set_convolution_tf32(module, false), static_cast<int>(convolution_tf32_flags(module).size()));
  EXPECT_EQ(convolution_tf32_flags(module), std::vector<bool>(convolution_tf32_flags(module).size(), false));
  EXPECT_TRUE(torch::equal(module.forward({x}).toTupleRef().elements()[0].toTensor(), before));
  model::set_convolution_tf32(module, true);
  EXPECT_EQ(convolution_tf32_flags(module), std::vector<bool>(convolution_tf32_flags(module).size(), true));
}

TEST(EmbeddedModel, IsTheCommittedCellpose3Network) {
  const model::ModelInfo& info = embedded().model().info();
  EXPECT_EQ(info.architecture, "CPnet");
  EXPECT_EQ(info.input_channels, 2);
  EXPECT_TRUE(info.uses_cellpose3_channels());
  EXPECT_DOUBLE_EQ(info.diam_mean, 30.0);
  EXPECT_EQ(info.tile, 224);
}

TEST(EmbeddedModel, TinyAndConstantImagesGiveNoMasksAndNoErrors) {
  for (std::int64_t side : {1, 7, 33}) {
    const io::Array img = make_array(cpipc::ipc::kUInt8, {side, side + 2}, std::vector<float>(side * (side + 2), 9));
    const model::Segmentation s = embedded().segment(img);
    EXPECT_EQ(s.masks.height, side);
    EXPECT_EQ(s.masks.width, side + 2);
    EXPECT_EQ(s.masks.count, 0u);
    EXPECT_EQ(s.style.size(), 256u);
  }
}

TEST(EmbeddedModel, ReportsProgressThroughEveryStage) {
  const io::Array img = make_array(cpipc::ipc::kUInt8, {300, 40}, std::vector<float>(300 * 40, 3));
  std::vector<model::Progress> seen;
  model::SegmentOptions o;
  o.batch_size = 1;
  o.progress = [&](const model::Progress& p) { seen.push_back(p); };
  (void)embedded().segment(img, o);
  ASSERT_GE(seen.size(), 4u);
  EXPECT_EQ(seen.front().stage, model::Progress::Stage::preprocess);
  EXPECT_EQ(seen.back().stage, model::Progress::Stage::done);
  int last_done = 0;
  for (const auto& p : seen) {
    if (p.stage != model::Progress::Stage::network || p.tiles_total == 0) continue;
    EXPECT_GT(p.tiles_done, last_done);
    last_done = p.tiles_done;
    EXPECT_EQ(p.tiles_total, 2);  // 300 rows x diam_mean / diam_labels, padded: two 224 tiles
  }
  EXPECT_EQ(last_done, 2);
}

// --- Parity with Cellpose's own pipeline on the same weights -----------------

std::string parity_dir() {
  if (const char* dir = std::getenv("CPIPC_MODEL_FIXTURES")) return dir;
  return CPIPC_SOURCE_DIR "/tests/data/model";
}

std::vector<std::string> parity_cases() {
  std::vector<std::string> names;
  if (!std::filesystem::is_directory(parity_dir())) return names;
  for (const auto& e : std::filesystem::directory_iterator(parity_dir())) {
    if (std::filesystem::exists(e.path() / "case.json")) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

struct ParityCase {
  io::Array image;
  std::vector<float> input, flows;
  std::vector<std::uint32_t> masks;
  nlohmann::json meta;
  model::SegmentOptions options;
};

ParityCase load_parity(const std::string& name) {
  const std::string dir = parity_dir() + "/" + name + "/";
  ParityCase c;
  c.image = io::read_npy(dir + "image.npy");
  c.input = io::to_float32(io::read_npy(dir + "input.npy"), "input");
  c.flows = io::to_float32(io::read_npy(dir + "flows.npy"), "flows");
  c.masks = io::to_labels(io::read_npy(dir + "masks.npy"), "masks");
  std::ifstream in(dir + "case.json");
  c.meta = nlohmann::json::parse(in);
  const auto& ch = c.meta["channels"];
  c.options.channels =
      model::ChannelSpec::parse(std::to_string(ch[0].get<int>()) + "," + std::to_string(ch[1].get<int>()));
  if (!c.meta["diameter"].is_null()) c.options.diameter = c.meta["diameter"].get<double>();
  c.options.keep_flows = true;
  return c;
}

class CellposeParity : public ::testing::TestWithParam<std::string> {};

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST_P(CellposeParity, NetworkInputMatchesCellposeNormalisation) {
  const ParityCase c = load_parity(GetParam());
  const model::NetworkInput in = model::network_input(c.image, c.options.channels, 2);
  ASSERT_EQ(in.data.size(), c.input.size());
  EXPECT_LE(max_abs_diff(in.data, c.input), 1e-5f);
}

TEST_P(CellposeParity, FlowsWithin1e3AndMasksAtAp50Of098) {
  const ParityCase c = load_parity(GetParam());
  const model::Segmentation s = embedded().segment(c.image, c.options);
  EXPECT_NEAR(s.rescale, c.meta["rescale"].get<double>(), 1e-6);
  EXPECT_EQ(s.niter, c.meta["niter"].get<int>());
  ASSERT_EQ(s.flows.size(), c.flows.size());
  EXPECT_LE(max_abs_diff(s.flows, c.flows), 1e-3f);
  const double ap = cpipc::test::ap50(c.masks, s.masks.data);
  EXPECT_GE(ap, 0.98) << s.masks.count << " masks here, Cellpose " << c.meta["n_masks"];
}

// CPIPC_CPU_INFERENCE=plain feeds the network NCHW tensors in Cellpose's
// batches (what Cellpose runs); the default, channels-last NHWC ones, one
// tile per forward. Both must give Cellpose's flows; between them only
// oneDNN's summation order differs.
const model::Segmenter& embedded_in_mode(const std::string& mode) {
  static std::map<std::string, model::Segmenter> loaded;
  auto it = loaded.find(mode);
  if (it == loaded.end()) {
    const cpipc::test::ScopedEnv env("CPIPC_CPU_INFERENCE", mode);
    model::Segmenter s(model::Model::load_bytes(model::default_model_bytes(), model::kDefaultModelName, {}));
    it = loaded.emplace(mode, std::move(s)).first;
  }
  return it->second;
}

TEST_P(CellposeParity, EveryCpuInferenceModeGivesCellposesFlows) {
  const ParityCase c = load_parity(GetParam());
  const model::Segmentation fast = embedded().segment(c.image, c.options);
  EXPECT_EQ(embedded().model().cpu_inference(), model::CpuInference::channels_last);
  EXPECT_EQ(embedded().model().tiles_per_forward(8), 1);
  const model::Segmenter& plain = embedded_in_mode("plain");
  EXPECT_EQ(plain.model().cpu_inference(), model::CpuInference::plain);
  EXPECT_EQ(plain.model().tiles_per_forward(8), 8);
  const model::Segmentation other = plain.segment(c.image, c.options);
  ASSERT_EQ(other.flows.size(), c.flows.size());
  EXPECT_LE(max_abs_diff(other.flows, c.flows), 1e-3f);
  ASSERT_EQ(fast.flows.size(), other.flows.size());
  EXPECT_LE(max_abs_diff(fast.flows, other.flows), 1e-3f);
}

// "fused" and "fast", the default's old names, still choose it.
TEST(CpuInference, TheDefaultsOldNamesStillChooseIt) {
  for (const char* old_name : {"fused", "fast"}) {
    const cpipc::test::ScopedEnv env("CPIPC_CPU_INFERENCE", old_name);
    const auto m = model::Model::load_bytes(model::default_model_bytes(), model::kDefaultModelName, {});
    EXPECT_EQ(m.cpu_inference(), model::CpuInference::channels_last) << old_name;
  }
}

TEST(CpuInference, AnUnknownModeIsRefused) {
  const cpipc::test::ScopedEnv env("CPIPC_CPU_INFERENCE", "turbo");
  expect_error([] { (void)model::Model::load_bytes(model::default_model_bytes(), model::kDefaultModelName, {}); },
               Errc::invalid_argument, "CPIPC_CPU_INFERENCE='turbo': expected channels-last (the default) or plain");
}

// --- On a GPU ---------------------------------------------------------------

#define SKIP_WITHOUT_CUDA()                                                                 \
  if (!torch::cuda::is_available()) {                                                       \
    GTEST_SKIP() << "no CUDA device here: the model's GPU path runs on a lent GPU machine"; \
  }

// The embedded network on CUDA device 0 at `precision`, loaded once per
// precision for all the cases.
const model::Segmenter& embedded_on_cuda(model::Precision precision) {
  static std::map<model::Precision, model::Segmenter> loaded;
  auto it = loaded.find(precision);
  if (it == loaded.end()) {
    it = loaded
             .emplace(precision, model::Model::load_bytes(model::default_model_bytes(), model::kDefaultModelName,
                                                          {true, 0}, precision))
             .first;
  }
  return it->second;
}

// Masks within AP@0.5 0.9 of Cellpose's at a reduced precision.
void expect_close_masks_at(model::Precision precision, const std::string& name) {
  const ParityCase c = load_parity(name);
  const model::Segmentation s = embedded_on_cuda(precision).segment(c.image, c.options);
  EXPECT_GE(cpipc::test::ap50(c.masks, s.masks.data), 0.9) << s.masks.count << " masks, Cellpose " << c.meta["n_masks"];
}

TEST_P(CellposeParity, OnCudaTheFlowsAndMasksMatchTooInFp32) {
  SKIP_WITHOUT_CUDA();
  const model::Segmenter& gpu = embedded_on_cuda(model::Precision::fp32);
  const ParityCase c = load_parity(GetParam());
  const model::Segmentation s = gpu.segment(c.image, c.options);
  ASSERT_EQ(s.flows.size(), c.flows.size());
  EXPECT_LE(max_abs_diff(s.flows, c.flows), 1e-3f);  // cuDNN's sums differ from the CPU's in the last bits
  EXPECT_GE(cpipc::test::ap50(c.masks, s.masks.data), 0.98);
}

// tf32 is what Cellpose computes on a GPU: TF32 tensor cores round the
// convolutions' inputs to 10 mantissa bits (seen on an H200: flows up to 0.1
// from the CPU's), which must not change the masks.
TEST_P(CellposeParity, OnCudaTf32GivesCellposesMasks) {
  SKIP_WITHOUT_CUDA();
  const model::Segmenter& gpu = embedded_on_cuda(model::Precision::tf32);
  const ParityCase c = load_parity(GetParam());
  const model::Segmentation s = gpu.segment(c.image, c.options);
  ASSERT_EQ(s.flows.size(), c.flows.size());
  EXPECT_LE(max_abs_diff(s.flows, c.flows), 0.25f);
  EXPECT_GE(cpipc::test::ap50(c.masks, s.masks.data), 0.98)
      << s.masks.count << " masks, Cellpose " << c.meta["n_masks"];
}

TEST_P(CellposeParity, OnCudaBf16StaysCloseToCellpose) {
  SKIP_WITHOUT_CUDA();
  expect_close_masks_at(model::Precision::bf16, GetParam());
}

TEST_P(CellposeParity, OnCudaFp16StaysCloseToCellpose) {
  SKIP_WITHOUT_CUDA();
  expect_close_masks_at(model::Precision::fp16, GetParam());
}

TEST(TensorDynamics, CpuTensorsGiveTheDynamicsLabelsAndBadShapesAreRefused) {
  const ParityCase c = load_parity("gray16_up");
  const std::int64_t h = c.image.desc.shape[0], w = c.image.desc.shape[1];
  const at::Tensor flows = torch::from_blob(const_cast<float*>(c.flows.data()), {3, h, w});
  const model::TensorLabels t = model::masks_from_flows(flows);
  const std::size_t plane = static_cast<std::size_t>(h * w);
  const cpipc::dynamics::Labels ref = cpipc::dynamics::masks_from_flows({{c.flows.data(), plane},
                                                                         {c.flows.data() + plane, plane},
                                                                         {c.flows.data() + 2 * plane, plane},
                                                                         static_cast<int>(h),
                                                                         static_cast<int>(w)});
  EXPECT_EQ(t.count, ref.count);
  EXPECT_EQ(t.labels.scalar_type(), torch::kInt32);
  EXPECT_EQ(std::memcmp(t.labels.data_ptr<std::int32_t>(), ref.data.data(), plane * 4), 0);
  expect_error([&] { (void)model::masks_from_flows(flows.slice(0, 0, 2)); }, Errc::invalid_argument,
               "float32 [3, H, W]");
  expect_error([&] { (void)model::masks_from_flows(flows.to(torch::kDouble)); }, Errc::invalid_argument,
               "float32 [3, H, W]");
}

TEST(TensorDynamics, CudaTensorsGiveTheCpuLabels) {
  SKIP_WITHOUT_CUDA();
  const ParityCase c = load_parity("gray16_up");
  const at::Tensor flows =
      torch::from_blob(const_cast<float*>(c.flows.data()), {3, c.image.desc.shape[0], c.image.desc.shape[1]}).clone();
  const model::TensorLabels cpu = model::masks_from_flows(flows);
  const model::TensorLabels gpu = model::masks_from_flows(flows.to(torch::kCUDA));
  EXPECT_EQ(gpu.labels.device().type(), c10::kCUDA);
  EXPECT_EQ(gpu.count, cpu.count);
  EXPECT_TRUE(torch::equal(gpu.labels.cpu(), cpu.labels));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CellposeParity, ::testing::ValuesIn(parity_cases()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CellposeParity);

}  // namespace
