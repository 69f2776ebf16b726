// Proves the LibTorch install: a small conv net forward on the CPU, under
// InferenceMode, and the CUDA view of this process. Prints one line.
#include <torch/torch.h>

#include <cstdio>

int main() {
  torch::manual_seed(0);
  torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 8, 3).padding(1)), torch::nn::ReLU(),
                            torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 3, 1)));
  net->eval();
  torch::InferenceMode guard;
  const torch::Tensor x = torch::rand({1, 2, 64, 64});
  const torch::Tensor y = net->forward(x);
  const bool ok = y.sizes() == torch::IntArrayRef({1, 3, 64, 64}) && torch::isfinite(y).all().item<bool>();
  std::printf("libtorch %s: forward [1,2,64,64] -> [%lld,%lld,%lld,%lld] %s; cuda available: %s (%d devices)\n",
              TORCH_VERSION, static_cast<long long>(y.size(0)), static_cast<long long>(y.size(1)),
              static_cast<long long>(y.size(2)), static_cast<long long>(y.size(3)), ok ? "ok" : "WRONG",
              torch::cuda::is_available() ? "yes" : "no", static_cast<int>(torch::cuda::device_count()));
  return ok ? 0 : 1;
}
