// Element type conversions for arrays read from files.
#pragma once

#include <string>
#include <vector>

#include "cpipc/io/array.hpp"

namespace cpipc::io {

// The array's values as float32: from float16/32/64 and 8-32-bit integers.
// Throws Error(invalid_argument) naming `what` for other dtypes.
[[nodiscard]] std::vector<float> to_float32(const Array& array, const std::string& what);

// The array's values as uint32 labels: from unsigned or non-negative signed
// integers. Throws Error(invalid_argument) naming `what` otherwise.
[[nodiscard]] std::vector<std::uint32_t> to_labels(const Array& array, const std::string& what);

}  // namespace cpipc::io
