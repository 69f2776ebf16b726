#include "cpipc/service/protocol.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cpipc/error.hpp"

namespace cpipc::service {

namespace {

[[noreturn]] void bad(const std::string& message) { throw Error(Errc::invalid_argument, message); }

template <class T>
std::optional<T> optional_number(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_number()) bad(std::string("\"") + key + "\" must be a number");
  const double v = j[key].get<double>();
  if (!std::isfinite(v)) bad(std::string("\"") + key + "\" must be finite");
  if constexpr (std::is_integral_v<T>) {
    if (v != std::floor(v) || std::abs(v) > 1e9) bad(std::string("\"") + key + "\" must be an integer");
  }
  return static_cast<T>(v);
}

std::uint32_t read_le32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

nlohmann::json SubmitRequest::to_json() const {
  nlohmann::json j{{"type", "submit"}, {"id", id}};
  if (!image.empty()) j["image"] = image;
  if (!input.empty()) j["input"] = input;
  if (diameter) j["diameter"] = *diameter;
  if (channels) j["channels"] = *channels;
  if (flow_threshold) j["flow_threshold"] = *flow_threshold;
  if (cellprob_threshold) j["cellprob_threshold"] = *cellprob_threshold;
  if (min_size) j["min_size"] = *min_size;
  if (max_size_fraction) j["max_size_fraction"] = *max_size_fraction;
  if (niter) j["niter"] = *niter;
  if (timeout_s) j["timeout_s"] = *timeout_s;
  return j;
}

SubmitRequest SubmitRequest::from_json(const nlohmann::json& j) {
  static const char* const known[] = {"type",           "id",
                                      "image",          "input",
                                      "diameter",       "channels",
                                      "flow_threshold", "cellprob_threshold",
                                      "min_size",       "max_size_fraction",
                                      "niter",          "timeout_s"};
  for (const auto& [key, value] : j.items()) {
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) == std::end(known)) {
      bad("unknown field \"" + key + "\" in submit");
    }
  }
  SubmitRequest r;
  if (!j.contains("id") || !j["id"].is_string() || j["id"].get<std::string>().empty() ||
      j["id"].get<std::string>().size() > 128) {
    bad("submit needs an \"id\": a string of 1..128 characters");
  }
  r.id = j["id"];
  if (j.contains("image")) {
    if (!j["image"].is_string()) bad("\"image\" must be a path");
    r.image = j["image"];
  }
  if (j.contains("input")) {
    if (!j["input"].is_string()) bad("\"input\" must be a segment name");
    r.input = j["input"];
  }
  if (r.image.empty() == r.input.empty())
    bad("submit needs exactly one of \"image\" (a path) or \"input\" (a segment)");
  r.diameter = optional_number<double>(j, "diameter");
  if (r.diameter && *r.diameter < 0) bad("\"diameter\" must be >= 0 (0 = the model's)");
  if (j.contains("channels") && !j["channels"].is_null()) {
    const auto& c = j["channels"];
    if (!c.is_array() || c.size() != 2 || !c[0].is_number_integer() || !c[1].is_number_integer() ||
        c[0].get<int>() < 0 || c[1].get<int>() < 0 || c[0].get<int>() > 64 || c[1].get<int>() > 64) {
      bad("\"channels\" must be [seg, nuc]: two 1-based channel numbers, 0 = gray / none");
    }
    r.channels = std::array<int, 2>{c[0].get<int>(), c[1].get<int>()};
  }
  r.flow_threshold = optional_number<float>(j, "flow_threshold");
  if (r.flow_threshold && *r.flow_threshold < 0) bad("\"flow_threshold\" must be >= 0 (0 = off)");
  r.cellprob_threshold = optional_number<float>(j, "cellprob_threshold");
  r.min_size = optional_number<int>(j, "min_size");
  r.max_size_fraction = optional_number<float>(j, "max_size_fraction");
  if (r.max_size_fraction && !(*r.max_size_fraction > 0)) bad("\"max_size_fraction\" must be > 0");
  r.niter = optional_number<int>(j, "niter");
  if (r.niter && (*r.niter < 0 || *r.niter > 100000)) bad("\"niter\" must be in 0..100000 (0 = automatic)");
  r.timeout_s = optional_number<double>(j, "timeout_s");
  if (r.timeout_s && !(*r.timeout_s > 0)) bad("\"timeout_s\" must be > 0");
  return r;
}

std::string frame_message(const nlohmann::json& message) {
  const std::string body = message.dump();
  if (body.size() > kMaxMessageBytes) bad("message of " + std::to_string(body.size()) + " bytes is over the limit");
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
  if (n > kMaxMessageBytes) {
    bad("message of " + std::to_string(n) + " bytes is over the " + std::to_string(kMaxMessageBytes) + "-byte limit");
  }
  if (buffer_.size() < 4 + static_cast<std::size_t>(n)) return std::nullopt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(buffer_.begin() + 4, buffer_.begin() + 4 + n);
  } catch (const nlohmann::json::exception&) {
    buffer_.erase(0, 4 + static_cast<std::size_t>(n));
    bad("a message is not JSON");
  }
  buffer_.erase(0, 4 + static_cast<std::size_t>(n));
  if (!j.is_object()) bad("a message must be a JSON object");
  return j;
}

std::optional<nlohmann::json> receive_message(int fd, std::chrono::milliseconds timeout) {
  // One decoder per fd would keep partial bytes between calls; blocking
  // reads of exactly one message need none: read the prefix, then the body.
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
  if (n > kMaxMessageBytes) bad("message of " + std::to_string(n) + " bytes is over the limit");
  std::string body(n, '\0');
  read_exact(body.data(), n, true);
  try {
    nlohmann::json j = nlohmann::json::parse(body);
    if (!j.is_object()) bad("a message must be a JSON object");
    return j;
  } catch (const nlohmann::json::exception&) {
    bad("a message is not JSON");
  }
}

std::string default_socket_path(const std::string& name) {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const std::string dir =
      runtime && *runtime ? std::string(runtime) + "/cpipc" : "/tmp/cpipc-" + std::to_string(::getuid());
  return dir + "/" + name + ".sock";
}

}  // namespace cpipc::service
