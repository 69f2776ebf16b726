#include "cpipc/service/server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <thread>

#include "cpipc/cuda/device_stream.hpp"
#include "cpipc/cuda/labels.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/frames.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "cpipc/service/protocol.hpp"

namespace cpipc::service {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

json error_message(const std::string& id, const char* code, const std::string& message) {
  json j{{"type", "error"}, {"code", code}, {"message", message}};
  if (!id.empty()) j["id"] = id;
  return j;
}

// The protocol code for a library error met while serving a request.
const char* code_of(const Error& e, bool reading_input) {
  switch (e.code()) {
    case Errc::cancelled:
      return codes::cancelled;
    case Errc::timed_out:
      return codes::timed_out;
    case Errc::out_of_memory:
      return codes::out_of_memory;
    case Errc::invalid_argument:
    case Errc::not_found:
    case Errc::corrupt:
    case Errc::producer_gone:
      return reading_input ? codes::bad_image : codes::bad_params;
    default:
      return reading_input ? codes::bad_image : codes::model_failure;
  }
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

struct Job {
  std::uint64_t connection = 0;
  SubmitRequest request;
  Clock::time_point deadline = Clock::time_point::max();
  std::atomic<bool> cancelled{false};
};

struct Connection {
  int fd = -1;
  MessageDecoder decoder;
  std::string out;             // framed messages not yet sent
  std::set<std::string> open;  // ids submitted and not yet answered
  bool close_after_flush = false;
};

}  // namespace

struct Server::Impl {
  model::Segmenter segmenter;
  ServerOptions options;
  int listen_fd = -1;
  int wake[2] = {-1, -1};  // the worker wakes the poll loop through this pipe

  // A published result its client has not released: kept readable until
  // then, or until `until` (release_wait after publishing), whichever is first.
  struct Held {
    std::uint64_t connection;
    Clock::time_point until;
  };

  // Shared between the poll loop and the worker.
  std::mutex mutex;
  std::condition_variable changed;  // work queued, a result released or let go, stopping
  // Fair queueing: each connection's waiting requests in order, and the
  // connections with waiting requests in the order they are served next.
  std::map<std::uint64_t, std::deque<std::shared_ptr<Job>>> queues;
  std::deque<std::uint64_t> turns;
  std::size_t queued = 0;
  std::shared_ptr<Job> running;
  std::vector<std::pair<std::uint64_t, json>> posted;
  std::map<std::uint64_t, Held> unreleased;                                      // frame id -> holder
  std::map<std::pair<std::uint64_t, std::string>, std::uint64_t> result_frames;  // (connection, id) -> frame id
  bool stopping = false;

  // Poll-loop state.
  std::map<std::uint64_t, Connection> connections;
  std::uint64_t next_connection = 1;

  // Worker-only state: results go to `stream`, or with a CUDA model to
  // `device_stream` (device views through CUDA IPC plus the host mirror).
  ipc::Stream stream;
  std::optional<cuda::DeviceStream> device_stream;

  Impl(model::Segmenter s, ServerOptions o)
      : segmenter(std::move(s)),
        options(std::move(o)),
        stream(options.stream, ipc::SegmentOptions{.slots = options.slots}) {
    const model::Device d = segmenter.model().device();
    if (d.cuda) {
      try {
        device_stream.emplace(options.stream, options.slots, d.index);
      } catch (const Error& e) {
        std::fprintf(stderr, "cpipc serve: no device views (%s); publishing host views only\n", e.what());
      }
    }
  }

  // The stream's current segment, nullptr before the first result.
  const ipc::SegmentWriter* segment() { return device_stream ? device_stream->segment() : stream.segment(); }

  void post(std::uint64_t connection, json message) {
    {
      std::lock_guard lock(mutex);
      posted.emplace_back(connection, std::move(message));
    }
    const char b = 1;
    (void)!::write(wake[1], &b, 1);
  }

  // --- socket ---------------------------------------------------------------

  void bind_socket() {
    const std::string& path = options.socket_path;
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) {
      throw Error(Errc::invalid_argument, "socket path '" + path + "' is too long (at most " +
                                              std::to_string(sizeof addr.sun_path - 1) + " bytes)");
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (!dir.empty() && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir " + dir.string(), errno);

    // A socket file already there: someone listening, or left by a producer that died.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        throw Error(Errc::exists, "'" + path + "' exists and is not a socket; choose another --socket");
      }
      const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const bool live = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
      ::close(probe);
      if (live) throw Error(Errc::exists, "a producer is already serving on '" + path + "'; stop it or use --socket");
      ::unlink(path.c_str());
    }
    listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) throw_errno("socket", errno);
    const mode_t old_mask = ::umask(0077);  // the socket is born 0600
    const int rc = ::bind(listen_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int err = errno;
    ::umask(old_mask);
    if (rc != 0) throw_errno("bind " + path, err);
    if (::listen(listen_fd, 64) != 0) throw_errno("listen", errno);
    set_nonblocking(listen_fd);
  }

  // --- the worker -----------------------------------------------------------

  // What the segmenter can take: [H, W] or [H, W, C], integers up to 32
  // bits or floats. Checked here so that the client hears bad_image.
  static io::Array checked(io::Array a, const std::string& what) {
    const auto& d = a.desc;
    const bool dims = (d.ndim == 2 || (d.ndim == 3 && d.shape[2] <= 64)) && d.numel() > 0;
    const bool type =
        (d.dtype.code == ipc::DTypeCode::float_ && d.dtype.bits <= 64) ||
        ((d.dtype.code == ipc::DTypeCode::uint || d.dtype.code == ipc::DTypeCode::int_) && d.dtype.bits <= 32);
    if (!dims || !type) {
      throw Error(Errc::invalid_argument, what + " is " + d.to_string() +
                                              "; images are [H, W] or [H, W, C] of integers up to 32 bits or floats");
    }
    return a;
  }

  io::Array read_input(const SubmitRequest& r) {
    if (!r.image.empty()) {
      std::vector<io::Array> frames = io::read_frames(r.image);
      if (frames.size() != 1) {
        throw Error(Errc::invalid_argument,
                    "'" + r.image + "' has " + std::to_string(frames.size()) + " pages; submit one page per request");
      }
      return checked(std::move(frames[0]), "'" + r.image + "'");
    }
    const ipc::SegmentReader reader = ipc::SegmentReader::attach(r.input);
    io::Array a;
    a.desc = reader.desc();
    if (!reader.copy_latest(a.data)) {
      throw Error(Errc::invalid_argument, "input segment '" + r.input + "' has no frame yet; publish one first");
    }
    return checked(std::move(a), "input segment '" + r.input + "'");
  }

  model::SegmentOptions options_for(const SubmitRequest& r, Job& job) {
    model::SegmentOptions o = options.defaults;
    if (r.diameter) o.diameter = *r.diameter;
    if (r.channels) o.channels = {model::ChannelSpec::Kind::cellpose3, (*r.channels)[0], (*r.channels)[1]};
    if (r.flow_threshold) o.dynamics.flow_threshold = *r.flow_threshold;
    if (r.cellprob_threshold) o.dynamics.cellprob_threshold = *r.cellprob_threshold;
    if (r.min_size) o.dynamics.min_size = *r.min_size;
    if (r.max_size_fraction) o.dynamics.max_size_fraction = *r.max_size_fraction;
    if (r.niter) o.dynamics.niter = *r.niter;
    o.labels_on_device = device_stream.has_value();
    const std::uint64_t connection = job.connection;
    const std::string id = r.id;
    o.progress = [this, &job, connection, id](const model::Progress& p) {
      check_cancelled(job);
      post(connection, json{{"type", "progress"},
                            {"id", id},
                            {"stage", model::to_string(p.stage)},
                            {"tiles_done", p.tiles_done},
                            {"tiles_total", p.tiles_total}});
    };
    return o;
  }

  void check_cancelled(const Job& job) {
    if (job.cancelled.load()) {
      std::lock_guard lock(mutex);
      throw Error(Errc::cancelled, stopping ? "the producer is shutting down" : "cancelled by the client");
    }
    if (Clock::now() > job.deadline) throw Error(Errc::timed_out, "the request's timeout_s passed");
  }

  // --- scheduling (all with `mutex` held) ------------------------------------

  // Results whose guarantee ran out stop counting; a late read of one fails
  // with "overwritten", never with wrong bytes (the slot's seq moved).
  void let_go_expired(Clock::time_point now) {
    std::erase_if(unreleased, [&](const auto& kv) { return kv.second.until <= now; });
    std::erase_if(result_frames, [&](const auto& kv) { return !unreleased.count(kv.second); });
  }

  [[nodiscard]] Clock::time_point next_expiry() const {
    Clock::time_point t = Clock::time_point::max();
    for (const auto& [frame, held] : unreleased) t = std::min(t, held.until);
    return t;
  }

  void wait_changed(std::unique_lock<std::mutex>& lock) {
    const Clock::time_point t = next_expiry();
    if (t == Clock::time_point::max()) {
      changed.wait(lock);
    } else {
      changed.wait_until(lock, t);
    }
  }

  [[nodiscard]] std::size_t held_by(std::uint64_t connection) const {
    return static_cast<std::size_t>(std::count_if(unreleased.begin(), unreleased.end(),
                                                  [&](const auto& kv) { return kv.second.connection == connection; }));
  }

  // Most results one client may hold unreleased before it gets no more work:
  // a client that does not release only slows itself.
  [[nodiscard]] std::size_t max_held() const { return std::max<std::size_t>(1, options.slots / 2); }

  // Round robin over connections, skipping those at max_held(); nullptr if
  // nothing can run now.
  std::shared_ptr<Job> take_next() {
    for (auto it = turns.begin(); it != turns.end(); ++it) {
      const std::uint64_t cid = *it;
      if (held_by(cid) >= max_held()) continue;
      auto& q = queues[cid];
      std::shared_ptr<Job> job = q.front();
      q.pop_front();
      --queued;
      turns.erase(it);
      if (q.empty()) {
        queues.erase(cid);
      } else {
        turns.push_back(cid);
      }
      return job;
    }
    return nullptr;
  }

  void enqueue(const std::shared_ptr<Job>& job) {
    auto& q = queues[job->connection];
    if (q.empty()) turns.push_back(job->connection);
    q.push_back(job);
    ++queued;
  }

  // Requests served before `job` (just enqueued) if nothing else arrives:
  // the running one, and per round one from each connection in turn order.
  [[nodiscard]] std::size_t ahead_of(const Job& job) const {
    const std::size_t k = queues.at(job.connection).size() - 1;  // rounds before its own
    std::size_t ahead = k + (running ? 1 : 0);
    bool before = true;  // connections ahead of this one in `turns` get one more
    for (const std::uint64_t cid : turns) {
      if (cid == job.connection) {
        before = false;
        continue;
      }
      ahead += std::min(queues.at(cid).size(), k + (before ? 1 : 0));
    }
    return ahead;
  }

  void remove_queued(std::uint64_t cid, const std::function<bool(const Job&)>& which) {
    const auto it = queues.find(cid);
    if (it == queues.end()) return;
    const std::size_t before = it->second.size();
    std::erase_if(it->second, [&](const auto& j) { return which(*j); });
    queued -= before - it->second.size();
    if (it->second.empty()) {
      queues.erase(it);
      std::erase(turns, cid);
    }
  }

  // Waits until publishing a result of `desc` takes no unreleased one, and
  // returns the frames to keep. Bounded: every guarantee ends release_wait
  // after its publish, and max_held() keeps one client from filling the ring.
  std::vector<std::uint64_t> wait_for_room(const ipc::TensorDesc& desc, const Job& job) {
    std::unique_lock lock(mutex);
    for (;;) {
      let_go_expired(Clock::now());
      const ipc::SegmentWriter* w = segment();
      const bool replaces = w == nullptr || !w->desc().same_layout(desc);
      const bool room = replaces ? unreleased.empty() : unreleased.size() + 1 < options.slots;
      if (room || stopping || job.cancelled.load()) break;
      wait_changed(lock);
    }
    std::vector<std::uint64_t> keep;
    for (const auto& [frame, held] : unreleased) keep.push_back(frame);
    return keep;
  }

  // Publishes the masks: from the device straight into the slot's device
  // buffer (and its host mirror) when the labels are on a CUDA device,
  // from the host otherwise.
  ipc::FrameInfo publish(const model::Segmentation& s, const ipc::TensorDesc& desc, const ipc::FrameMeta& meta,
                         std::span<const std::uint64_t> keep) {
    if (device_stream && s.device_labels.defined()) {
      cuda::DeviceFrame frame = device_stream->begin(desc, keep);
      cuda::write_labels(s.device_labels.data_ptr<std::int32_t>(), frame.device_data(),
                         static_cast<std::size_t>(desc.numel()), desc.dtype.bits, frame.stream());
      return frame.publish(meta);
    }
    std::vector<std::byte> bytes(desc.nbytes());
    if (desc.dtype.bits == 16) {
      auto* p = reinterpret_cast<std::uint16_t*>(bytes.data());
      for (std::size_t i = 0; i < s.masks.data.size(); ++i) p[i] = static_cast<std::uint16_t>(s.masks.data[i]);
    } else {
      std::memcpy(bytes.data(), s.masks.data.data(), bytes.size());
    }
    return stream.publish(desc, bytes, meta, keep);
  }

  void serve(Job& job) {
    const SubmitRequest& r = job.request;
    const auto t0 = Clock::now();
    io::Array image;
    try {
      check_cancelled(job);
      image = read_input(r);
    } catch (const Error& e) {
      post(job.connection, error_message(r.id, code_of(e, true), e.what()));
      return;
    }
    model::Segmentation s;
    try {
      s = segmenter.segment(image, options_for(r, job));
    } catch (const Error& e) {
      bool stop = false;
      {
        std::lock_guard lock(mutex);
        stop = stopping;
      }
      const char* code = stop && e.code() == Errc::cancelled ? codes::shutting_down : code_of(e, false);
      post(job.connection, error_message(r.id, code, e.what()));
      return;
    } catch (const std::bad_alloc&) {
      post(job.connection, error_message(r.id, codes::out_of_memory,
                                         "the producer ran out of memory segmenting this image; send a smaller one"));
      return;
    } catch (const std::exception& e) {
      post(job.connection, error_message(r.id, codes::model_failure, e.what()));
      return;
    }

    // uint16 below 65 536 masks, as Cellpose saves them; uint32 from there.
    const std::int64_t shape[2] = {s.masks.height, s.masks.width};
    const bool narrow = s.masks.fits_uint16();
    const ipc::TensorDesc desc = ipc::TensorDesc::contiguous(narrow ? ipc::kUInt16 : ipc::kUInt32, shape);
    const std::vector<std::uint64_t> keep = wait_for_room(desc, job);
    if (job.cancelled.load()) {  // gone or cancelled while it waited: nobody to tell
      post(job.connection, error_message(r.id, codes::cancelled, "cancelled by the client"));
      return;
    }
    const json meta{{"id", r.id}, {"source", r.image.empty() ? "segment:" + r.input : r.image}};
    const ipc::FrameMeta frame_meta{s.masks.count, static_cast<float>(s.diameter), meta.dump()};
    ipc::FrameInfo info;
    try {
      info = publish(s, desc, frame_meta, keep);
    } catch (const Error& e) {
      post(job.connection, error_message(r.id, codes::internal, std::string("publishing failed: ") + e.what()));
      return;
    }
    {
      // Under the lock that drop() takes: a client that went away meanwhile
      // (cancelled set) must not leave a result the worker would wait for.
      std::lock_guard lock(mutex);
      if (!job.cancelled.load()) {
        unreleased[info.frame_id] = Held{job.connection, Clock::now() + options.release_wait};
        result_frames[{job.connection, r.id}] = info.frame_id;
      }
    }
    post(job.connection, json{{"type", "result"},
                              {"id", r.id},
                              {"segment", options.stream},
                              {"device_view", info.device_valid},
                              {"slot", info.slot},
                              {"seq", info.seq},
                              {"frame_id", info.frame_id},
                              {"shape", {s.masks.height, s.masks.width}},
                              {"dtype", ipc::to_string(desc.dtype)},
                              {"objects", s.masks.count},
                              {"diameter", s.diameter},
                              {"tiles", s.tiles},
                              {"timings_s",
                               {{"preprocess", s.timings.preprocess_s},
                                {"network", s.timings.network_s},
                                {"dynamics", s.timings.dynamics_s},
                                {"segment", s.timings.total_s},
                                {"request", std::chrono::duration<double>(Clock::now() - t0).count()}}}});
  }

  void worker() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mutex);
        for (;;) {
          if (stopping) return;
          let_go_expired(Clock::now());
          job = take_next();
          if (job) break;
          wait_changed(lock);
        }
        running = job;
      }
      try {
        serve(*job);
      } catch (const std::exception& e) {  // e.g. bad_alloc: this request fails, the producer goes on
        post(job->connection, error_message(job->request.id, codes::internal, e.what()));
      }
      std::lock_guard lock(mutex);
      running.reset();
    }
  }

  // --- the poll loop ----------------------------------------------------------

  void send_now(std::uint64_t id, const json& message) {
    auto it = connections.find(id);
    if (it == connections.end()) return;
    it->second.out += frame_message(message);
  }

  void release_frame(std::uint64_t connection, const std::string& id) {
    std::lock_guard lock(mutex);
    const auto it = result_frames.find({connection, id});
    if (it == result_frames.end()) return;
    unreleased.erase(it->second);
    result_frames.erase(it);
    changed.notify_all();
  }

  void handle(std::uint64_t cid, Connection& c, const json& m) {
    const std::string type = m.contains("type") && m["type"].is_string() ? m["type"].get<std::string>() : "";
    const std::string id = m.contains("id") && m["id"].is_string() ? m["id"].get<std::string>() : "";
    if (type == "submit") {
      SubmitRequest r;
      try {
        r = SubmitRequest::from_json(m);
      } catch (const Error& e) {
        send_now(cid, error_message(id, codes::bad_request, e.what()));
        return;
      }
      if (c.open.count(r.id)) {
        send_now(cid, error_message(r.id, codes::bad_request, "id \"" + r.id + "\" is already in use"));
        return;
      }
      auto job = std::make_shared<Job>();
      job->connection = cid;
      if (r.timeout_s) {
        job->deadline =
            Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*r.timeout_s));
      }
      job->request = std::move(r);
      std::size_t ahead = 0;
      {
        std::lock_guard lock(mutex);
        if (queued >= static_cast<std::size_t>(options.max_queue)) {
          send_now(cid, error_message(job->request.id, codes::overloaded,
                                      "the queue is full (" + std::to_string(options.max_queue) + " requests)"));
          return;
        }
        enqueue(job);
        ahead = ahead_of(*job);
        changed.notify_all();
      }
      c.open.insert(job->request.id);
      send_now(cid, json{{"type", "accepted"}, {"id", job->request.id}, {"ahead", ahead}});
    } else if (type == "cancel") {
      std::lock_guard lock(mutex);
      const std::size_t before = queued;
      remove_queued(cid, [&](const Job& j) { return j.request.id == id; });
      if (queued < before) {
        c.open.erase(id);
        c.out += frame_message(error_message(id, codes::cancelled, "cancelled by the client"));
        return;
      }
      if (running && running->connection == cid && running->request.id == id) {
        running->cancelled = true;
        changed.notify_all();
      } else {
        c.out += frame_message(error_message(id, codes::bad_request, "no open request \"" + id + "\" to cancel"));
      }
    } else if (type == "release") {
      release_frame(cid, id);
    } else if (type == "ping") {
      send_now(cid, json{{"type", "pong"}});
    } else {
      send_now(cid,
               error_message(id, codes::bad_request,
                             type.empty() ? "a message needs a \"type\"" : "unknown message type \"" + type + "\""));
    }
  }

  // The client is gone: its queued and running work is dropped, its results released.
  void drop(std::uint64_t cid) {
    auto it = connections.find(cid);
    if (it == connections.end()) return;
    ::close(it->second.fd);
    connections.erase(it);
    std::lock_guard lock(mutex);
    remove_queued(cid, [](const Job&) { return true; });
    if (running && running->connection == cid) running->cancelled = true;
    std::erase_if(unreleased, [&](const auto& kv) { return kv.second.connection == cid; });
    std::erase_if(result_frames, [&](const auto& kv) { return kv.first.first == cid; });
    changed.notify_all();
  }

  void accept_clients() {
    for (;;) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      if (static_cast<int>(connections.size()) >= options.max_clients) {
        const std::string msg = frame_message(
            error_message("", codes::overloaded, "too many clients (" + std::to_string(options.max_clients) + ")"));
        (void)!::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL);
        ::close(fd);
        continue;
      }
      const std::uint64_t cid = next_connection++;
      connections[cid].fd = fd;
      const auto& info = segmenter.model().info();
      send_now(cid, json{{"type", "hello"},
                         {"version", kProtocolVersion},
                         {"stream", options.stream},
                         {"model", segmenter.model().source()},
                         {"architecture", info.architecture},
                         {"device", segmenter.model().device().to_string()},
                         {"device_views", device_stream.has_value()},
                         {"pid", ::getpid()}});
    }
  }

  // Reads what a client sent; false if the connection is to be dropped.
  bool read_from(std::uint64_t cid, Connection& c) {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.decoder.feed(buf, static_cast<std::size_t>(n));
      for (;;) {
        std::optional<json> m;
        try {
          m = c.decoder.next();
        } catch (const Error& e) {
          // Framing is lost after an oversize length: say why, then hang up.
          const bool oversize = std::string(e.what()).find("over the") != std::string::npos;
          send_now(cid, error_message("", codes::bad_request, e.what()));
          if (oversize) {
            c.close_after_flush = true;
            return true;
          }
          continue;
        }
        if (!m) break;
        handle(cid, c, *m);
      }
    }
  }

  bool write_to(Connection& c) {
    while (!c.out.empty()) {
      const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.out.erase(0, static_cast<std::size_t>(n));
    }
    return !c.close_after_flush;
  }

  void take_posted() {
    char drain[256];
    while (::read(wake[0], drain, sizeof drain) > 0) {
    }
    std::vector<std::pair<std::uint64_t, json>> batch;
    {
      std::lock_guard lock(mutex);
      batch.swap(posted);
    }
    for (auto& [cid, m] : batch) {
      auto it = connections.find(cid);
      if (it == connections.end()) continue;
      const std::string type = m["type"];
      if ((type == "result" || type == "error") && m.contains("id")) it->second.open.erase(m["id"].get<std::string>());
      it->second.out += frame_message(m);
    }
  }

  void run() {
    std::thread work([this] { worker(); });
    bool stop = false;
    while (!stop) {
      std::vector<pollfd> fds{{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}, {options.stop_fd, POLLIN, 0}};
      std::vector<std::uint64_t> ids;
      for (auto& [cid, c] : connections) {
        fds.push_back({c.fd, static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
        ids.push_back(cid);
      }
      if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) throw_errno("poll", errno);
      if (fds[2].revents & POLLIN) stop = true;
      if (fds[1].revents & POLLIN) take_posted();
      if (fds[0].revents & POLLIN) accept_clients();
      for (std::size_t i = 0; i < ids.size(); ++i) {
        auto it = connections.find(ids[i]);
        if (it == connections.end()) continue;
        const short ev = fds[3 + i].revents;
        bool keep = true;
        if (ev & POLLIN) keep = read_from(ids[i], it->second);
        if (keep && (ev & (POLLHUP | POLLERR)) && !(ev & POLLIN)) keep = false;
        if (keep && (ev & POLLOUT || !it->second.out.empty())) keep = write_to(it->second);
        if (keep && it->second.out.size() > (64u << 20)) keep = false;  // a client that never reads
        if (!keep) drop(ids[i]);
      }
    }
    shutdown(work);
  }

  void shutdown(std::thread& work) {
    std::vector<std::shared_ptr<Job>> dropped;
    {
      std::lock_guard lock(mutex);
      stopping = true;
      for (const std::uint64_t cid : turns) {
        for (const auto& j : queues[cid]) dropped.push_back(j);
      }
      queues.clear();
      turns.clear();
      queued = 0;
      if (running) running->cancelled = true;
      changed.notify_all();
    }
    work.join();
    take_posted();
    for (const auto& j : dropped) {
      send_now(j->connection, error_message(j->request.id, codes::shutting_down, "the producer is shutting down"));
    }
    for (auto& [cid, c] : connections) send_now(cid, json{{"type", "bye"}});
    // Flush for up to a second; clients that do not read lose the rest.
    const auto limit = Clock::now() + std::chrono::seconds(1);
    for (auto& [cid, c] : connections) {
      ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{0, 200000};
      ::setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      while (!c.out.empty() && Clock::now() < limit) {
        const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n <= 0) break;
        c.out.erase(0, static_cast<std::size_t>(n));
      }
      ::close(c.fd);
    }
    connections.clear();
  }
};

Server::Server(model::Segmenter segmenter, ServerOptions options) {
  if (options.socket_path.empty()) options.socket_path = default_socket_path(options.stream);
  if (options.slots < 2 || options.slots > 8) throw Error(Errc::invalid_argument, "--slots must be 2..8");
  impl_ = std::make_unique<Impl>(std::move(segmenter), std::move(options));
  if (::pipe2(impl_->wake, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe2", errno);
  impl_->bind_socket();
}

Server::~Server() {
  if (!impl_) return;
  if (impl_->listen_fd >= 0) {
    ::close(impl_->listen_fd);
    ::unlink(impl_->options.socket_path.c_str());
  }
  for (int fd : impl_->wake) {
    if (fd >= 0) ::close(fd);
  }
}

const std::string& Server::socket_path() const noexcept { return impl_->options.socket_path; }

void Server::run() { impl_->run(); }

}  // namespace cpipc::service
