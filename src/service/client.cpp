#include "cpipc/service/client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "cpipc/error.hpp"

namespace cpipc::service {

Errc errc_of_code(const std::string& code) noexcept {
  if (code == codes::bad_request || code == codes::bad_image || code == codes::bad_params) {
    return Errc::invalid_argument;
  }
  if (code == codes::cancelled) return Errc::cancelled;
  if (code == codes::timed_out) return Errc::timed_out;
  if (code == codes::out_of_memory) return Errc::out_of_memory;
  if (code == codes::shutting_down) return Errc::producer_gone;
  return Errc::system;
}

Client Client::connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof addr.sun_path) {
    throw Error(Errc::invalid_argument, "socket path '" + socket_path + "' is too long");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  Client c;
  c.fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c.fd_ < 0) throw_errno("socket", errno);
  if (::connect(c.fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      throw Error(Errc::not_found, "no producer is serving on '" + socket_path + "' (start one with 'cpipc serve')");
    }
    throw_errno("connect " + socket_path, err);
  }
  std::optional<nlohmann::json> hello = receive_message(c.fd_, timeout);
  if (!hello) throw Error(Errc::timed_out, "the producer on '" + socket_path + "' did not say hello");
  if (hello->value("type", "") == "error") {
    throw Error(errc_of_code(hello->value("code", "")), hello->value("code", "") + ": " + hello->value("message", ""));
  }
  if (hello->value("type", "") != "hello" || hello->value("version", 0) != kProtocolVersion) {
    throw Error(Errc::invalid_argument,
                "'" + socket_path + "' does not speak cpipc protocol " + std::to_string(kProtocolVersion));
  }
  c.hello_ = std::move(*hello);
  return c;
}

Client::Client(Client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), hello_(std::move(other.hello_)), readers_(std::move(other.readers_)) {}

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    hello_ = std::move(other.hello_);
    readers_ = std::move(other.readers_);
  }
  return *this;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

void Client::submit(const SubmitRequest& request) { send_message(fd_, request.to_json()); }
void Client::cancel(const std::string& id) { send_message(fd_, {{"type", "cancel"}, {"id", id}}); }
void Client::release(const std::string& id) { send_message(fd_, {{"type", "release"}, {"id", id}}); }

std::optional<nlohmann::json> Client::next(std::chrono::milliseconds timeout) {
  try {
    return receive_message(fd_, timeout);
  } catch (const Error& e) {
    if (e.code() == Errc::producer_gone) {
      throw Error(Errc::producer_gone, "the producer closed the connection (it stopped or died)");
    }
    throw;
  }
}

io::Array Client::read_masks(const nlohmann::json& result) {
  const std::string name = result.at("segment");
  const auto slot = result.at("slot").get<std::uint32_t>();
  const auto seq = result.at("seq").get<std::uint64_t>();
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto& reader = readers_[name];
    if (!reader) reader = std::make_unique<ipc::SegmentReader>(ipc::SegmentReader::attach(name));
    // The producer re-creates its segment when the shape changes: a cached
    // reader of the old one finds a different layout; attach again.
    const auto& shape = result.at("shape");
    const auto& d = reader->desc();
    const bool same_shape = d.ndim == 2 && d.shape[0] == shape[0].get<std::int64_t>() &&
                            d.shape[1] == shape[1].get<std::int64_t>() &&
                            ipc::to_string(d.dtype) == result.at("dtype").get<std::string>();
    if (same_shape) {
      io::Array masks;
      masks.desc = d;
      if (reader->copy_frame(slot, seq, masks.data)) return masks;
    }
    reader.reset();
  }
  throw Error(Errc::producer_gone, "the result of request \"" + result.value("id", "") +
                                       "\" was overwritten before it was read (read results promptly, or run the "
                                       "producer with more --slots)");
}

SegmentResult Client::segment(const SubmitRequest& request, const std::function<void(const nlohmann::json&)>& on_event,
                              std::chrono::milliseconds timeout) {
  submit(request);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw Error(Errc::timed_out, "no result for \"" + request.id + "\" in time");
    std::optional<nlohmann::json> m = next(left);
    if (!m) continue;
    if (m->value("id", "") != request.id) continue;  // another request's message
    if (on_event) on_event(*m);
    const std::string type = m->value("type", "");
    if (type == "error") {
      throw Error(errc_of_code(m->value("code", "")), m->value("code", "") + ": " + m->value("message", ""));
    }
    if (type == "result") {
      SegmentResult r{*m, read_masks(*m)};
      release(request.id);
      return r;
    }
  }
}

}  // namespace cpipc::service
