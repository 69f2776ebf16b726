// An owning host array: a tensor description and its bytes.
#pragma once

#include <cstddef>
#include <vector>

#include "cpipc/ipc/tensor.hpp"

namespace cpipc::io {

struct Array {
  ipc::TensorDesc desc;
  std::vector<std::byte> data;  // C-contiguous, desc.nbytes() bytes

  [[nodiscard]] ipc::HostView view() const noexcept { return {data.data(), desc}; }
};

}  // namespace cpipc::io
