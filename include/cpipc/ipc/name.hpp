// Stream names and the POSIX shm object names they map to.
#pragma once

#include <string>
#include <string_view>

namespace cpipc::ipc {

inline constexpr std::size_t kMaxNameLength = 128;

// Throws Error(invalid_argument) unless `name` is 1..128 characters of
// [A-Za-z0-9._-], starts with a letter, digit or '_'.
void validate_name(std::string_view name);

// The per-user prefix of every cpipc shm object: "cpipc.<uid>." so that two
// users of one machine never collide (their names differ by uid).
[[nodiscard]] std::string shm_prefix();

// "/cpipc.<uid>.<name>", for shm_open. Validates the name.
[[nodiscard]] std::string shm_object_name(std::string_view name);

// Where the object shows up in the file system ("/dev/shm/cpipc.<uid>.<name>").
[[nodiscard]] std::string shm_file_path(std::string_view name);

}  // namespace cpipc::ipc
