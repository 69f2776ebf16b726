// The client side of `cpipc serve` (docs/PROTOCOL.md): connect, submit,
// follow progress, read the masks from the producer's segment. Used by
// `cpipc submit` and the tests; needs no LibTorch.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "cpipc/error.hpp"
#include "cpipc/io/array.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/service/protocol.hpp"

namespace cpipc::service {

// What a finished request gave: the producer's result message and the masks,
// copied out of the result segment.
struct SegmentResult {
  Result result;
  io::Array masks;  // uint16 or uint32 [H, W] (or [Z, H, W] for a z-stack)
};

class Client {
 public:
  // Connects and reads the producer's hello. Throws Error(not_found) when
  // nothing listens at `socket_path`; Error(invalid_argument) when the
  // socket's directory is not private, or the socket or the process
  // answering on it is another user's (it could be posing as a producer);
  // Error(system) otherwise.
  static Client connect(const std::string& socket_path, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  Client(Client&& other) noexcept = default;
  Client& operator=(Client&& other) noexcept = default;
  Client(const Client&) = delete;
  ~Client() = default;

  [[nodiscard]] const Hello& hello() const noexcept { return hello_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  void submit(const SubmitRequest& request);
  void cancel(const std::string& id);
  // Tells the producer the result of `id` was read, so its slot can be reused.
  void release(const std::string& id);
  // The next message from the producer, as it came; nullopt after `timeout`. Throws
  // Error(producer_gone) when the producer closed the connection (or died).
  [[nodiscard]] std::optional<nlohmann::json> next(std::chrono::milliseconds timeout);

  // Copies the masks a result message names out of the result segment.
  // Throws Error(producer_gone) if the frame was overwritten before it was read.
  [[nodiscard]] io::Array read_masks(const Result& result);
  // The same into `out`, exactly masks_desc(result).nbytes() bytes (Python
  // copies into numpy's memory, not zero-filled first).
  void read_masks(const Result& result, std::span<std::byte> out);
  // The tensor a result message describes. Throws Error(invalid_argument)
  // for a dtype or shape no segment holds.
  [[nodiscard]] static ipc::TensorDesc masks_desc(const Result& result);

  // Submits, waits for the request's result (calling on_event for each
  // message about it), reads the masks and releases them. A producer error
  // is thrown as Error with the code mapped from the protocol's, its message
  // prefixed by the protocol code.
  [[nodiscard]] SegmentResult segment(const SubmitRequest& request,
                                      const std::function<void(const nlohmann::json&)>& on_event = {},
                                      std::chrono::milliseconds timeout = std::chrono::hours(24));

 private:
  Client() = default;
  ipc::detail::UniqueFd fd_;
  Hello hello_;
  std::map<std::string, std::unique_ptr<ipc::SegmentReader>> readers_;
};

// The library error a protocol error code stands for (for exit statuses).
[[nodiscard]] Errc errc_of_code(const std::string& code) noexcept;

}  // namespace cpipc::service
