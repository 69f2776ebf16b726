#include "cpipc/error.hpp"

#include <cstring>

namespace cpipc {

void throw_errno(const std::string& what, int err) { throw Error(Errc::system, what + ": " + std::strerror(err)); }

}  // namespace cpipc
