// Unix sockets that only their owner can use: private directories, peer
// credentials, listening and connecting (docs/PROTOCOL.md "Transport").
#pragma once

#include <sys/types.h>

#include <string>

#include "cpipc/ipc/detail/mapping.hpp"

namespace cpipc::service::detail {

using ipc::detail::UniqueFd;

// Throws Error(invalid_argument) unless `dir` is a real directory (not a
// link) owned by this user that nobody else can write to: otherwise another
// user could plant a socket there and pose as a producer.
void check_private_directory(const std::string& dir);
// Creates `dir` (0700) when missing, then checks it as above.
void make_private_directory(const std::string& dir);

// The user id of the process at the other end of a connected socket.
[[nodiscard]] uid_t peer_uid(int fd);

// Binds and listens on `path` (mode 0600, in a private directory), replacing
// a stale socket file that nobody answers on. Throws Error(exists) when a
// producer answers there or the path is not a socket.
[[nodiscard]] UniqueFd listen_on(const std::string& path, int backlog);

// Connects to `path` after checking that its directory is private and the
// socket and the process listening on it are this user's. Throws
// Error(not_found) when nobody listens, Error(invalid_argument) when the
// socket or its producer belongs to someone else.
[[nodiscard]] UniqueFd connect_to(const std::string& path);

}  // namespace cpipc::service::detail
