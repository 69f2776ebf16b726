// The producer's side of the socket: one poll loop that accepts this user's
// clients, turns their bytes into typed messages and typed replies into
// bytes, and never blocks on a client. It knows nothing about models.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cpipc/service/protocol.hpp"
#include "unix_socket.hpp"

namespace cpipc::service::detail {

class Transport {
 public:
  // What the server does with connections and their messages. Called on the
  // poll loop's thread; an exception from received() costs only that
  // message (answered `internal`), never the loop.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void connected(std::uint64_t connection) = 0;
    virtual void received(std::uint64_t connection, ClientMessage message) = 0;
    virtual void disconnected(std::uint64_t connection) = 0;
  };

  // Binds `path` (detail::listen_on). Throws what it throws.
  Transport(std::string path, int max_clients);
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  // Closes every connection and removes the socket file.
  ~Transport();

  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // Queues a message for a connection (poll-loop thread only).
  void send(std::uint64_t connection, const ProducerMessage& message);
  // Queues a message from any thread and wakes the poll loop.
  void post(std::uint64_t connection, ProducerMessage message);

  // Serves until `stop_fd` is readable.
  void serve(Handler& handler, int stop_fd);
  // Delivers what was posted, sends `last` to everyone, flushes for at most
  // `limit`, and closes every connection.
  void close_all(const ProducerMessage& last, std::chrono::milliseconds limit);

 private:
  struct Connection {
    UniqueFd fd;
    MessageDecoder decoder;
    std::string out;  // framed messages not yet sent
    bool close_after_flush = false;
  };
  void accept_clients(Handler& handler);
  bool read_from(Handler& handler, std::uint64_t id, Connection& c);
  bool write_to(Connection& c);
  void take_posted();
  void drop(Handler& handler, std::uint64_t id);

  std::string path_;
  int max_clients_;
  UniqueFd listen_fd_;
  UniqueFd wake_read_;  // post() writes a byte to wake_write_ to end the poll
  UniqueFd wake_write_;
  std::map<std::uint64_t, Connection> connections_;
  std::uint64_t next_id_ = 1;
  std::mutex posted_mutex_;
  std::vector<std::pair<std::uint64_t, ProducerMessage>> posted_;
};

}  // namespace cpipc::service::detail
