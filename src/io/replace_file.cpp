#include "cpipc/io/replace_file.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"

namespace cpipc::io {

namespace {

namespace fs = std::filesystem;

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

}  // namespace

void write_replacing(const std::string& path, const std::function<void(const std::string& tmp)>& write) {
  std::error_code ec;
  const fs::file_status link = fs::symlink_status(path, ec);
  if (fs::exists(link) && (fs::is_symlink(link) || !fs::is_regular_file(link))) return write(path);

  static std::atomic<unsigned> counter{0};
  const fs::path target(path);
  const std::string ext = target.extension().string();
  const std::string tmp = (target.parent_path() / ("." + target.stem().string() + ".cpipc-" +
                                                   std::to_string(::getpid()) + "-" + std::to_string(counter++) + ext))
                              .string();
  try {
    write(tmp);
  } catch (const Error& e) {
    std::remove(tmp.c_str());
    throw Error(e.code(), replaced(e.what(), tmp, path));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    write_error(path, err);
  }
}

void write_file(const std::string& path, std::initializer_list<std::string_view> parts) {
  write_replacing(path, [&](const std::string& to) {
    OutputFile out(to);
    for (const std::string_view part : parts) out.write(part.data(), part.size());
    out.close();
  });
}

}  // namespace cpipc::io
