// Length-prefixed JSON frames on a stream socket (docs/PROTOCOL.md "Transport").
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "cpipc/service/protocol.hpp"

namespace cpipc::service {

namespace {

std::uint32_t read_le32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string oversize(std::size_t n) {
  return "message of " + std::to_string(n) + " bytes is over the " + std::to_string(kMaxMessageBytes) + "-byte limit";
}

// Parses one message body; a body that is not one JSON object is refused
// without consuming anything else.
nlohmann::json parse_body(const char* begin, const char* end) {
  nlohmann::json j = nlohmann::json::parse(begin, end, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw BadMessage("a message is not JSON (or not UTF-8)", "");
  if (!j.is_object()) throw BadMessage("a message must be a JSON object", "");
  return j;
}

}  // namespace

std::string frame_message(const nlohmann::json& message) {
  // replace: a stray byte that is not UTF-8 becomes U+FFFD instead of an exception.
  const std::string body = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (body.size() > kMaxMessageBytes) throw Error(Errc::invalid_argument, oversize(body.size()));
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((body.size() >> (8 * i)) & 0xff);
  return out + body;
}

void send_message(int fd, const nlohmann::json& message) {
  const std::string bytes = frame_message(message);
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) throw Error(Errc::producer_gone, "the connection was closed");
      throw_errno("send", errno);
    }
    sent += static_cast<std::size_t>(n);
  }
}

std::optional<nlohmann::json> MessageDecoder::next() {
  if (buffer_.size() < 4) return std::nullopt;
  const std::uint32_t n = read_le32(buffer_.data());
  if (n > kMaxMessageBytes) throw FramingLost(Errc::invalid_argument, oversize(n));
  if (buffer_.size() < 4 + static_cast<std::size_t>(n)) return std::nullopt;
  const std::string body = buffer_.substr(4, n);
  buffer_.erase(0, 4 + static_cast<std::size_t>(n));
  return parse_body(body.data(), body.data() + body.size());
}

std::optional<nlohmann::json> receive_message(int fd, std::chrono::milliseconds timeout) {
  // Blocking reads of exactly one message need no decoder: read the
  // prefix, then the body.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto read_exact = [&](char* p, std::size_t n, bool started) -> bool {
    std::size_t got = 0;
    while (got < n) {
      int wait_ms = -1;
      if (timeout.count() >= 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        // Once a message has started, finish it: the peer writes whole messages.
        wait_ms = started || got > 0 ? 5000 : static_cast<int>(std::max<std::int64_t>(0, left.count()));
      }
      pollfd pfd{fd, POLLIN, 0};
      const int r = ::poll(&pfd, 1, wait_ms);
      if (r < 0) {
        if (errno == EINTR) continue;
        throw_errno("poll", errno);
      }
      if (r == 0) {
        if (started || got > 0) throw Error(Errc::timed_out, "the peer stopped in the middle of a message");
        return false;
      }
      const ssize_t k = ::recv(fd, p + got, n - got, 0);
      if (k < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        if (errno == ECONNRESET) throw Error(Errc::producer_gone, "the connection was closed");
        throw_errno("recv", errno);
      }
      if (k == 0) throw Error(Errc::producer_gone, "the connection was closed");
      got += static_cast<std::size_t>(k);
    }
    return true;
  };
  char prefix[4];
  if (!read_exact(prefix, 4, false)) return std::nullopt;
  const std::uint32_t n = read_le32(prefix);
  if (n > kMaxMessageBytes) throw FramingLost(Errc::invalid_argument, oversize(n));
  std::string body(n, '\0');
  read_exact(body.data(), n, true);
  return parse_body(body.data(), body.data() + body.size());
}

std::string default_socket_path(const std::string& name) {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const std::string dir =
      runtime && *runtime ? std::string(runtime) + "/cpipc" : "/tmp/cpipc-" + std::to_string(::geteuid());
  return dir + "/" + name + ".sock";
}

}  // namespace cpipc::service
