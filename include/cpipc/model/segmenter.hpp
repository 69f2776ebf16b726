// Image in, masks out: Cellpose's eval on one device end to end (the
// preprocessing, the network with its tiles, the dynamics).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/io/array.hpp"
#include "cpipc/model/model.hpp"
#include "cpipc/model/preprocess.hpp"

namespace cpipc::model {

// Where a segmentation is, for progress reports.
struct Progress {
  enum class Stage { preprocess, network, dynamics, done } stage = Stage::preprocess;
  int tiles_done = 0;
  int tiles_total = 0;
};
[[nodiscard]] const char* to_string(Progress::Stage stage) noexcept;

struct SegmentOptions {
  ChannelSpec channels;  // Cellpose 3 [seg, nuc]; ignored by cellpose4 networks
  // px. Unset: the model's diam_labels (CellposeModel.eval without one).
  // <= 0: estimated as Cellpose 3 does (Cellpose(...).eval(diameter=0)) when
  // the model has a size model, else diam_labels (ModelInfo::size_model).
  std::optional<double> diameter;
  Normalization normalization;            // percentiles 1 and 99
  double tile_overlap = 0.1;              // fraction of a tile
  int batch_size = 8;                     // tiles per forward
  dynamics::Params dynamics{.niter = 0};  // niter 0: 200 / rescale, as Cellpose
  bool exclude_on_edges = false;          // drop masks touching the border (Cellpose's remove_edge_masks)
  // false (Cellpose's --no_resample): the dynamics run on the flows at the
  // rescaled size (niter 200 by default), and the masks are resized back;
  // faster for large cells, coarser boundaries.
  bool resample = true;
  bool augment = false;     // Cellpose's augment: flipped half-overlapping tiles, averaged (about 4x the tiles)
  bool keep_flows = false;  // return the flows as well
  // On CUDA, leave the labels on the device (Segmentation::device_labels,
  // masks.data empty) for a producer that publishes device views.
  bool labels_on_device = false;
  std::function<void(const Progress&)> progress;
};

struct Segmentation {
  dynamics::Labels masks;           // at the image's size (data empty when device_labels is set)
  at::Tensor device_labels;         // int32 [H, W] on the CUDA device, with labels_on_device; ready (synchronised)
  std::vector<float> flows;         // [3, H, W] dY, dX, cellprob when keep_flows
  std::vector<float> style;         // the image's style vector
  double diameter = 0.0;            // the diameter used (px)
  bool diameter_estimated = false;  // by the model's size model (SegmentOptions::diameter <= 0)
  double diameter_style = 0.0;      // px, when estimated: the style regression's first guess
  float rescale = 1.0f;             // diam_mean / diameter
  int niter = 0;                    // flow-following steps used
  int tiles = 0;
  struct Timings {
    double preprocess_s = 0.0;
    double network_s = 0.0;
    double dynamics_s = 0.0;
    double total_s = 0.0;
  } timings;
};

class Segmenter {
 public:
  explicit Segmenter(Model model);

  [[nodiscard]] const Model& model() const noexcept { return model_; }

  // Segments a 2-D image ([H, W] or [H, W, C], integer or float). Throws
  // Error(invalid_argument) for images or options that cannot be segmented
  // (each naming what was wrong), Error(out_of_memory) for an image too large
  // for the memory this process (or device) has free, refused up front or
  // met on the way, and Error(cancelled) when options.progress throws it.
  [[nodiscard]] Segmentation segment(const io::Array& image, const SegmentOptions& options = {}) const;

 private:
  [[nodiscard]] Segmentation run(const io::Array& image, const SegmentOptions& options) const;

  Model model_;
};

}  // namespace cpipc::model
