// The wire protocol between `cpipc serve` and its clients (docs/PROTOCOL.md):
// a Unix stream socket carrying messages, each a 4-byte little-endian length
// followed by that many bytes of one UTF-8 JSON object.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cpipc::service {

inline constexpr int kProtocolVersion = 1;
// A message larger than this is refused and the connection closed: a length
// prefix cannot be trusted past a bad message.
inline constexpr std::uint32_t kMaxMessageBytes = 1u << 20;

// The typed errors a request can end with ("code" of an error message).
namespace codes {
inline constexpr const char* bad_request = "bad_request";      // malformed, unknown type or field
inline constexpr const char* bad_image = "bad_image";          // missing, unreadable, wrong dtype or shape
inline constexpr const char* bad_params = "bad_params";        // a parameter out of range
inline constexpr const char* model_failure = "model_failure";  // the network or dynamics failed
inline constexpr const char* out_of_memory = "out_of_memory";  // the image needs more (device) memory than there is
inline constexpr const char* cancelled = "cancelled";          // the client cancelled it
inline constexpr const char* timed_out = "timed_out";          // its timeout_s passed
inline constexpr const char* overloaded = "overloaded";        // queue or client limit reached
inline constexpr const char* shutting_down = "shutting_down";  // the producer is stopping
inline constexpr const char* internal = "internal";            // a bug: please report
}  // namespace codes

// A segmentation request, as a client sends it.
struct SubmitRequest {
  std::string id;     // chosen by the client, unique among its open requests
  std::string image;  // a file path readable by the producer, or
  std::string input;  // the name of a segment the client published (its latest frame)
  std::optional<double> diameter;
  std::optional<std::array<int, 2>> channels;  // Cellpose 3 [seg, nuc]
  std::optional<float> flow_threshold;
  std::optional<float> cellprob_threshold;
  std::optional<int> min_size;
  std::optional<float> max_size_fraction;
  std::optional<int> niter;
  std::optional<double> timeout_s;  // from acceptance to result; none = no limit

  [[nodiscard]] nlohmann::json to_json() const;
  // Parses and validates a "submit" message. Throws Error(invalid_argument)
  // whose message says what was wrong (unknown fields included).
  static SubmitRequest from_json(const nlohmann::json& j);
};

// Blocking framed I/O on a connected stream socket.
// Throws Error(system) on socket errors, Error(producer_gone) when the peer
// closed the connection, Error(invalid_argument) for an oversize or
// non-JSON message.
void send_message(int fd, const nlohmann::json& message);
// Waits up to `timeout` (negative: forever) for one message; nullopt on timeout.
[[nodiscard]] std::optional<nlohmann::json> receive_message(int fd, std::chrono::milliseconds timeout);

// Incremental decoder for a non-blocking reader: feed bytes, take messages.
class MessageDecoder {
 public:
  void feed(const char* data, std::size_t n) { buffer_.append(data, n); }
  // The next complete message, nullopt if more bytes are needed. Throws
  // Error(invalid_argument) for an oversize message or bad JSON (the caller
  // closes the connection after reporting it).
  [[nodiscard]] std::optional<nlohmann::json> next();

 private:
  std::string buffer_;
};

// The frame for `message`: length prefix and JSON bytes.
[[nodiscard]] std::string frame_message(const nlohmann::json& message);

// Where `cpipc serve --name NAME` listens by default:
// $XDG_RUNTIME_DIR/cpipc/NAME.sock, or /tmp/cpipc-<uid>/NAME.sock.
[[nodiscard]] std::string default_socket_path(const std::string& name);

}  // namespace cpipc::service
