// The two ends of every file cpipc reads or writes. Readers open input files
// only through RegularFile, so that a FIFO, a device or a directory given as
// an image is refused at once instead of blocking or streaming forever;
// writers write only through OutputFile, so that every byte (and the final
// flush to the disk) is checked and a full disk is an error, never a
// silently short file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cpipc::io {

// An input file, open for reading (RAII: closed when it goes).
class RegularFile {
 public:
  // Opens `path` without blocking (O_NONBLOCK: a FIFO with no writer would
  // otherwise wait forever in open) and requires a regular file.
  // Throws Error(not_found) for a missing file; Error(invalid_argument) for a
  // directory, FIFO, socket or device; Error(io) when it cannot be opened.
  [[nodiscard]] static RegularFile open(const std::string& path);

  RegularFile(RegularFile&& other) noexcept;
  RegularFile& operator=(RegularFile&& other) noexcept;
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;
  ~RegularFile();

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // Reads up to `n` bytes at `offset` into `out`; returns how many were
  // read (fewer only at the end of the file). Throws Error(io).
  std::size_t read_at(std::uint64_t offset, void* out, std::size_t n) const;

 private:
  RegularFile(std::string path, int fd, std::uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// An output file, created or truncated (RAII: closed when it goes; call
// close() to learn whether everything reached the disk).
class OutputFile {
 public:
  // Throws Error(io) (see write_error) when `path` cannot be created.
  explicit OutputFile(const std::string& path);
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();

  // Writes all `n` bytes or throws Error(io): a short write (full disk, file
  // size limit) is an error, retried only on EINTR.
  void write(const void* data, std::size_t n);
  // fsync (for a regular file) and close, both checked: a full disk or a
  // network file system may report the failure only there.
  void close();

 private:
  std::string path_;
  int fd_ = -1;
};

// Throws Error(io): "cannot write 'PATH': <errno's text>; <what to do>".
[[noreturn]] void write_error(const std::string& path, int err);

}  // namespace cpipc::io
