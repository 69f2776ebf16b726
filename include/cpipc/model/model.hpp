// A Cellpose network exported to TorchScript, loaded with LibTorch, checked
// against cpipc's model contract (shared/DESIGN.md, "Model contract"):
// forward(x float32 [B, C, H, W]) returns y [B, 3, H, W] (dY, dX, cellprob
// logit), or a tuple whose first element is y and whose second, if present,
// is the style [B, 256]. The file carries its metadata as the extra file
// cpipc.json, written by tools/export.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace cpipc::model {

// Where a network runs: "cpu", "cuda" or "cuda:N".
struct Device {
  bool cuda = false;
  int index = 0;

  // Throws Error(invalid_argument) for anything else.
  static Device parse(const std::string& text);
  [[nodiscard]] std::string to_string() const;
};

// Numeric precision of the forward pass. fp32 is IEEE single precision on
// every device. tf32 keeps fp32 tensors but lets cuDNN and cuBLAS use TF32
// tensor cores: what PyTorch, and so Cellpose, does on a GPU by default (its
// flows differ from fp32's by about 1e-3). tf32, bf16 and fp16 only on CUDA.
enum class Precision { fp32, tf32, bf16, fp16 };
[[nodiscard]] Precision parse_precision(const std::string& text);  // "fp32", "tf32", "bf16", "fp16"
[[nodiscard]] const char* to_string(Precision p) noexcept;

// How the network runs on a CPU (CPIPC_CPU_INFERENCE, model.cpp says why):
// NCHW tensors as Cellpose does, or channels-last (the default).
enum class CpuInference { plain, channels_last };

// Cellpose 3's size model (models.SizeModel, a `_size.npy`): a linear
// regression from the style vector to log(diameter),
// diameter = exp(A . (style - smean) + log(diam_mean) + ymean).
struct SizeModel {
  std::vector<double> A;      // one weight per style value
  std::vector<double> smean;  // the training styles' mean (float32 values in Cellpose)
  double ymean = 0.0;         // mean training log-diameter offset
  double diam_mean = 30.0;    // the size model's own diam_mean (px)
};

// cpipc.json, as far as the runtime needs it.
struct ModelInfo {
  std::string architecture;        // "CPnet", "vit_sam.Transformer", ...
  int input_channels = 2;          // C of the network input
  std::string channel_convention;  // "cellpose3 [seg, nuc]" or "cellpose4 first-three"
  double diam_mean = 30.0;         // cells are rescaled to this diameter (px)
  double diam_labels = 30.0;       // mean diameter of the training masks (px)
  int tile = 224;                  // tile side the network was trained on
  int size_multiple = 8;           // H and W of an input must divide by this (CP-SAM: its tile, 256)
  std::string cellpose_version;
  std::optional<SizeModel> size_model;  // "size_model": what diameter estimation needs
  std::string json;                     // the whole cpipc.json text

  // Parses cpipc.json text; `source` names the file in errors. Throws
  // Error(invalid_argument) for malformed JSON or missing/invalid fields.
  static ModelInfo parse(const std::string& text, const std::string& source);
  // True for Cellpose 3's two-channel [seg, nuc] networks.
  [[nodiscard]] bool uses_cellpose3_channels() const noexcept;
  // True for Cellpose 4's networks (CP-SAM: "cellpose4 first-three"): its
  // eval, not Cellpose 3's (rescale 30 / diameter or none, no size model,
  // small images padded to a tile). docs/ARCHITECTURE.md, "Cellpose 3 and 4".
  [[nodiscard]] bool cellpose4_eval() const noexcept;
};

// The network's outputs for a batch of tiles.
struct NetOutput {
  at::Tensor y;      // float32 [B, 3, H, W]
  at::Tensor style;  // float32 [B, S]; undefined when the network has none
};

class Model {
 public:
  // Loads a TorchScript file onto `device` and checks the contract with a
  // tiny forward. Throws Error(not_found) for a missing file,
  // Error(invalid_argument) for a file that is not TorchScript, lacks or has
  // a bad cpipc.json, or whose outputs break the contract (each naming what
  // was expected), Error(system) when the device cannot be used.
  static Model load(const std::string& path, Device device, Precision precision = Precision::fp32);
  // The same from bytes in memory (the embedded default network).
  static Model load_bytes(std::span<const std::byte> bytes, const std::string& name, Device device,
                          Precision precision = Precision::fp32);

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  [[nodiscard]] const ModelInfo& info() const noexcept;
  [[nodiscard]] Device device() const noexcept;
  [[nodiscard]] Precision precision() const noexcept;
  [[nodiscard]] CpuInference cpu_inference() const noexcept;  // plain on CUDA
  // How many tiles to give each forward when `requested` are asked for. A
  // CPnet on the CPU (channels-last) takes one: per tile it runs 1.3-1.5x
  // faster alone than in a batch of 8 (its activations stay in the caches).
  // Otherwise `requested` (Cellpose's batch_size: the GPU, and `plain`).
  [[nodiscard]] int tiles_per_forward(int requested) const noexcept;
  [[nodiscard]] const std::string& source() const noexcept;  // path or name

  // Runs forward on x (float32 [B, C, H, W] on this model's device, H and W
  // multiples of 8) under InferenceMode. Throws Error(invalid_argument) if
  // the output breaks the contract.
  [[nodiscard]] NetOutput forward(const at::Tensor& x) const;

  // One forward on a batch of `batch` tiles of the network's tile size, so
  // that the first real image does not pay for allocator and kernel set-up.
  void warm_up(int batch = 1) const;

 private:
  struct Impl;
  friend struct ModelLoader;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Refuses (Error out_of_memory, before anything is loaded) a model file of
// `file_bytes` that would not fit: loading holds about twice the file in
// host memory; on CUDA the weights (halved for bf16/fp16) plus a working set
// of at least 256 MiB (CP-SAM's attention: about 0.8x its weights) must fit
// in `device_free`. An `available` of 0 means unknown (no check).
void check_model_memory(std::uint64_t file_bytes, Device device, Precision precision, std::uint64_t available,
                        std::optional<std::uint64_t> device_free, const std::string& source);

// The network that ships inside the cpipc binary (models/cpipc_default_cpnet.pt).
[[nodiscard]] std::span<const std::byte> default_model_bytes() noexcept;
inline constexpr const char* kDefaultModelName = "cpipc_default_cpnet (embedded)";

}  // namespace cpipc::model
