#include "transport.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace cpipc::service::detail {

namespace {
// A client that does not read loses its connection past this much unsent.
constexpr std::size_t kMaxUnsentBytes = 64u << 20;
}  // namespace

Transport::Transport(std::string path, int max_clients)
    : path_(std::move(path)), max_clients_(max_clients), listen_fd_(listen_on(path_, 64)) {
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe2", errno);
  wake_read_ = UniqueFd(wake[0]);
  wake_write_ = UniqueFd(wake[1]);
}

Transport::~Transport() {
  connections_.clear();
  if (listen_fd_.get() >= 0) {
    listen_fd_.reset();
    ::unlink(path_.c_str());
  }
}

void Transport::send(std::uint64_t connection, const ProducerMessage& message) {
  const auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  it->second.out += frame_message(to_json(message));
}

void Transport::post(std::uint64_t connection, ProducerMessage message) {
  {
    std::lock_guard lock(posted_mutex_);
    posted_.emplace_back(connection, std::move(message));
  }
  const char b = 1;
  (void)!::write(wake_write_.get(), &b, 1);
}

void Transport::take_posted() {
  char drain[256];
  while (::read(wake_read_.get(), drain, sizeof drain) > 0) {
  }
  std::vector<std::pair<std::uint64_t, ProducerMessage>> batch;
  {
    std::lock_guard lock(posted_mutex_);
    batch.swap(posted_);
  }
  for (const auto& [connection, message] : batch) send(connection, message);
}

void Transport::accept_clients(Handler& handler) {
  for (;;) {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd.get() < 0) return;
    const auto refuse = [&](const char* code, const std::string& why) {
      const std::string msg = frame_message(to_json(error_reply("", code, why)));
      (void)!::send(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL);
    };
    // The socket's mode keeps other users out; this holds even if the mode
    // or the directory was loosened.
    uid_t uid = 0;
    try {
      uid = peer_uid(fd.get());
    } catch (const Error&) {
      continue;  // a peer whose credentials cannot be read is not served (closed here)
    }
    if (uid != ::geteuid()) {
      refuse(codes::forbidden, "this producer serves only uid " + std::to_string(::geteuid()) + ", not uid " +
                                   std::to_string(uid) + "; start your own with 'cpipc serve'");
      continue;
    }
    if (static_cast<int>(connections_.size()) >= max_clients_) {
      refuse(codes::overloaded, "too many clients (" + std::to_string(max_clients_) + ")");
      continue;
    }
    const std::uint64_t id = next_id_++;
    connections_[id].fd = std::move(fd);
    handler.connected(id);
  }
}

// Reads what a client sent; false if the connection is to be dropped.
bool Transport::read_from(Handler& handler, std::uint64_t id, Connection& c) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.decoder.feed(buf, static_cast<std::size_t>(n));
    for (;;) {
      ClientMessage message;
      try {
        std::optional<nlohmann::json> m = c.decoder.next();
        if (!m) break;
        message = decode_client_message(*m);
      } catch (const FramingLost& e) {
        // Framing is lost after an oversize length: say why, then hang up.
        send(id, error_reply("", codes::bad_request, e.what()));
        c.close_after_flush = true;
        return true;
      } catch (const BadMessage& e) {
        send(id, error_reply(e.id(), codes::bad_request, e.what()));
        continue;
      }
      try {
        handler.received(id, std::move(message));
      } catch (const std::exception& e) {
        send(id, error_reply("", codes::internal, std::string("handling a message failed: ") + e.what()));
      }
    }
  }
}

bool Transport::write_to(Connection& c) {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.out.erase(0, static_cast<std::size_t>(n));
  }
  return !c.close_after_flush;
}

void Transport::drop(Handler& handler, std::uint64_t id) {
  if (connections_.erase(id)) handler.disconnected(id);
}

void Transport::serve(Handler& handler, int stop_fd) {
  for (;;) {
    std::vector<pollfd> fds{{listen_fd_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}, {stop_fd, POLLIN, 0}};
    std::vector<std::uint64_t> ids;
    for (auto& [id, c] : connections_) {
      fds.push_back({c.fd.get(), static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
      ids.push_back(id);
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) throw_errno("poll", errno);
    if (fds[2].revents & POLLIN) return;
    if (fds[1].revents & POLLIN) take_posted();
    if (fds[0].revents & POLLIN) accept_clients(handler);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      auto it = connections_.find(ids[i]);
      if (it == connections_.end()) continue;
      const short ev = fds[3 + i].revents;
      bool keep = true;
      if (ev & POLLIN) keep = read_from(handler, ids[i], it->second);
      if (keep && (ev & (POLLHUP | POLLERR)) && !(ev & POLLIN)) keep = false;
      if (keep && (ev & POLLOUT || !it->second.out.empty())) keep = write_to(it->second);
      if (keep && it->second.out.size() > kMaxUnsentBytes) keep = false;
      if (!keep) drop(handler, ids[i]);
    }
  }
}

void Transport::close_all(const ProducerMessage& last, std::chrono::milliseconds limit) {
  take_posted();
  for (auto& [id, c] : connections_) send(id, last);
  const auto end = std::chrono::steady_clock::now() + limit;
  for (auto& [id, c] : connections_) {
    ::fcntl(c.fd.get(), F_SETFL, ::fcntl(c.fd.get(), F_GETFL) & ~O_NONBLOCK);
    timeval tv{0, 200000};
    ::setsockopt(c.fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    while (!c.out.empty() && std::chrono::steady_clock::now() < end) {
      const ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      c.out.erase(0, static_cast<std::size_t>(n));
    }
  }
  connections_.clear();
}

}  // namespace cpipc::service::detail
