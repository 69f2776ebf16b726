#include "cpipc/io/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "cpipc/error.hpp"

namespace cpipc::io {

namespace {

[[noreturn]] void refuse(const std::string& path, const std::string& what) {
  throw Error(Errc::invalid_argument,
              "cannot read '" + path + "': it is " + what + ", not an image file; give the path of a regular file");
}

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "a special file";
}

// What to do about a failed write, by its errno.
std::string write_fix(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return "free space on that file system or write the file elsewhere";
    case EFBIG:
      return "raise the file size limit (ulimit -f) or write the file elsewhere";
    case ENOENT:
    case ENOTDIR:
      return "create the directory first or write the file elsewhere";
    case EACCES:
    case EPERM:
    case EROFS:
      return "write it where you have write permission";
    default:
      return "check the disk and the path, or write the file elsewhere";
  }
}

}  // namespace

RegularFile RegularFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) throw Error(Errc::not_found, "no file '" + path + "'");
    if (err == ENXIO) refuse(path, "a socket");  // what open(2) says for one
    throw Error(Errc::io, "cannot open '" + path + "': " + std::strerror(err));
  }
  RegularFile file(path, fd, 0);  // closes fd from here on
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(Errc::io, "cannot read '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) refuse(path, kind_of(st.st_mode));
  file.size_ = static_cast<std::uint64_t>(st.st_size);
  return file;
}

RegularFile::RegularFile(RegularFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), size_(other.size_) {}

RegularFile& RegularFile::operator=(RegularFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
  }
  return *this;
}

RegularFile::~RegularFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t RegularFile::read_at(std::uint64_t offset, void* out, std::size_t n) const {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, static_cast<char*>(out) + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw Error(Errc::io, "cannot read '" + path_ + "': " + std::strerror(errno));
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

OutputFile::OutputFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
  if (fd_ < 0) write_error(path_, errno);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);  // only after a failure: nothing left to report
}

void OutputFile::write(const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t put = ::write(fd_, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) write_error(path_, errno);
    if (put == 0) write_error(path_, ENOSPC);  // no progress and no errno: as a full disk
    p += put;
    n -= static_cast<std::size_t>(put);
  }
}

void OutputFile::close() {
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && ::fsync(fd_) != 0) write_error(path_, errno);
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0 && errno != EINTR) write_error(path_, errno);
}

void write_error(const std::string& path, int err) {
  throw Error(Errc::io, "cannot write '" + path + "': " + std::strerror(err) + "; " + write_fix(err));
}

}  // namespace cpipc::io
