#include "cpipc/model/convolution_precision.hpp"

#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>

namespace cpipc::model {

namespace {

// aten::_convolution(input, weight, bias, stride, padding, dilation,
// transposed, output_padding, groups, benchmark, deterministic,
// cudnn_enabled, allow_tf32): the flag is the last of its 13 inputs.
constexpr std::size_t kConvolutionInputs = 13;

int rewrite(torch::jit::Graph& graph, torch::jit::Block* block, bool allow) {
  static const c10::Symbol convolution = c10::Symbol::fromQualString("aten::_convolution");
  int n = 0;
  for (torch::jit::Node* node : block->nodes()) {
    for (torch::jit::Block* inner : node->blocks()) n += rewrite(graph, inner, allow);
    if (node->kind() != convolution || node->inputs().size() != kConvolutionInputs) continue;
    const torch::jit::WithInsertPoint here(node);
    node->replaceInput(kConvolutionInputs - 1, graph.insertConstant(allow));
    ++n;
  }
  return n;
}

}  // namespace

int set_convolution_tf32(torch::jit::Module& module, bool allow) {
  int n = 0;
  for (const torch::jit::Module& m : module.modules()) {
    for (const torch::jit::Method& method : m.get_methods()) {
      const std::shared_ptr<torch::jit::Graph> graph = method.graph();
      n += rewrite(*graph, graph->block(), allow);
    }
  }
  return n;
}

}  // namespace cpipc::model
