// Faults from other processes and other users, with real processes and real
// /dev/shm: objects planted under our names, producers stopped mid-write,
// owners moved while their views live, segments truncated under their
// producer and readers, hostile metadata, and signals during a fast publish.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/registry.hpp"
#include "cpipc/ipc/writer.hpp"
#include "cpipc/util/child_process.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

using namespace std::chrono_literals;
using test::CommandResult;
using test::expect_failure;
using test::run_cpipc;
using test::shm_exists;
using test::unique_name;

ipc::TensorDesc small_desc() {
  const std::int64_t shape[2] = {64, 64};
  return ipc::TensorDesc::contiguous(ipc::kUInt16, shape);
}

std::vector<std::byte> frame_of(std::uint8_t value) {
  return std::vector<std::byte>(small_desc().nbytes(), std::byte{value});
}

// Unlinks a shm object made by the test itself (not through SegmentWriter)
// when it goes, whatever happened.
struct ObjectGuard {
  std::string name;
  ~ObjectGuard() { ::shm_unlink(ipc::shm_object_name(name).c_str()); }
};

// A copy of a live segment's bytes under `name`, owned by `uid` with
// `mode`: what another user can leave in /dev/shm under our prefix.
void plant_copy(const std::string& from, const std::string& name, uid_t uid, mode_t mode) {
  const int src = ::shm_open(ipc::shm_object_name(from).c_str(), O_RDONLY, 0);
  ASSERT_GE(src, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(src, &st), 0);
  std::vector<char> bytes(static_cast<std::size_t>(st.st_size));
  ASSERT_EQ(::pread(src, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ::close(src);
  const int fd = ::shm_open(ipc::shm_object_name(name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ASSERT_EQ(::fchown(fd, uid, uid), 0) << "the test needs root to plant a foreign object";
  ASSERT_EQ(::fchmod(fd, mode), 0);
  ::close(fd);
}

void truncate_object(const std::string& name, off_t bytes) {
  const int fd = ::shm_open(ipc::shm_object_name(name).c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, bytes), 0);
  ::close(fd);
}

std::string write_npy(const test::TempDir& dir) {
  const std::string file = dir.file("labels.npy");
  io::Array labels;
  labels.desc = small_desc();
  labels.data = frame_of(3);
  io::write_array(file, labels.view());
  return file;
}

// --- A: objects another user planted under our names ---------------------

class ForeignObject : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "planting an object of another owner needs root";
    writer_.emplace(ipc::SegmentWriter::create(source_, small_desc()));
    writer_->publish(frame_of(7));
  }
  std::string source_ = unique_name("src");
  std::string planted_ = unique_name("victim");
  ObjectGuard guard_{planted_};
  std::optional<ipc::SegmentWriter> writer_;
};

TEST_F(ForeignObject, AttachRefusesAnotherOwnersObject) {
  plant_copy(source_, planted_, 65534, 0666);
  try {
    (void)ipc::SegmentReader::attach(planted_);
    FAIL() << "attached to an object owned by uid 65534";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::corrupt);
    EXPECT_NE(std::string(e.what()).find("owned by uid 65534"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("planted"), std::string::npos) << e.what();
  }
}

TEST_F(ForeignObject, AttachRefusesOurObjectWithAnotherMode) {
  plant_copy(source_, planted_, ::geteuid(), 0666);
  try {
    (void)ipc::SegmentReader::attach(planted_);
    FAIL() << "attached to an object with mode 0666";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::corrupt);
    EXPECT_NE(std::string(e.what()).find("mode 0666"), std::string::npos) << e.what();
  }
}

TEST_F(ForeignObject, LsShowsItUntrustedSaveRefusesPublishSaysWhyGcLeavesIt) {
  plant_copy(source_, planted_, 65534, 0666);
  const test::TempDir dir;

  const CommandResult ls = run_cpipc({"ls", "--json"}, 10s);
  ASSERT_EQ(ls.status, 0) << ls.err;
  bool seen = false;
  for (const auto& e : nlohmann::json::parse(ls.out)) {
    if (e.at("name") != planted_) continue;
    seen = true;
    EXPECT_EQ(e.at("state"), "untrusted") << e.dump();
    EXPECT_FALSE(e.contains("producer_alive")) << "its header must not be believed: " << e.dump();
  }
  EXPECT_TRUE(seen) << ls.out;
  const CommandResult table = run_cpipc({"ls"}, 10s);
  EXPECT_NE(table.out.find("untrusted"), std::string::npos) << table.out;

  const std::string out = dir.file("x.npy");
  const CommandResult save = run_cpipc({"save", planted_, out}, 10s);
  expect_failure(save, 2);
  EXPECT_NE(save.err.find("owned by uid 65534"), std::string::npos) << save.err;
  EXPECT_FALSE(std::filesystem::exists(out)) << "save wrote the planted data";

  const CommandResult publish = run_cpipc({"publish", write_npy(dir), planted_, "--linger-ms", "0"}, 10s);
  expect_failure(publish, 1);
  EXPECT_NE(publish.err.find("planted"), std::string::npos) << publish.err;

  const CommandResult gc = run_cpipc({"gc", planted_}, 10s);
  EXPECT_EQ(gc.status, 0) << gc.err;
  EXPECT_TRUE(shm_exists(planted_)) << "gc removed an object it cannot judge";
}

// --- B: a producer stuck mid-write -----------------------------------------

// segment_peer stall: the latest slot's seq stays odd until it is stopped.
class StalledProducer {
 public:
  explicit StalledProducer(const std::string& name) : process_({test::segment_peer_binary(), "stall", name}) {
    const auto line = process_.read_line(10s);
    if (!line || !line->starts_with("stalled"))
      throw std::runtime_error("the peer did not stall: " + line.value_or(""));
  }
  ~StalledProducer() {
    process_.signal(SIGCONT);
    process_.signal(SIGTERM);
    (void)process_.wait(10s);
  }
  util::ChildProcess& process() { return process_; }

 private:
  util::ChildProcess process_;
};

template <class F>
double seconds_of(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(StuckProducer, ReadersGiveUpAtTheirDeadlineWithTimedOut) {
  const std::string name = unique_name();
  StalledProducer peer(name);
  const auto reader = ipc::SegmentReader::attach(name);
  std::vector<std::byte> copy;
  const double copy_s = seconds_of([&] {
    try {
      (void)reader.copy_latest(copy, 300ms);
      ADD_FAILURE() << "copy_latest returned from a slot that is mid-write";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::timed_out) << e.what();
      EXPECT_NE(std::string(e.what()).find("stuck mid-write"), std::string::npos) << e.what();
    }
  });
  EXPECT_LT(copy_s, 2.0);
  EXPECT_THROW((void)reader.lease_latest(1000ms, 300ms), Error);
  const auto s = reader.status(100ms);
  EXPECT_TRUE(s.stuck);
  EXPECT_FALSE(s.latest);
}

TEST(StuckProducer, LsInfoSaveAndGcFinishWithTheirDocumentedStatus) {
  const std::string name = unique_name("stuck");
  const std::string other = unique_name("fine");
  StalledProducer peer(name);
  peer.process().signal(SIGSTOP);  // stopped mid-write, as with Ctrl-Z
  auto fine = ipc::SegmentWriter::create(other, small_desc());
  fine.publish(frame_of(1));
  const test::TempDir dir;

  const CommandResult ls = run_cpipc({"ls"}, 10s);
  EXPECT_EQ(ls.status, 0) << ls.err;
  EXPECT_NE(ls.out.find("stuck"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find(other), std::string::npos) << "one stuck segment hid the others:\n" << ls.out;

  const CommandResult info = run_cpipc({"info", name}, 10s);
  expect_failure(info, 4);
  EXPECT_NE(info.err.find("stuck mid-write"), std::string::npos) << info.err;

  const CommandResult save = run_cpipc({"save", name, dir.file("x.npy")}, 10s);
  expect_failure(save, 4);

  // Named: a bare gc would also collect the dead segments of tests running beside this one.
  const CommandResult gc = run_cpipc({"gc", name, other}, 10s);
  EXPECT_EQ(gc.status, 0) << gc.err;
  EXPECT_TRUE(shm_exists(name)) << "gc removed the segment of a live (stopped) producer";
  EXPECT_TRUE(shm_exists(other));
}

// --- C: moving an owner while its views live -------------------------------

TEST(MovedOwner, ALeaseOutlivesItsReaderMovedAndDestroyed) {
  const std::string name = unique_name();
  ipc::SegmentOptions options;
  options.slots = 3;
  auto writer = ipc::SegmentWriter::create(name, small_desc(), options);
  writer.publish(frame_of(5));
  const auto observer = ipc::SegmentReader::attach(name);

  std::optional<ipc::FrameLease> lease;
  {
    auto reader = ipc::SegmentReader::attach(name);
    lease = reader.lease_latest(10'000ms);
    ASSERT_TRUE(lease);
    ipc::SegmentReader moved = std::move(reader);
    ipc::SegmentReader again(std::move(moved));
  }  // every reader object is gone; the lease holds the mapping
  for (int i = 0; i < 10; ++i) writer.publish(frame_of(static_cast<std::uint8_t>(10 + i)));
  EXPECT_TRUE(lease->valid()) << "the lease stopped protecting its slot";
  EXPECT_EQ(lease->view().bytes()[0], std::byte{5});
  EXPECT_EQ(observer.status().active_leases, 1u);
  lease.reset();
  EXPECT_EQ(observer.status().active_leases, 0u);
}

TEST(MovedOwner, AFrameWriterPublishesAfterItsSegmentWriterMoved) {
  const std::string name = unique_name();
  auto writer = ipc::SegmentWriter::create(name, small_desc());
  {
    ipc::FrameWriter frame = writer.begin_frame();
    std::memset(frame.bytes().data(), 9, frame.bytes().size());
    ipc::SegmentWriter moved = std::move(writer);
    const auto info = frame.publish();
    EXPECT_EQ(info.frame_id, 1u);
    writer = std::move(moved);
  }
  // The writing flag followed the state: the next frame may begin.
  ipc::FrameWriter next = writer.begin_frame();
  ipc::SegmentWriter moved = std::move(writer);
  // Abandoned after the move: its destructor must find the segment.
  { ipc::FrameWriter gone = std::move(next); }
  EXPECT_EQ(moved.frames_published(), 1u);
  EXPECT_NO_THROW(moved.publish(frame_of(4)));
  EXPECT_EQ(moved.frames_published(), 2u);
}

// --- D: truncated under us ---------------------------------------------------

class Truncated : public ::testing::TestWithParam<off_t> {};

TEST_P(Truncated, ReaderAndWriterInOneProcessGetErrorsNotSigbus) {
  const std::string name = unique_name();
  auto writer = ipc::SegmentWriter::create(name, small_desc());
  writer.publish(frame_of(1));
  const auto reader = ipc::SegmentReader::attach(name);
  auto lease = reader.lease_latest();
  ASSERT_TRUE(lease);
  truncate_object(name, GetParam());

  std::vector<std::byte> copy;
  try {
    (void)reader.copy_latest(copy);
    ADD_FAILURE() << "copied from a truncated segment";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::corrupt);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(lease->valid());
  lease.reset();
  try {
    writer.publish(frame_of(2));
    ADD_FAILURE() << "published into a truncated segment";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::corrupt);
  }
  EXPECT_THROW(reader.check_producer(), Error);
}

TEST_P(Truncated, APublishingCpipcAndAWatchEndWithOneLineNotASignal) {
  const test::TempDir dir;
  const std::string file = write_npy(dir);
  const std::string name = unique_name();
  util::ChildProcess publish(
      {test::cpipc_binary(), "publish", file, name, "--frames", "1000000000000", "--interval-ms", "1"});
  const auto line = publish.read_line(10s);
  ASSERT_TRUE(line && line->starts_with("published")) << line.value_or("no output");
  util::ChildProcess watch({test::cpipc_binary(), "watch", name});
  ASSERT_TRUE(watch.read_line(10s)) << "the watch printed no frame";

  truncate_object(name, GetParam());

  const auto publish_status = publish.wait(10s);
  const auto watch_status = watch.wait(10s);
  ASSERT_TRUE(publish_status) << "publish did not stop";
  ASSERT_TRUE(watch_status) << "watch did not stop";
  EXPECT_EQ(*publish_status, 2) << "128+N is death by signal N";
  EXPECT_EQ(*watch_status, 2) << "128+N is death by signal N";
  EXPECT_FALSE(shm_exists(name)) << "the producer did not unlink its segment";
}

// The SIGBUS handler the library installs must not swallow faults outside
// its guarded regions: in a child, after a guarded operation installed it,
// an unguarded access past the end of a truncated file still ends the
// process the way it would without cpipc (its own earlier handler, if it
// had one, or death by SIGBUS).
int sigbus_outside_a_guard(bool own_handler_first) {
  const pid_t pid = ::fork();
  if (pid != 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }
  if (own_handler_first) {
    struct sigaction sa {};
    sa.sa_sigaction = [](int, siginfo_t*, void*) { ::_exit(42); };
    sa.sa_flags = SA_SIGINFO;
    ::sigaction(SIGBUS, &sa, nullptr);
  }
  char path[] = "/tmp/cpipc-sigbus-XXXXXX";
  const int fd = ::mkstemp(path);
  ::unlink(path);
  if (fd < 0 || ::ftruncate(fd, 8192) != 0) ::_exit(3);
  auto* p = static_cast<volatile char*>(::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (p == MAP_FAILED) ::_exit(3);
  try {
    const std::string name = unique_name("probe");
    { auto w = ipc::SegmentWriter::create(name, small_desc()); }  // installs the handler
  } catch (...) {
    ::_exit(4);
  }
  if (::ftruncate(fd, 0) != 0) ::_exit(3);
  p[4096] = 1;  // SIGBUS, outside any guard
  ::_exit(0);
}

TEST(SigbusHandler, AFaultOutsideAGuardStillKills) { EXPECT_EQ(sigbus_outside_a_guard(false), 128 + SIGBUS); }

TEST(SigbusHandler, AFaultOutsideAGuardGoesToTheHandlerThatWasThereBefore) {
  EXPECT_EQ(sigbus_outside_a_guard(true), 42);
}

INSTANTIATE_TEST_SUITE_P(ToSizes, Truncated, ::testing::Values(off_t{0}, off_t{4096}),
                         [](const ::testing::TestParamInfo<off_t>& info) {
                           return "To" + std::to_string(info.param) + "Bytes";
                         });

// --- E: hostile metadata, signals during a fast publish ---------------------

TEST(HostileMetadata, LsInfoAndWatchShowItEscapedAndListTheOthers) {
  const std::string bad = unique_name("bad");
  const std::string good = unique_name("good");
  auto bad_writer = ipc::SegmentWriter::create(bad, small_desc());
  ipc::FrameMeta meta;
  meta.json = std::string("{\"source\":\"\xff\xfe\"}");
  bad_writer.publish(frame_of(1), meta);
  auto good_writer = ipc::SegmentWriter::create(good, small_desc());
  good_writer.publish(frame_of(2));

  const CommandResult ls = run_cpipc({"ls", "--json"}, 10s);
  ASSERT_EQ(ls.status, 0) << ls.err;
  const auto all = nlohmann::json::parse(ls.out);
  int found = 0;
  for (const auto& e : all) {
    if (e.at("name") == good) ++found;
    if (e.at("name") != bad) continue;
    ++found;
    EXPECT_EQ(e.at("latest").at("meta"), "{\"source\":\"\\xff\\xfe\"}") << e.dump();
    EXPECT_TRUE(e.at("latest").contains("meta_note"));
  }
  EXPECT_EQ(found, 2) << ls.out;

  const CommandResult info = run_cpipc({"info", bad, "--json"}, 10s);
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_TRUE(nlohmann::json::accept(info.out)) << info.out;

  const CommandResult watch = run_cpipc({"watch", bad, "--count", "1"}, 10s);
  ASSERT_EQ(watch.status, 0) << watch.err;
  const auto j = nlohmann::json::parse(watch.out);
  EXPECT_TRUE(j.contains("meta_note")) << watch.out;
}

class FastPublishStoppedBySignal : public ::testing::TestWithParam<int> {};

TEST_P(FastPublishStoppedBySignal, StopsWithinAMomentAndUnlinks) {
  const test::TempDir dir;
  const std::string file = write_npy(dir);
  const std::string name = unique_name();
  util::ChildProcess publish(
      {test::cpipc_binary(), "publish", file, name, "--frames", "1000000000000", "--interval-ms", "0"});
  const auto line = publish.read_line(10s);
  ASSERT_TRUE(line && line->starts_with("published")) << line.value_or("no output");
  std::this_thread::sleep_for(50ms);
  const auto t0 = std::chrono::steady_clock::now();
  publish.signal(GetParam());
  const auto status = publish.wait(5s);
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(status) << "publish ignored the signal";
  EXPECT_EQ(*status, 0);
  EXPECT_LT(ms, 500.0) << "took " << ms << " ms to stop";
  EXPECT_FALSE(shm_exists(name));
}

INSTANTIATE_TEST_SUITE_P(Signals, FastPublishStoppedBySignal, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGTERM ? "SIGTERM" : "SIGINT");
                         });

}  // namespace
}  // namespace cpipc
