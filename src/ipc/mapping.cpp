#include "cpipc/ipc/detail/mapping.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "cpipc/error.hpp"

namespace cpipc::ipc::detail {

void UniqueFd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Mapping::Mapping(int fd, std::size_t bytes, bool writable) : bytes_(bytes) {
  void* p = ::mmap(nullptr, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    bytes_ = 0;
    throw_errno("mmap of " + std::to_string(bytes) + " bytes", errno);
  }
  data_ = static_cast<std::byte*>(p);
}

void Mapping::reset() noexcept {
  if (data_) ::munmap(data_, bytes_);
  data_ = nullptr;
  bytes_ = 0;
}

}  // namespace cpipc::ipc::detail
