// `cpipc serve`: a transport (the poll loop), a scheduler (who runs next,
// which results are promised) and a worker (the model), joined by one mutex
// and one condition variable.
#include "cpipc/service/server.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "cpipc/error.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/registry.hpp"
#include "cpipc/service/scheduler.hpp"
#include "transport.hpp"
#include "worker.hpp"

namespace cpipc::service {

namespace {

// A segment of the stream's name left by a producer that died is removed;
// one whose producer is alive means another `cpipc serve` owns the name.
void claim_stream_name(const std::string& name) {
  (void)ipc::collect_garbage(0.0, {name});
  try {
    const ipc::SegmentStatus s = ipc::SegmentReader::attach(name).status();
    throw Error(Errc::exists, "segment '" + name + "' is published by a live producer (pid " +
                                  std::to_string(s.layout.producer.pid) +
                                  "); stop it, or serve another stream with --name");
  } catch (const Error& e) {
    if (e.code() == Errc::not_found) return;
    if (e.code() == Errc::exists) throw;
    throw Error(Errc::exists, "segment '" + name + "' already exists and cannot be reused (" + e.what() +
                                  "); remove it with 'cpipc rm " + name + "' or serve another stream with --name");
  }
}

}  // namespace

struct Server::Impl final : detail::Transport::Handler {
  ServerOptions options;
  detail::Transport transport;
  detail::Worker worker;

  std::mutex mutex;                 // guards scheduler and stopping
  std::condition_variable changed;  // work queued, a result released or let go, stopping
  Scheduler scheduler;
  bool stopping = false;

  Impl(model::Segmenter segmenter, ServerOptions o)
      : options(std::move(o)),
        transport(options.socket_path, options.max_clients),
        worker(std::move(segmenter), options),
        scheduler(Scheduler::Limits{options.slots, static_cast<std::size_t>(options.max_queue), options.release_wait}) {
  }

  // --- the poll loop's side (Transport::Handler) -----------------------------

  void connected(std::uint64_t connection) override { transport.send(connection, worker.hello()); }

  void received(std::uint64_t connection, ClientMessage message) override {
    if (auto* submit = std::get_if<SubmitRequest>(&message)) {
      accept(connection, std::move(*submit));
    } else if (const auto* cancel = std::get_if<CancelRequest>(&message)) {
      Scheduler::Cancellation c;
      {
        std::lock_guard lock(mutex);
        c = scheduler.cancel(connection, cancel->id);
        changed.notify_all();
      }
      if (c == Scheduler::Cancellation::dequeued) {
        transport.send(connection, error_reply(cancel->id, codes::cancelled, "cancelled by the client"));
      } else if (c == Scheduler::Cancellation::unknown) {
        transport.send(connection,
                       error_reply(cancel->id, codes::bad_request, "no open request \"" + cancel->id + "\" to cancel"));
      }
    } else if (const auto* release = std::get_if<ReleaseRequest>(&message)) {
      std::lock_guard lock(mutex);
      scheduler.release(connection, release->id);
      changed.notify_all();
    } else {
      transport.send(connection, Pong{});
    }
  }

  void disconnected(std::uint64_t connection) override {
    std::lock_guard lock(mutex);
    scheduler.disconnect(connection);
    changed.notify_all();
  }

  void accept(std::uint64_t connection, SubmitRequest r) {
    auto job = std::make_shared<Job>();
    job->connection = connection;
    job->accepted = Clock::now();
    if (r.timeout_s) {
      job->deadline =
          job->accepted + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*r.timeout_s));
    }
    job->request = std::move(r);
    const std::string& id = job->request.id;
    std::uint64_t ahead = 0;
    Scheduler::Admission a;
    {
      std::lock_guard lock(mutex);
      a = scheduler.admit(job, ahead);
      changed.notify_all();
    }
    switch (a) {
      case Scheduler::Admission::accepted:
        transport.send(connection, Accepted{id, ahead});
        break;
      case Scheduler::Admission::duplicate_id:
        transport.send(connection, error_reply(id, codes::bad_request, "id \"" + id + "\" is already in use"));
        break;
      case Scheduler::Admission::queue_full:
        transport.send(connection, error_reply(id, codes::overloaded,
                                               "the queue is full (" + std::to_string(options.max_queue) +
                                                   " requests); try again later"));
        break;
    }
  }

  // --- the worker's side ------------------------------------------------------

  void wait_changed(std::unique_lock<std::mutex>& lock) {
    const Clock::time_point t = scheduler.next_expiry();
    if (t == Clock::time_point::max()) {
      changed.wait(lock);
    } else {
      changed.wait_until(lock, t);
    }
  }

  // Bounded: every promise ends release_wait after its publish, and
  // max_held() keeps one client from filling the ring.
  std::vector<std::uint64_t> wait_for_room(bool replaces, const Job& job) {
    std::unique_lock lock(mutex);
    while (!scheduler.room_for_result(replaces, Clock::now()) && !stopping && !job.is_cancelled()) wait_changed(lock);
    return scheduler.held_frames();
  }

  void work() {
    const detail::Worker::Post post = [this](std::uint64_t c, ProducerMessage m) { transport.post(c, std::move(m)); };
    const detail::Worker::WaitForRoom room = [this](bool replaces, const Job& j) { return wait_for_room(replaces, j); };
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mutex);
        while (!stopping && !(job = scheduler.take_next(Clock::now()))) wait_changed(lock);
        if (stopping) return;
      }
      ProducerMessage answer = worker.run(*job, post, room);
      {
        // Under the lock disconnect() takes: a client gone meanwhile leaves
        // no promise behind, and the id is free before the client hears.
        std::lock_guard lock(mutex);
        if (const auto* result = std::get_if<Result>(&answer)) scheduler.hold(*job, result->frame_id, Clock::now());
        scheduler.finish(*job);
      }
      transport.post(job->connection, std::move(answer));
    }
  }
};

Server::Server(model::Segmenter segmenter, ServerOptions options) {
  if (options.socket_path.empty()) options.socket_path = default_socket_path(options.stream);
  if (options.slots < 2 || options.slots > 8) throw Error(Errc::invalid_argument, "--slots must be 2..8");
  claim_stream_name(options.stream);
  impl_ = std::make_unique<Impl>(std::move(segmenter), std::move(options));
}

Server::~Server() = default;

const std::string& Server::socket_path() const noexcept { return impl_->transport.path(); }

void Server::run() {
  Impl& s = *impl_;
  std::vector<std::shared_ptr<Job>> dropped;
  {
    std::thread work([&s] { s.work(); });
    // Stops and joins the worker on every way out of this block, an
    // exception from the poll loop included: a joinable thread must never
    // reach its destructor (std::terminate).
    struct StopAndJoin {
      Impl& s;
      std::thread& work;
      std::vector<std::shared_ptr<Job>>& dropped;
      ~StopAndJoin() {
        {
          std::lock_guard lock(s.mutex);
          s.stopping = true;
          dropped = s.scheduler.stop();
          s.changed.notify_all();
        }
        work.join();
      }
    } stop_and_join{s, work, dropped};
    s.transport.serve(s, s.options.stop_fd);
  }
  for (const auto& j : dropped) {
    s.transport.send(j->connection, error_reply(j->request.id, codes::shutting_down, "the producer is shutting down"));
  }
  s.transport.close_all(Bye{}, std::chrono::seconds(1));
}

}  // namespace cpipc::service
