// The producer's scheduling rules without a producer: round robin across
// connections, flow control by promised results, cancel and disconnect.
#include <gtest/gtest.h>

#include "cpipc/service/scheduler.hpp"

namespace cpipc::service {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<Job> job(std::uint64_t connection, const std::string& id) {
  auto j = std::make_shared<Job>();
  j->connection = connection;
  j->request.id = id;
  j->request.image = "/x.tif";
  return j;
}

struct Fixture {
  Scheduler s{Scheduler::Limits{4, 8, 1000ms}};
  Clock::time_point t0 = Clock::now();

  std::uint64_t admit(std::uint64_t c, const std::string& id) {
    std::uint64_t ahead = 0;
    EXPECT_EQ(s.admit(job(c, id), ahead), Scheduler::Admission::accepted) << id;
    return ahead;
  }
  // Runs the next request to its end; returns its id ("" if none can run).
  std::string run_next(std::uint64_t frame = 0) {
    const auto j = s.take_next(t0);
    if (!j) return "";
    if (frame) s.hold(*j, frame, t0);
    s.finish(*j);
    return j->request.id;
  }
};

TEST(Scheduler, ServesConnectionsRoundRobin) {
  Fixture f;
  for (const char* id : {"a1", "a2", "a3"}) f.admit(1, id);
  EXPECT_EQ(f.admit(2, "b1"), 1u) << "one of a's ahead of b's first";
  std::vector<std::string> order;
  for (std::string id; !(id = f.run_next()).empty();) order.push_back(id);
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "b1", "a2", "a3"}));
}

TEST(Scheduler, CountsWhatIsAheadWhileOneRuns) {
  Fixture f;
  f.admit(1, "a1");
  (void)f.s.take_next(f.t0);  // a1 runs
  f.admit(1, "a2");
  EXPECT_EQ(f.admit(2, "b1"), 2u) << "the running one and a2";
}

TEST(Scheduler, AClientHoldingHalfTheSlotsWaitsAndOthersGoOn) {
  Fixture f;  // 4 slots: at most 2 held per client
  for (const char* id : {"a1", "a2", "a3"}) f.admit(1, id);
  EXPECT_EQ(f.run_next(1), "a1");
  EXPECT_EQ(f.run_next(2), "a2");
  EXPECT_EQ(f.run_next(), "") << "a3 waits for a release";
  f.admit(2, "b1");
  EXPECT_EQ(f.run_next(3), "b1");
  f.s.release(1, "a1");
  EXPECT_EQ(f.run_next(), "a3");
}

TEST(Scheduler, PromisesRunOutAfterTheReleaseWait) {
  Fixture f;
  f.admit(1, "a1");
  EXPECT_EQ(f.run_next(7), "a1");
  EXPECT_EQ(f.s.held_frames(), std::vector<std::uint64_t>{7});
  EXPECT_EQ(f.s.next_expiry(), f.t0 + 1000ms);
  EXPECT_FALSE(f.s.room_for_result(/*replaces=*/true, f.t0));
  EXPECT_TRUE(f.s.room_for_result(/*replaces=*/false, f.t0));
  EXPECT_TRUE(f.s.room_for_result(/*replaces=*/true, f.t0 + 1001ms));
  EXPECT_TRUE(f.s.held_frames().empty());
}

TEST(Scheduler, RoomRunsOutWhenAllButOneSlotArePromised) {
  Fixture f;
  for (std::uint64_t c = 1; c <= 3; ++c) {
    f.admit(c, "x");
    EXPECT_EQ(f.run_next(c), "x");
  }
  EXPECT_FALSE(f.s.room_for_result(false, f.t0)) << "3 of 4 slots promised: the 4th is the latest frame";
  f.s.release(2, "x");
  EXPECT_TRUE(f.s.room_for_result(false, f.t0));
}

TEST(Scheduler, IdsAreUniqueWhileOpenAndFreeOnceAnswered) {
  Fixture f;
  f.admit(1, "a");
  std::uint64_t ahead = 0;
  EXPECT_EQ(f.s.admit(job(1, "a"), ahead), Scheduler::Admission::duplicate_id);
  f.admit(2, "a");  // another connection's ids are its own
  EXPECT_EQ(f.run_next(), "a");
  f.admit(1, "a");
}

TEST(Scheduler, TheQueueIsBounded) {
  Fixture f;  // max_queue 8
  for (int i = 0; i < 8; ++i) f.admit(1, std::to_string(i));
  std::uint64_t ahead = 0;
  EXPECT_EQ(f.s.admit(job(2, "x"), ahead), Scheduler::Admission::queue_full);
}

TEST(Scheduler, CancelRemovesQueuedAndMarksRunning) {
  Fixture f;
  f.admit(1, "a");
  f.admit(1, "b");
  const auto running = f.s.take_next(f.t0);
  EXPECT_EQ(f.s.cancel(1, "b"), Scheduler::Cancellation::dequeued);
  EXPECT_EQ(f.s.cancel(1, "a"), Scheduler::Cancellation::running);
  EXPECT_EQ(running->cancelled.load(), CancelReason::client);
  EXPECT_EQ(f.s.cancel(1, "zzz"), Scheduler::Cancellation::unknown);
  EXPECT_EQ(f.s.queued(), 0u);
}

TEST(Scheduler, ADisconnectDropsEverythingOfThatClientOnly) {
  Fixture f;
  f.admit(1, "a1");
  f.admit(2, "b1");
  EXPECT_EQ(f.run_next(5), "a1");
  f.admit(1, "a2");
  const auto running = f.s.take_next(f.t0);  // b1
  f.s.disconnect(1);
  EXPECT_EQ(f.s.queued(), 0u);
  EXPECT_TRUE(f.s.held_frames().empty());
  EXPECT_EQ(running->cancelled.load(), CancelReason::none);
  f.s.disconnect(2);
  EXPECT_EQ(running->cancelled.load(), CancelReason::disconnected);
  f.s.hold(*running, 9, f.t0);
  EXPECT_TRUE(f.s.held_frames().empty()) << "nothing is promised to a client that is gone";
}

TEST(Scheduler, StopHandsBackTheQueueAndMarksTheRunningOne) {
  Fixture f;
  for (const char* id : {"a", "b", "c"}) f.admit(1, id);
  const auto running = f.s.take_next(f.t0);
  EXPECT_EQ(f.s.stop().size(), 2u);
  EXPECT_EQ(running->cancelled.load(), CancelReason::shutdown);
  EXPECT_EQ(f.s.take_next(f.t0), nullptr);
}

}  // namespace
}  // namespace cpipc::service
