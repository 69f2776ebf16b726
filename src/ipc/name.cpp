#include "cpipc/ipc/name.hpp"

#include <unistd.h>

#include "cpipc/error.hpp"

namespace cpipc::ipc {

namespace {
bool name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}
}  // namespace

void validate_name(std::string_view name) {
  const auto bad = [&](const std::string& why) {
    throw Error(Errc::invalid_argument,
                "invalid segment name '" + std::string(name.substr(0, 64)) + (name.size() > 64 ? "...'" : "'") + ": " +
                    why + "; use 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter, digit or _");
  };
  if (name.empty()) bad("it is empty");
  if (name.size() > kMaxNameLength) bad("it is " + std::to_string(name.size()) + " characters long");
  for (char c : name) {
    if (!name_char(c)) bad(c == '/' ? "'/' is not allowed" : "it contains a character outside the allowed set");
  }
  if (name.front() == '.' || name.front() == '-') bad("it starts with '" + std::string(1, name.front()) + "'");
}

std::string shm_prefix() { return "cpipc." + std::to_string(::geteuid()) + "."; }

std::string shm_object_name(std::string_view name) {
  validate_name(name);
  return "/" + shm_prefix() + std::string(name);
}

std::string shm_file_path(std::string_view name) { return "/dev/shm" + shm_object_name(name); }

}  // namespace cpipc::ipc
