// The embedded default network: models/cpipc_default_cpnet.pt, assembled
// into the binary so that `cpipc segment` works with no files beside it.
#include "cpipc/model/model.hpp"

#ifndef CPIPC_DEFAULT_MODEL_PATH
#error "CPIPC_DEFAULT_MODEL_PATH must name models/cpipc_default_cpnet.pt"
#endif

__asm__(
    ".section .rodata\n"
    ".balign 64\n"
    ".global cpipc_default_model_begin\n"
    ".hidden cpipc_default_model_begin\n"
    "cpipc_default_model_begin:\n"
    ".incbin \"" CPIPC_DEFAULT_MODEL_PATH
    "\"\n"
    ".global cpipc_default_model_end\n"
    ".hidden cpipc_default_model_end\n"
    "cpipc_default_model_end:\n"
    ".previous\n");

extern "C" const std::byte cpipc_default_model_begin[];
extern "C" const std::byte cpipc_default_model_end[];

namespace cpipc::model {

std::span<const std::byte> default_model_bytes() noexcept {
  return {cpipc_default_model_begin, static_cast<std::size_t>(cpipc_default_model_end - cpipc_default_model_begin)};
}

}  // namespace cpipc::model
