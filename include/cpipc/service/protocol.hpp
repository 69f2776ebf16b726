// The wire protocol between `cpipc serve` and its clients (docs/PROTOCOL.md):
// a Unix stream socket carrying messages, each a 4-byte little-endian length
// followed by that many bytes of one UTF-8 JSON object. Every message has a
// typed struct here with one encoder and one decoder; nothing else in the
// tree spells the wire's keys.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "cpipc/error.hpp"

namespace cpipc::service {

// 2: timings_s says "total" (was "segment"), error codes gained "forbidden".
// 4: submit takes normalize, norm_percentile, invert, exclude_on_edges, resample
//    and augment.
// 5: submit takes do_3d, stitch_threshold, anisotropy and flow3d_smooth (3-D).
inline constexpr int kProtocolVersion = 5;
// A message larger than this is refused and the connection closed: a length
// prefix cannot be trusted past a bad message.
inline constexpr std::uint32_t kMaxMessageBytes = 1u << 20;
// Longest request id; ids are echoed in replies, so this bounds every reply.
inline constexpr std::size_t kMaxIdBytes = 128;

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
inline constexpr const char* forbidden = "forbidden";          // the peer is another user
inline constexpr const char* internal = "internal";            // a bug: please report
}  // namespace codes

// --- client -> producer ------------------------------------------------------

// A segmentation request.
struct SubmitRequest {
  std::string id;     // chosen by the client, unique among its open requests
  std::string image;  // a file path readable by the producer, or
  std::string input;  // the name of a segment the client published (its latest frame)
  std::optional<double> diameter;
  std::optional<std::array<int, 2>> channels;  // Cellpose 3 [seg, nuc]
  std::optional<int> channel_axis;             // axes of `image` as stored (Cellpose's channel_axis / z_axis)
  std::optional<int> z_axis;
  std::optional<float> flow_threshold;
  std::optional<float> cellprob_threshold;
  std::optional<int> min_size;
  std::optional<float> max_size_fraction;
  std::optional<int> niter;
  std::optional<bool> normalize;                        // false: the image as it is (Cellpose's normalize=False)
  std::optional<std::array<float, 2>> norm_percentile;  // [low, high] instead of [1, 99]
  std::optional<bool> invert;
  std::optional<bool> exclude_on_edges;  // drop masks touching the border
  std::optional<bool> resample;          // false: dynamics at the rescaled size (Cellpose's resample)
  std::optional<bool> augment;           // Cellpose's test-time augmentation of the tiles
  // A z-stack in 3-D (Cellpose's do_3D), or its planes stitched by IoU.
  std::optional<bool> do_3d;
  std::optional<float> stitch_threshold;               // (0, 1]; excludes do_3d
  std::optional<double> anisotropy;                    // Z spacing / XY spacing, with do_3d
  std::optional<std::array<double, 3>> flow3d_smooth;  // Gaussian sigma (Z, Y, X) of the 3-D flows
  std::optional<double> timeout_s;                     // from acceptance to result; none = no limit

  [[nodiscard]] nlohmann::json to_json() const;
  // Parses and validates a "submit" message. Throws BadMessage whose message
  // says what was wrong (unknown fields included).
  static SubmitRequest from_json(const nlohmann::json& j);
};
struct CancelRequest {
  std::string id;
};
struct ReleaseRequest {
  std::string id;
};
struct Ping {};
using ClientMessage = std::variant<SubmitRequest, CancelRequest, ReleaseRequest, Ping>;

// A client message the producer cannot take: answered with a bad_request
// error carrying `id` (empty when the message had no usable one).
class BadMessage : public Error {
 public:
  BadMessage(const std::string& message, std::string id) : Error(Errc::invalid_argument, message), id_(std::move(id)) {}
  [[nodiscard]] const std::string& id() const noexcept { return id_; }

 private:
  std::string id_;
};

// Decodes one client message. Throws BadMessage.
[[nodiscard]] ClientMessage decode_client_message(const nlohmann::json& j);
[[nodiscard]] nlohmann::json to_json(const ClientMessage& m);

// --- producer -> client ------------------------------------------------------

// Seconds spent per stage; the one spelling of these keys (cpipc segment
// --json writes the same object).
struct Timings {
  double preprocess_s = 0.0;
  double network_s = 0.0;
  double dynamics_s = 0.0;
  double total_s = 0.0;  // the segmentation, image in memory to masks
};
[[nodiscard]] nlohmann::json to_json(const Timings& t);

struct Hello {
  int version = kProtocolVersion;
  std::string stream;  // the result segment's name
  std::string model;
  std::string architecture;
  std::string device;
  bool device_views = false;
  std::int64_t pid = 0;
};
struct Accepted {
  std::string id;
  std::uint64_t ahead = 0;
};
struct ProgressEvent {
  std::string id;
  std::string stage;
  int tiles_done = 0;
  int tiles_total = 0;
};
struct Result {
  std::string id;
  std::string segment;
  bool device_view = false;
  std::uint32_t slot = 0;
  std::uint64_t seq = 0;
  std::uint64_t frame_id = 0;
  std::vector<std::int64_t> shape;  // [H, W], or [Z, H, W] for a z-stack
  std::string axes;                 // "YX" or "ZYX"
  std::string dtype;                // uint16, or uint32 from 65 536 masks
  std::uint32_t objects = 0;
  double diameter = 0.0;            // px, used
  bool diameter_estimated = false;  // by the model's size model (a request without a diameter, or 0)
  int tiles = 0;
  Timings timings;
  double request_s = 0.0;  // from the worker taking the request to its result
};
struct ErrorReply {
  std::string code;
  std::string message;
  std::string id;  // empty when it concerns no request
};
struct Pong {};
struct Bye {};
using ProducerMessage = std::variant<Hello, Accepted, ProgressEvent, Result, ErrorReply, Pong, Bye>;

// An error reply whose echoed id and message are cut to sizes that always
// fit a frame, whatever a client sent.
[[nodiscard]] ErrorReply error_reply(std::string id, const char* code, std::string message);

[[nodiscard]] nlohmann::json to_json(const ProducerMessage& m);
// Decodes one producer message. Throws Error(invalid_argument) naming the
// field that is missing or of the wrong type.
[[nodiscard]] ProducerMessage decode_producer_message(const nlohmann::json& j);

// The JSON a result's frame carries in its slot (`cpipc watch` shows it):
// {"id", "source", "diameter_estimated"} and, when given, "axes" ("YX",
// "ZYX": what `cpipc save` writes a TIFF as), at most `max_bytes` bytes.
// When they do not fit, the source keeps its end and the id its start, and
// "elided": true says so: a long path never costs a finished segmentation.
[[nodiscard]] std::string frame_meta_json(const std::string& id, const std::string& source, std::size_t max_bytes,
                                          bool diameter_estimated = false, const std::string& axes = {});

// --- framing -----------------------------------------------------------------

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
  // BadMessage for bad JSON or a non-object (the message is consumed: the
  // stream stays usable) and FramingLost for an oversize length (it is not).
  [[nodiscard]] std::optional<nlohmann::json> next();

 private:
  std::string buffer_;
};

// After an oversize length prefix nothing that follows can be trusted.
class FramingLost : public Error {
 public:
  using Error::Error;
};

// The frame for `message`: length prefix and JSON bytes. Throws
// Error(invalid_argument) past kMaxMessageBytes.
[[nodiscard]] std::string frame_message(const nlohmann::json& message);

// Where `cpipc serve --name NAME` listens by default:
// $XDG_RUNTIME_DIR/cpipc/NAME.sock, or /tmp/cpipc-<uid>/NAME.sock.
[[nodiscard]] std::string default_socket_path(const std::string& name);

}  // namespace cpipc::service
