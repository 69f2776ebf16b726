// The producer's bookkeeping, without sockets, threads or a model: which
// request runs next (round robin across connections), which results are
// promised to their clients, and when the ring has room for another one.
// Not thread-safe: the server calls it under its one mutex. Pure, so the
// fairness and flow-control rules are unit-tested on their own.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cpipc/service/protocol.hpp"

namespace cpipc::service {

using Clock = std::chrono::steady_clock;

// Why a request stopped early; read by the worker between tile batches.
enum class CancelReason : int { none = 0, client, disconnected, shutdown };

// One accepted request.
struct Job {
  std::uint64_t connection = 0;
  SubmitRequest request;
  Clock::time_point accepted{};
  Clock::time_point deadline = Clock::time_point::max();
  std::atomic<CancelReason> cancelled{CancelReason::none};

  [[nodiscard]] bool is_cancelled() const noexcept { return cancelled.load() != CancelReason::none; }
};

class Scheduler {
 public:
  struct Limits {
    std::uint32_t slots = 8;      // ring slots of the result segment
    std::size_t max_queue = 256;  // queued requests beyond this are refused
    std::chrono::milliseconds release_wait{5000};
  };
  explicit Scheduler(Limits limits) : limits_(limits) {}

  enum class Admission { accepted, duplicate_id, queue_full };
  // Queues `job` behind its connection's others. On `accepted`, `ahead` is
  // the number of requests served before it if no other arrives.
  Admission admit(const std::shared_ptr<Job>& job, std::uint64_t& ahead);

  // The next request to run, round robin over connections, skipping those
  // holding max_held() unreleased results; nullptr if none can run now.
  // Lets go of expired promises first.
  [[nodiscard]] std::shared_ptr<Job> take_next(Clock::time_point now);
  [[nodiscard]] const std::shared_ptr<Job>& running() const noexcept { return running_; }
  // The running request has its final answer: its id is free again.
  void finish(const Job& job);

  enum class Cancellation { dequeued, running, unknown };
  // A queued request is removed (answer it); a running one is marked.
  Cancellation cancel(std::uint64_t connection, const std::string& id);
  // The connection is gone: its queue is dropped, its running request
  // marked, its results let go.
  void disconnect(std::uint64_t connection);
  // Stops everything: the running request is marked, and the queued ones
  // are returned (to be answered shutting_down).
  [[nodiscard]] std::vector<std::shared_ptr<Job>> stop();

  // Promises the frame `frame_id` to `job`'s client until it releases it,
  // goes, or release_wait passes. Nothing is held for a cancelled job.
  void hold(const Job& job, std::uint64_t frame_id, Clock::time_point now);
  void release(std::uint64_t connection, const std::string& id);
  // True when one more result can be published without overwriting a
  // promised one: any free slot, or none promised when the segment must be
  // re-created (`replaces`). Lets go of expired promises first.
  [[nodiscard]] bool room_for_result(bool replaces, Clock::time_point now);
  // The promised frames, for SegmentWriter::begin_frame's `keep`.
  [[nodiscard]] std::vector<std::uint64_t> held_frames() const;
  // When the earliest promise runs out (max() if none).
  [[nodiscard]] Clock::time_point next_expiry() const;

  [[nodiscard]] std::size_t queued() const noexcept { return queued_; }
  [[nodiscard]] std::size_t held_by(std::uint64_t connection) const;
  // Most results one client may hold before it gets no more work.
  [[nodiscard]] std::size_t max_held() const noexcept { return std::max<std::size_t>(1, limits_.slots / 2); }

 private:
  struct Held {
    std::uint64_t connection;
    Clock::time_point until;
  };
  void let_go_expired(Clock::time_point now);
  [[nodiscard]] std::uint64_t ahead_of(const Job& job) const;
  void remove_queued(std::uint64_t connection, const std::string* id);

  Limits limits_;
  std::map<std::uint64_t, std::deque<std::shared_ptr<Job>>> queues_;  // per connection, in order
  std::deque<std::uint64_t> turns_;  // connections with queued work, in the order they are served
  std::size_t queued_ = 0;
  std::shared_ptr<Job> running_;
  std::set<std::pair<std::uint64_t, std::string>> open_;                   // (connection, id) not yet answered
  std::map<std::uint64_t, Held> held_;                                     // frame id -> holder
  std::map<std::pair<std::uint64_t, std::string>, std::uint64_t> frames_;  // (connection, id) -> frame id
};

}  // namespace cpipc::service
