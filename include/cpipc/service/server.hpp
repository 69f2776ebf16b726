// `cpipc serve`: one loaded model, many clients. Clients connect to a Unix
// socket (mode 0600) and submit images (a path, or a segment they published);
// results are published into the stream's segment ring and the client is
// told the segment, slot and sequence to read them from (docs/PROTOCOL.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "cpipc/model/segmenter.hpp"

namespace cpipc::service {

struct ServerOptions {
  std::string socket_path;       // empty: default_socket_path(stream)
  std::string stream = "cpipc";  // the result segment's name
  std::uint32_t slots = 8;       // ring slots of the result segment
  int max_clients = 64;          // more connections are refused (overloaded)
  int max_queue = 256;           // more queued requests are refused (overloaded)
  // A result stays readable until its client releases it, goes, or this
  // long after it was published, whichever is first. A client holding
  // slots / 2 unreleased results gets no more work until it releases one,
  // so a slow client slows only itself.
  std::chrono::milliseconds release_wait{5000};
  model::SegmentOptions defaults;  // parameters a request does not set
  int stop_fd = -1;                // readable (e.g. a signalfd) = stop serving
};

class Server {
 public:
  // Binds the socket (refusing a path where a producer already listens;
  // replacing a stale one). Throws Error(exists), Error(system).
  Server(model::Segmenter segmenter, ServerOptions options);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Removes the socket and unlinks every segment.
  ~Server();

  [[nodiscard]] const std::string& socket_path() const noexcept;

  // Serves until stop_fd becomes readable: then cancels queued and running
  // requests (clients get shutting_down), flushes what it can, and returns.
  void run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cpipc::service
