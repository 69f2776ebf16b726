#include "cpipc/model/model.hpp"

#include <sys/stat.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <cstdlib>
#include <fstream>
#include <istream>
#include <optional>
#include <sstream>
#include <streambuf>
#include <unordered_map>

#include "cpipc/cuda/device.hpp"
#include "cpipc/error.hpp"
#include "cpipc/model/convolution_precision.hpp"
#include "cpipc/util/memory.hpp"

namespace cpipc::model {

namespace {

// Reads bytes in memory through std::istream without copying them.
class MemoryBuffer : public std::streambuf {
 public:
  explicit MemoryBuffer(std::span<const std::byte> bytes) {
    char* p = const_cast<char*>(reinterpret_cast<const char*>(bytes.data()));
    setg(p, p, p + bytes.size());
  }

 protected:
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override {
    char* target = dir == std::ios_base::beg ? eback() + off : dir == std::ios_base::cur ? gptr() + off : egptr() + off;
    if (target < eback() || target > egptr()) return pos_type(off_type(-1));
    setg(eback(), target, egptr());
    return pos_type(target - eback());
  }
  pos_type seekpos(pos_type pos, std::ios_base::openmode mode) override {
    return seekoff(off_type(pos), std::ios_base::beg, mode);
  }
};

// The first line of a c10::Error: the rest is a C++ backtrace.
std::string first_line(const std::exception& e) {
  std::string s = e.what();
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) s = c10e->what_without_backtrace();
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::string shape_string(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

c10::Device torch_device(Device d) {
  return d.cuda ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(d.index)) : c10::Device(c10::kCPU);
}

at::ScalarType scalar_type(Precision p) {
  switch (p) {
    case Precision::bf16:
      return at::kBFloat16;
    case Precision::fp16:
      return at::kHalf;
    default:
      return at::kFloat;
  }
}

}  // namespace

Device Device::parse(const std::string& text) {
  if (text == "cpu") return {false, 0};
  if (text == "cuda") return {true, 0};
  if (text.rfind("cuda:", 0) == 0) {
    const std::string n = text.substr(5);
    if (!n.empty() && n.size() < 4 && n.find_first_not_of("0123456789") == std::string::npos) {
      return {true, std::stoi(n)};
    }
  }
  throw Error(Errc::invalid_argument, "bad device '" + text + "': expected cpu, cuda or cuda:N");
}

std::string Device::to_string() const { return cuda ? "cuda:" + std::to_string(index) : "cpu"; }

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::fp32;
  if (text == "tf32") return Precision::tf32;
  if (text == "bf16") return Precision::bf16;
  if (text == "fp16") return Precision::fp16;
  throw Error(Errc::invalid_argument, "bad precision '" + text + "': expected fp32, tf32, bf16 or fp16");
}

const char* to_string(Precision p) noexcept {
  switch (p) {
    case Precision::tf32:
      return "tf32";
    case Precision::bf16:
      return "bf16";
    case Precision::fp16:
      return "fp16";
    default:
      return "fp32";
  }
}

struct Model::Impl {
  torch::jit::Module module;
  ModelInfo info;
  Device device;
  Precision precision = Precision::fp32;
  std::string source;
  CpuInference cpu = CpuInference::plain;  // how the CPU runs the network (cpu_inference_from_env())
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const ModelInfo& Model::info() const noexcept { return impl_->info; }
Device Model::device() const noexcept { return impl_->device; }
Precision Model::precision() const noexcept { return impl_->precision; }
CpuInference Model::cpu_inference() const noexcept { return impl_->cpu; }
int Model::tiles_per_forward(int requested) const noexcept {
  const bool cpu_cpnet = !impl_->device.cuda && impl_->info.architecture == "CPnet";
  return cpu_cpnet && impl_->cpu == CpuInference::channels_last ? 1 : requested;
}
const std::string& Model::source() const noexcept { return impl_->source; }

struct ModelLoader {
  static std::unique_ptr<Model::Impl> load(std::istream& in, const std::string& source, Device device,
                                           Precision precision);
};

namespace {
// One tiny forward: the contract, checked before any image is segmented.
void check_contract(const Model& model);

// CPU inference, set by CPIPC_CPU_INFERENCE (both give Cellpose's flows within
// 1e-3; between them only the order of oneDNN's sums differs):
//  - "channels-last" (the default; "fast" and "fused" are its old names):
//    NHWC tensors, which oneDNN convolves without the reorders that NCHW
//    costs (~1.3x on CPnet's forward at both widths);
//  - "plain": NCHW tensors, as Cellpose runs it.
// A frozen module fused by oneDNN Graph was the default until 2026-12-08: at
// one tile per forward (tiles_per_forward) it is no faster than channels-last
// (0.147 against 0.141 s a tile) and it cost a compile per input shape.
CpuInference cpu_inference_from_env() {
  const char* env = std::getenv("CPIPC_CPU_INFERENCE");
  const std::string mode = env == nullptr ? "" : env;
  if (mode.empty() || mode == "channels-last" || mode == "fast" || mode == "fused") return CpuInference::channels_last;
  if (mode == "plain") return CpuInference::plain;
  throw Error(Errc::invalid_argument,
              "CPIPC_CPU_INFERENCE='" + mode + "': expected channels-last (the default) or plain");
}

// Sets this thread's TorchScript executor mode for one scope.
class ExecutorOptimize {
 public:
  explicit ExecutorOptimize(bool on) : before_(torch::jit::getGraphExecutorOptimize()) {
    torch::jit::setGraphExecutorOptimize(on);
  }
  ~ExecutorOptimize() { torch::jit::setGraphExecutorOptimize(before_); }
  ExecutorOptimize(const ExecutorOptimize&) = delete;
  ExecutorOptimize& operator=(const ExecutorOptimize&) = delete;

 private:
  bool before_;
};
}  // namespace

std::unique_ptr<Model::Impl> ModelLoader::load(std::istream& in, const std::string& source, Device device,
                                               Precision precision) {
  if (device.cuda) {
    const int count = static_cast<int>(torch::cuda::device_count());
    if (count == 0) {
      throw Error(Errc::invalid_argument, "--device " + device.to_string() +
                                              ": no CUDA device is usable here (LibTorch sees none); use --device cpu");
    }
    if (device.index >= count) {
      throw Error(Errc::invalid_argument,
                  "--device " + device.to_string() + ": only " + std::to_string(count) + " CUDA device(s) here");
    }
  } else if (precision != Precision::fp32) {
    throw Error(Errc::invalid_argument,
                std::string("precision ") + to_string(precision) + " is for CUDA devices; use fp32 on the CPU");
  }
  auto impl = std::make_unique<Model::Impl>();
  impl->device = device;
  impl->precision = precision;
  impl->source = source;
  std::unordered_map<std::string, std::string> extra{{"cpipc.json", ""}};
  try {
    impl->module = torch::jit::load(in, torch_device(device), extra);
  } catch (const std::exception& e) {
    throw Error(Errc::invalid_argument, "'" + source + "' is not a TorchScript model (torch::jit::load: " +
                                            first_line(e) + "); export one with tools/export/export.py");
  }
  if (extra["cpipc.json"].empty()) {
    throw Error(Errc::invalid_argument,
                "'" + source + "' has no cpipc.json metadata; export it with tools/export/export.py");
  }
  impl->info = ModelInfo::parse(extra["cpipc.json"], source);
  impl->module.eval();
  // fp32 means IEEE fp32 in cuDNN too (a traced model carries TF32 in its
  // convolutions, convolution_precision.hpp); tf32 means TF32 in both.
  set_convolution_tf32(impl->module, precision == Precision::tf32);
  if (scalar_type(precision) != at::kFloat) impl->module.to(scalar_type(precision));
  if (!device.cuda) impl->cpu = cpu_inference_from_env();
  return impl;
}

namespace {

void check_contract(const Model& model) {
  const auto& info = model.info();
  // The smallest input the contract allows (CP-SAM: one whole tile).
  const std::int64_t side = std::max(32, info.size_multiple);
  const at::Tensor x = torch::zeros({1, info.input_channels, side, side},
                                    torch::TensorOptions().dtype(torch::kFloat).device(torch_device(model.device())));
  NetOutput out;
  try {
    out = model.forward(x);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(Errc::invalid_argument, "'" + model.source() + "' rejected a [1, " +
                                            std::to_string(info.input_channels) + ", " + std::to_string(side) + ", " +
                                            std::to_string(side) + "] input (cpipc.json says " +
                                            std::to_string(info.input_channels) + " input channels): " + first_line(e));
  }
}

}  // namespace

void check_model_memory(std::uint64_t file_bytes, Device device, Precision precision, std::uint64_t available,
                        std::optional<std::uint64_t> device_free, const std::string& source) {
  const double file = static_cast<double>(file_bytes);
  const double host = 2.0 * file;
  if (available > 0 && host > 0.9 * static_cast<double>(available)) {
    throw Error(Errc::out_of_memory, "model '" + source + "' (" + util::gib_string(file) + ") needs about " +
                                         util::gib_string(host) + " of memory to load, more than the " +
                                         util::gib_string(static_cast<double>(available)) +
                                         " available; free some, or use a machine with more memory");
  }
  if (device.cuda && device_free) {
    const double weights = precision == Precision::bf16 || precision == Precision::fp16 ? file / 2.0 : file;
    const double need = weights + std::max(256.0 * 1024 * 1024, 0.8 * weights);
    if (need > 0.9 * static_cast<double>(*device_free)) {
      throw Error(Errc::out_of_memory, "model '" + source + "' needs about " + util::gib_string(need) +
                                           " of GPU memory at " + to_string(precision) + ", more than the " +
                                           util::gib_string(static_cast<double>(*device_free)) + " free on " +
                                           device.to_string() + "; free some, try --precision bf16, or --device cpu");
    }
  }
}

Model Model::load(const std::string& path, Device device, Precision precision) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(Errc::not_found, "no model file '" + path + "'");
  if (S_ISDIR(st.st_mode)) throw Error(Errc::invalid_argument, "'" + path + "' is a directory, not a model file");
  // A FIFO or device would block the loader (or stream forever): only regular files are models.
  if (!S_ISREG(st.st_mode)) {
    throw Error(Errc::invalid_argument,
                "'" + path + "' is not a regular file (a FIFO, socket or device); give the path of a model file");
  }
  check_model_memory(static_cast<std::uint64_t>(st.st_size), device, precision, util::available_memory(),
                     device.cuda ? cuda::free_memory(device.index) : std::nullopt, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errc::io, "cannot open model file '" + path + "'");
  Model model(ModelLoader::load(in, path, device, precision));
  check_contract(model);
  return model;
}

Model Model::load_bytes(std::span<const std::byte> bytes, const std::string& name, Device device, Precision precision) {
  MemoryBuffer buffer(bytes);
  std::istream in(&buffer);
  Model model(ModelLoader::load(in, name, device, precision));
  check_contract(model);
  return model;
}

NetOutput Model::forward(const at::Tensor& x) const {
  c10::InferenceMode guard;
  // TorchScript's profiling executor re-profiles and re-optimises the graph
  // for each new input shape (seconds on the first image of every size); a
  // traced convolutional net gains nothing from it. The switch is per thread:
  // set here, in whichever thread runs the model (serve's worker, not the loader).
  ExecutorOptimize executor(false);
  if (impl_->device.cuda) {
    // Process-wide switches in LibTorch for what the graph does not fix (a
    // scripted model's aten::conv2d, matmuls), on by default for
    // convolutions: set them for this model's precision before each forward.
    const bool tf32 = impl_->precision == Precision::tf32;
    at::globalContext().setAllowTF32CuDNN(tf32);
    at::globalContext().setAllowTF32CuBLAS(tf32);
  }
  const at::ScalarType type = scalar_type(impl_->precision);
  at::Tensor input = type == at::kFloat ? x : x.to(type);
  const bool channels_last = impl_->cpu != CpuInference::plain;
  if (channels_last) input = input.contiguous(at::MemoryFormat::ChannelsLast);
  const c10::IValue result = impl_->module.forward({input});
  NetOutput out;
  const auto contract = [&](const std::string& got) {
    return Error(Errc::invalid_argument, "'" + impl_->source + "' returned " + got + " for an input " +
                                             shape_string(x) +
                                             "; expected y [B, 3, H, W] or a tuple (y [B, 3, H, W], style [B, S])");
  };
  if (result.isTensor()) {
    out.y = result.toTensor();
  } else if (result.isTuple() || result.isList()) {
    const std::vector<c10::IValue> items =
        result.isTuple() ? result.toTupleRef().elements().vec() : result.toList().vec();
    if (items.empty() || !items[0].isTensor()) throw contract("a tuple without a tensor first");
    out.y = items[0].toTensor();
    if (items.size() > 1 && items[1].isTensor()) out.style = items[1].toTensor();
  } else {
    throw contract("a " + result.tagKind());
  }
  const at::Tensor& y = out.y;
  if (y.dim() != 4 || y.size(0) != x.size(0) || y.size(1) != 3 || y.size(2) != x.size(2) || y.size(3) != x.size(3)) {
    throw contract("y " + shape_string(y));
  }
  if (out.style.defined() && (out.style.dim() != 2 || out.style.size(0) != x.size(0))) {
    throw contract("style " + shape_string(out.style));
  }
  if (out.y.scalar_type() != at::kFloat) out.y = out.y.to(at::kFloat);
  if (channels_last) out.y = out.y.contiguous();
  if (out.style.defined() && out.style.scalar_type() != at::kFloat) out.style = out.style.to(at::kFloat);
  return out;
}

void Model::warm_up(int batch) const {
  const int t = impl_->info.tile;
  const at::Tensor x = torch::zeros({batch, impl_->info.input_channels, t, t},
                                    torch::TensorOptions().dtype(torch::kFloat).device(torch_device(impl_->device)));
  (void)forward(x);
  if (impl_->device.cuda) torch::cuda::synchronize(impl_->device.index);
}

}  // namespace cpipc::model
