#include "cpipc/service/scheduler.hpp"

#include <algorithm>

namespace cpipc::service {

Scheduler::Admission Scheduler::admit(const std::shared_ptr<Job>& job, std::uint64_t& ahead) {
  if (open_.count({job->connection, job->request.id})) return Admission::duplicate_id;
  if (queued_ >= limits_.max_queue) return Admission::queue_full;
  auto& q = queues_[job->connection];
  if (q.empty()) turns_.push_back(job->connection);
  q.push_back(job);
  ++queued_;
  open_.insert({job->connection, job->request.id});
  ahead = ahead_of(*job);
  return Admission::accepted;
}

// The running one, and per round one from each connection in turn order:
// connections ahead of this one in `turns_` get one more round.
std::uint64_t Scheduler::ahead_of(const Job& job) const {
  const std::size_t rounds = queues_.at(job.connection).size() - 1;
  std::uint64_t ahead = rounds + (running_ ? 1 : 0);
  bool before = true;
  for (const std::uint64_t cid : turns_) {
    if (cid == job.connection) {
      before = false;
      continue;
    }
    ahead += std::min(queues_.at(cid).size(), rounds + (before ? 1 : 0));
  }
  return ahead;
}

std::shared_ptr<Job> Scheduler::take_next(Clock::time_point now) {
  let_go_expired(now);
  for (auto it = turns_.begin(); it != turns_.end(); ++it) {
    const std::uint64_t cid = *it;
    if (held_by(cid) >= max_held()) continue;
    auto& q = queues_[cid];
    std::shared_ptr<Job> job = q.front();
    q.pop_front();
    --queued_;
    turns_.erase(it);
    if (q.empty()) {
      queues_.erase(cid);
    } else {
      turns_.push_back(cid);
    }
    running_ = job;
    return job;
  }
  return nullptr;
}

void Scheduler::finish(const Job& job) {
  open_.erase({job.connection, job.request.id});
  if (running_.get() == &job) running_.reset();
}

void Scheduler::remove_queued(std::uint64_t connection, const std::string* id) {
  const auto it = queues_.find(connection);
  if (it == queues_.end()) return;
  const std::size_t before = it->second.size();
  std::erase_if(it->second, [&](const auto& j) {
    const bool match = id == nullptr || j->request.id == *id;
    if (match) open_.erase({connection, j->request.id});
    return match;
  });
  queued_ -= before - it->second.size();
  if (it->second.empty()) {
    queues_.erase(it);
    std::erase(turns_, connection);
  }
}

Scheduler::Cancellation Scheduler::cancel(std::uint64_t connection, const std::string& id) {
  const std::size_t before = queued_;
  remove_queued(connection, &id);
  if (queued_ < before) return Cancellation::dequeued;
  if (running_ && running_->connection == connection && running_->request.id == id) {
    running_->cancelled = CancelReason::client;
    return Cancellation::running;
  }
  return Cancellation::unknown;
}

void Scheduler::disconnect(std::uint64_t connection) {
  remove_queued(connection, nullptr);
  if (running_ && running_->connection == connection) running_->cancelled = CancelReason::disconnected;
  std::erase_if(open_, [&](const auto& k) { return k.first == connection; });
  std::erase_if(held_, [&](const auto& kv) { return kv.second.connection == connection; });
  std::erase_if(frames_, [&](const auto& kv) { return kv.first.first == connection; });
}

std::vector<std::shared_ptr<Job>> Scheduler::stop() {
  std::vector<std::shared_ptr<Job>> dropped;
  for (const std::uint64_t cid : turns_) {
    for (const auto& j : queues_[cid]) dropped.push_back(j);
  }
  queues_.clear();
  turns_.clear();
  queued_ = 0;
  if (running_) running_->cancelled = CancelReason::shutdown;
  return dropped;
}

void Scheduler::hold(const Job& job, std::uint64_t frame_id, Clock::time_point now) {
  if (job.is_cancelled()) return;  // nobody will release it
  held_[frame_id] = Held{job.connection, now + limits_.release_wait};
  frames_[{job.connection, job.request.id}] = frame_id;
}

void Scheduler::release(std::uint64_t connection, const std::string& id) {
  const auto it = frames_.find({connection, id});
  if (it == frames_.end()) return;
  held_.erase(it->second);
  frames_.erase(it);
}

// A result whose guarantee ran out stops counting; a late read of it fails
// with "overwritten", never with wrong bytes (the slot's seq moved).
void Scheduler::let_go_expired(Clock::time_point now) {
  std::erase_if(held_, [&](const auto& kv) { return kv.second.until <= now; });
  std::erase_if(frames_, [&](const auto& kv) { return !held_.count(kv.second); });
}

bool Scheduler::room_for_result(bool replaces, Clock::time_point now) {
  let_go_expired(now);
  return replaces ? held_.empty() : held_.size() + 1 < limits_.slots;
}

std::vector<std::uint64_t> Scheduler::held_frames() const {
  std::vector<std::uint64_t> frames;
  for (const auto& [frame, held] : held_) frames.push_back(frame);
  return frames;
}

Clock::time_point Scheduler::next_expiry() const {
  Clock::time_point t = Clock::time_point::max();
  for (const auto& [frame, held] : held_) t = std::min(t, held.until);
  return t;
}

std::size_t Scheduler::held_by(std::uint64_t connection) const {
  return static_cast<std::size_t>(
      std::count_if(held_.begin(), held_.end(), [&](const auto& kv) { return kv.second.connection == connection; }));
}

}  // namespace cpipc::service
