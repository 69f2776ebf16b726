// One producer process, many reader processes, and crashes: the behaviour
// that crosses processes, tested with real ones (tests/segment_peer.cpp and
// the cpipc binary), started with fork/exec and killed with real signals.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/ipc/format.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/process.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/util/child_process.hpp"
#include "support/frame_pattern.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

using namespace std::chrono_literals;
using test::fields;
using test::number_field;
using test::shm_exists;
using test::unique_name;
using Fields = std::map<std::string, std::string>;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;

// A segment_peer producer. Once constructed it has created the segment and
// published frame 1, and waits for go() to publish the rest.
class Producer {
 public:
  Producer(const std::string& name, std::uint64_t frames, std::uint64_t bytes, std::uint32_t slots,
           std::uint64_t interval_us = 0)
      : process_({test::segment_peer_binary(), "produce", name, std::to_string(frames), std::to_string(bytes),
                  std::to_string(slots), std::to_string(interval_us)}) {
    const auto line = process_.read_line(10s);
    if (!line || !line->starts_with("ready")) {
      throw std::runtime_error("the producer did not start: " + line.value_or("no output"));
    }
  }

  void go() const { process_.signal(SIGUSR1); }
  // The "produced ..." line, once it has published its frames (or was stopped).
  [[nodiscard]] std::optional<Fields> result(std::chrono::milliseconds timeout) {
    const auto line = process_.read_line(timeout);
    if (!line) return std::nullopt;
    return fields(*line);
  }
  // SIGTERM, then its exit status.
  std::optional<int> stop() {
    process_.signal(SIGTERM);
    return process_.wait(10s);
  }
  util::ChildProcess& process() { return process_; }

 private:
  util::ChildProcess process_;
};

// A segment_peer reader, attached once constructed.
class Reader {
 public:
  Reader(const std::string& name, const std::string& path, std::uint64_t until_frame, long slow_ms = 0,
         long lease_ms = 2000)
      : process_({test::segment_peer_binary(), "read", name, path, std::to_string(until_frame), std::to_string(slow_ms),
                  std::to_string(lease_ms)}) {
    const auto line = process_.read_line(10s);
    if (!line || *line != "attached") throw std::runtime_error("the reader did not attach: " + line.value_or(""));
  }

  // The next line it prints ("holding id=N" of a slow reader).
  std::optional<std::string> line(std::chrono::milliseconds timeout) { return process_.read_line(timeout); }
  // Its "read ..." result line and exit status.
  [[nodiscard]] std::pair<Fields, std::optional<int>> result(std::chrono::milliseconds timeout) {
    const auto line = process_.read_line(timeout);
    const auto status = process_.wait(line ? 5s : 0ms);
    return {line ? fields(*line) : Fields{}, status};
  }
  util::ChildProcess& process() { return process_; }

 private:
  util::ChildProcess process_;
};

// The readers of a test, each checked the same way at the end.
struct ReaderTotals {
  std::uint64_t frames = 0;
  std::uint64_t revoked = 0;
};

// Every frame a reader read was whole and newer than the one before, it read
// through to frame `last`, and it exited 0.
void expect_clean_read(Reader& reader, std::uint64_t last, ReaderTotals& totals) {
  const auto [f, status] = reader.result(60s);
  ASSERT_FALSE(f.empty()) << "the reader printed no result";
  EXPECT_EQ(f.at("end"), "ok");
  EXPECT_EQ(number_field(f, "torn"), 0u);
  EXPECT_EQ(number_field(f, "out_of_order"), 0u);
  EXPECT_EQ(number_field(f, "missing"), 0u);
  EXPECT_EQ(number_field(f, "last"), last);
  EXPECT_GE(number_field(f, "frames"), 1u);
  EXPECT_EQ(status, 0);
  totals.frames += number_field(f, "frames");
  totals.revoked += number_field(f, "revoked");
}

// A producer of 3000 frames of 64 KiB in a tight loop and 8 readers on
// `path` read along, 4 waiting for each frame and 4 reading again and again
// (those overlap the producer's writes most): every frame any of them gets
// is whole, and their ids increase.
void eight_readers_never_see_a_torn_frame(const std::string& path, std::uint32_t slots) {
  constexpr std::uint64_t kFrames = 3000;
  const std::string name = unique_name();
  Producer producer(name, kFrames, 64 * kKiB, slots);
  std::vector<std::unique_ptr<Reader>> readers;
  for (int i = 0; i < 8; ++i) {
    readers.push_back(std::make_unique<Reader>(name, i % 2 == 0 ? path : path + "-spin", kFrames));
  }

  producer.go();
  const auto produced = producer.result(60s);
  ASSERT_TRUE(produced);
  EXPECT_EQ(number_field(*produced, "frames"), kFrames);

  ReaderTotals totals;
  for (auto& reader : readers) expect_clean_read(*reader, kFrames, totals);
  EXPECT_EQ(producer.stop(), 0);
  EXPECT_FALSE(shm_exists(name));
  std::printf("[   info   ] %s path, %u slots: 8 readers read %llu of %llu frames (%llu revoked), producer %s ms\n",
              path.c_str(), slots, static_cast<unsigned long long>(totals.frames),
              static_cast<unsigned long long>(kFrames), static_cast<unsigned long long>(totals.revoked),
              produced->at("elapsed_ms").c_str());
}

TEST(ManyReaders, NeverSeeATornFrameOnTheCopyPath) { eight_readers_never_see_a_torn_frame("copy", 4); }

TEST(ManyReaders, NeverSeeATornFrameOnTheLeasePath) {
  // Three slots for eight lease holders: the producer has to take leased
  // slots back at times, and those frames must be reported revoked, not torn.
  eight_readers_never_see_a_torn_frame("lease", 3);
}

TEST(SlowReader, TheProducerWrapsTheRingWithoutWaitingForIt) {
  constexpr std::uint64_t kFrames = 3000;
  constexpr long kSleepMs = 2500;
  const std::string name = unique_name();
  Producer producer(name, kFrames, 64 * kKiB, 4);
  Reader slow(name, "lease", 1, kSleepMs, 60'000);
  const auto holding = slow.line(10s);
  ASSERT_EQ(holding, "holding id=1");
  std::vector<std::unique_ptr<Reader>> readers;
  for (int i = 0; i < 3; ++i) readers.push_back(std::make_unique<Reader>(name, "copy", kFrames));

  const auto t0 = std::chrono::steady_clock::now();
  producer.go();
  const auto produced = producer.result(std::chrono::milliseconds(kSleepMs));
  const auto producer_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  ASSERT_TRUE(produced) << "the producer did not finish " << kFrames << " frames while the slow reader slept";
  EXPECT_EQ(number_field(*produced, "frames"), kFrames);
  EXPECT_EQ(slow.process().wait(0ms), std::nullopt) << "the slow reader was still holding its lease";
  EXPECT_EQ(number_field(*produced, "overrides"), 0u) << "with 4 slots one lease never forces an override";

  // Its frame survived 3000 frames through a 4-slot ring: the lease held.
  const auto [f, status] = slow.result(30s);
  ASSERT_FALSE(f.empty()) << "the slow reader printed no result";
  EXPECT_EQ(f.at("end"), "ok");
  EXPECT_EQ(number_field(f, "frames"), 1u);
  EXPECT_EQ(number_field(f, "revoked"), 0u);
  EXPECT_EQ(number_field(f, "torn"), 0u);
  EXPECT_EQ(status, 0);
  ReaderTotals totals;
  for (auto& reader : readers) expect_clean_read(*reader, kFrames, totals);
  EXPECT_EQ(producer.stop(), 0);
  std::printf("[   info   ] producer published %llu frames in %.0f ms while a reader held frame 1 for %ld ms\n",
              static_cast<unsigned long long>(kFrames), producer_ms, kSleepMs);
}

TEST(SlowReader, WithTwoSlotsItsLeaseIsRevokedNotTorn) {
  constexpr std::uint64_t kFrames = 500;
  constexpr long kSleepMs = 1500;
  const std::string name = unique_name();
  Producer producer(name, kFrames, 64 * kKiB, 2);
  Reader slow(name, "lease", 1, kSleepMs, 60'000);
  ASSERT_EQ(slow.line(10s), "holding id=1");

  producer.go();
  const auto produced = producer.result(std::chrono::milliseconds(kSleepMs));
  ASSERT_TRUE(produced) << "the producer waited for the slow reader";
  EXPECT_GT(number_field(*produced, "overrides"), 0u);

  const auto [f, status] = slow.result(30s);
  ASSERT_FALSE(f.empty()) << "the slow reader printed no result";
  EXPECT_EQ(f.at("end"), "ok");
  EXPECT_EQ(number_field(f, "revoked"), 1u);
  EXPECT_EQ(number_field(f, "torn"), 0u);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(producer.stop(), 0);
}

// True if any slot of the segment's header is odd (being written).
bool a_slot_was_being_written(const std::string& name) {
  const int fd = ::shm_open(ipc::shm_object_name(name).c_str(), O_RDONLY, 0);
  if (fd < 0) return false;
  ipc::format::Header h;
  const bool read_all = ::pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h);
  ::close(fd);
  if (!read_all) return false;
  for (std::uint32_t s = 0; s < h.slot_count && s < ipc::format::kMaxSlots; ++s) {
    if (h.slots[s].seq % 2 == 1) return true;
  }
  return false;
}

TEST(ProducerKilled, WaitingReadersReportProducerGoneWithinASecondAndGcRemovesTheSegment) {
  const std::string name = unique_name();
  // 8 MiB frames in a tight loop: the producer spends its time writing.
  Producer producer(name, 1'000'000'000, 8 * kMiB, 3);
  std::vector<std::unique_ptr<Reader>> readers;
  for (const char* path : {"copy", "copy", "lease", "lease"}) {
    readers.push_back(std::make_unique<Reader>(name, path, 1'000'000'000));
  }
  producer.go();
  std::mt19937 rng(std::random_device{}());
  std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 450)(rng)));

  const std::uint64_t killed_ns = ipc::monotonic_ns();
  producer.process().signal(SIGKILL);
  ASSERT_EQ(producer.process().wait(5s), 128 + SIGKILL);
  const bool mid_write = a_slot_was_being_written(name);

  std::uint64_t slowest_ns = 0;
  for (auto& reader : readers) {
    const auto [f, status] = reader->result(5s);
    ASSERT_FALSE(f.empty()) << "a reader printed no result";
    EXPECT_EQ(f.at("end"), "producer_gone");
    const std::uint64_t noticed_ns = number_field(f, "end_ns") - killed_ns;
    EXPECT_LT(noticed_ns, 1'000'000'000u) << "noticed after " << noticed_ns / 1'000'000 << " ms";
    slowest_ns = std::max(slowest_ns, noticed_ns);
    EXPECT_EQ(number_field(f, "torn"), 0u);
    EXPECT_EQ(number_field(f, "out_of_order"), 0u);
    EXPECT_GE(number_field(f, "frames"), 1u);
    EXPECT_EQ(status, exit_status(Errc::producer_gone));
    EXPECT_EQ(status, 4);
  }

  // The last frame it published is still whole for a reader that attaches now.
  {
    const auto late = ipc::SegmentReader::attach(name);
    std::vector<std::byte> copy;
    const auto info = late.copy_latest(copy);
    ASSERT_TRUE(info);
    EXPECT_TRUE(test::matches_pattern(test::as_words(copy), info->frame_id));
    EXPECT_THROW(late.check_producer(), Error);
  }

  const test::CommandResult gc = test::run_cpipc({"gc", name});
  EXPECT_EQ(gc.status, 0) << gc.err;
  EXPECT_NE(gc.out.find("removed '" + name + "'"), std::string::npos) << gc.out;
  EXPECT_FALSE(shm_exists(name));
  EXPECT_EQ(test::leftover_segments(), std::vector<std::string>{});
  std::printf("[   info   ] producer killed %s; the last of 4 readers noticed after %.0f ms\n",
              mid_write ? "in the middle of writing a frame" : "between frames", slowest_ns / 1e6);
}

TEST(ReaderKilled, TheProducerGoesOnAndTheDeadReadersLeaseExpires) {
  constexpr long kLeaseMs = 1500;
  const std::string name = unique_name();
  Producer producer(name, 1'000'000'000, 64 * kKiB, 4, 1000);
  Reader holder(name, "lease", 1, 60'000, kLeaseMs);
  ASSERT_EQ(holder.line(10s), "holding id=1");
  const auto observer = ipc::SegmentReader::attach(name);
  ASSERT_EQ(observer.status().active_leases, 1u);
  producer.go();

  holder.process().kill();  // SIGKILL while it holds the lease
  const auto killed = std::chrono::steady_clock::now();
  const std::uint64_t frames_at_kill = observer.status().frames_published;

  // The producer does not wait for the dead reader...
  std::this_thread::sleep_for(300ms);
  EXPECT_GT(observer.status().frames_published, frames_at_kill + 10);
  EXPECT_EQ(observer.status().active_leases, 1u) << "the lease lasts its duration";

  // ... and its lease lapses when it expires.
  while (observer.status().active_leases != 0 && std::chrono::steady_clock::now() - killed < 10s) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(observer.status().active_leases, 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - killed, std::chrono::milliseconds(kLeaseMs + 1000));
  const std::uint64_t frames_after_expiry = observer.status().frames_published;
  std::this_thread::sleep_for(100ms);
  EXPECT_GT(observer.status().frames_published, frames_after_expiry);
  EXPECT_EQ(observer.status().lease_overrides, 0u);
  EXPECT_NO_THROW(observer.check_producer());

  EXPECT_EQ(producer.stop(), 0);
  EXPECT_FALSE(shm_exists(name));
}

// `cpipc publish FILE NAME` stopped by a signal: exits 0 and unlinks its segment.
class PublishStoppedBySignal : public ::testing::TestWithParam<int> {};

TEST_P(PublishStoppedBySignal, ExitsZeroAndRemovesTheSegment) {
  const test::TempDir dir;
  const std::string file = dir.file("labels.npy");
  io::Array labels;
  const std::int64_t shape[2] = {64, 64};
  labels.desc = ipc::TensorDesc::contiguous(ipc::kUInt16, shape);
  labels.data.assign(labels.desc.nbytes(), std::byte{3});
  io::write_array(file, labels.view());
  const std::string name = unique_name();

  util::ChildProcess publish({test::cpipc_binary(), "publish", file, name});
  const auto line = publish.read_line(10s);
  ASSERT_TRUE(line && line->starts_with("published")) << line.value_or("no output");
  ASSERT_TRUE(shm_exists(name));

  publish.signal(GetParam());

  EXPECT_EQ(publish.wait(10s), 0);
  EXPECT_FALSE(shm_exists(name));
}

INSTANTIATE_TEST_SUITE_P(Signals, PublishStoppedBySignal, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGTERM ? "SIGTERM" : "SIGINT");
                         });

}  // namespace
}  // namespace cpipc
