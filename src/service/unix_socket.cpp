#include "unix_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cpipc/error.hpp"

namespace cpipc::service::detail {

namespace {

sockaddr_un address_of(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    throw Error(Errc::invalid_argument, "socket path '" + path + "' is too long (at most " +
                                            std::to_string(sizeof addr.sun_path - 1) + " bytes)");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

std::string directory_of(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

std::string octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

void check_private_directory(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) throw_errno("socket directory '" + dir + "'", errno);
  const std::string fix = "; use a directory only you can write to (the default is made 0700)";
  if (!S_ISDIR(st.st_mode))
    throw Error(Errc::invalid_argument, "socket directory '" + dir + "' is not a directory" + fix);
  if (st.st_uid != ::geteuid()) {
    throw Error(Errc::invalid_argument, "socket directory '" + dir + "' belongs to uid " + std::to_string(st.st_uid) +
                                            ", not you: another user could pose as the producer there" + fix);
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    throw Error(Errc::invalid_argument, "socket directory '" + dir + "' has mode " + octal(st.st_mode) +
                                            ": others can write to it and pose as the producer" + fix);
  }
}

void make_private_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir " + dir, errno);
  check_private_directory(dir);
}

uid_t peer_uid(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) throw_errno("SO_PEERCRED", errno);
  return cred.uid;
}

UniqueFd listen_on(const std::string& path, int backlog) {
  const sockaddr_un addr = address_of(path);
  make_private_directory(directory_of(path));
  // A socket file already there: someone listening, or left by a producer that died.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw Error(Errc::exists, "'" + path + "' exists and is not a socket; choose another --socket");
    }
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      throw Error(Errc::exists, "a producer is already serving on '" + path + "'; stop it or use --socket");
    }
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) throw_errno("socket", errno);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) throw_errno("bind " + path, errno);
  // The directory already keeps others out; 0600 says so on the file too
  // (bind honours the umask only, which is process-wide).
  if (::chmod(path.c_str(), 0600) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    throw_errno("chmod " + path, err);
  }
  if (::listen(fd.get(), backlog) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    throw_errno("listen", err);
  }
  return fd;
}

UniqueFd connect_to(const std::string& path) {
  const sockaddr_un addr = address_of(path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      throw Error(Errc::not_found, "no producer is serving on '" + path + "' (start one with 'cpipc serve')");
    }
    throw_errno("socket '" + path + "'", errno);
  }
  check_private_directory(directory_of(path));
  if (!S_ISSOCK(st.st_mode)) throw Error(Errc::invalid_argument, "'" + path + "' is not a socket");
  if (st.st_uid != ::geteuid()) {
    throw Error(Errc::invalid_argument, "socket '" + path + "' belongs to uid " + std::to_string(st.st_uid) +
                                            ", not you; refusing to send it your images");
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw_errno("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      throw Error(Errc::not_found, "no producer is serving on '" + path + "' (start one with 'cpipc serve')");
    }
    throw_errno("connect " + path, err);
  }
  // The file's owner says who made it; the peer's credentials say who answers.
  if (const uid_t uid = peer_uid(fd.get()); uid != ::geteuid()) {
    throw Error(Errc::invalid_argument, "the producer on '" + path + "' runs as uid " + std::to_string(uid) +
                                            ", not you; refusing to send it your images");
  }
  return fd;
}

}  // namespace cpipc::service::detail
