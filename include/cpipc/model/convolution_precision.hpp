// TF32 in a TorchScript model's convolutions. torch.jit.trace records each
// convolution as aten::_convolution with the allow_tf32 flag of the tracing
// process (true: PyTorch's default), and cuDNN obeys that recorded flag, not
// the process's setting: without a rewrite a traced Cellpose network runs
// its convolutions in TF32 on any GPU from Ampere on, whatever fp32 asks.
#pragma once

namespace torch::jit {
struct Module;
}

namespace cpipc::model {

// Sets allow_tf32 on every aten::_convolution in every method of `module`
// and its submodules, before the first forward. Returns how many there are.
int set_convolution_tf32(torch::jit::Module& module, bool allow);

}  // namespace cpipc::model
