// The registry: listing this user's segments, removing them, and collecting
// the ones whose producer is gone.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/registry.hpp"
#include "cpipc/ipc/writer.hpp"
#include "support/test_support.hpp"

namespace cpipc::ipc {
namespace {

using test::shm_exists;
using test::unique_name;

TensorDesc small_desc() {
  const std::int64_t shape[2] = {8, 8};
  return TensorDesc::contiguous(kUInt16, shape);
}

std::optional<SegmentEntry> find_entry(const std::string& name) {
  for (auto& e : list_segments()) {
    if (e.name == name) return e;
  }
  return std::nullopt;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Creates segment `name` in a forked child that then exits without closing
// it: the segment of a producer that died.
void create_in_a_process_that_dies(const std::string& name) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      SegmentWriter writer = SegmentWriter::create(name, small_desc());
      writer.publish(std::vector<std::byte>(writer.desc().nbytes()));
      ::_exit(0);  // no destructors: the segment stays, its producer is gone
    } catch (...) {
      ::_exit(1);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Registry, ListsALiveSegmentWithItsStatus) {
  const std::string name = unique_name();
  SegmentWriter writer = SegmentWriter::create(name, small_desc());
  writer.publish(std::vector<std::byte>(writer.desc().nbytes()), {4, 0.0f, "{}"});

  const auto entry = find_entry(name);
  ASSERT_TRUE(entry);
  ASSERT_TRUE(entry->status) << entry->problem;
  EXPECT_EQ(entry->bytes, writer.layout().total_bytes);
  EXPECT_EQ(entry->status->state, format::State::live);
  EXPECT_TRUE(entry->status->producer_alive);
  EXPECT_EQ(entry->status->frames_published, 1u);
  ASSERT_TRUE(entry->status->latest);
  EXPECT_EQ(entry->status->latest->meta.object_count, 4u);
}

TEST(Registry, ListsADamagedObjectWithItsProblem) {
  const std::string name = unique_name();
  const std::string object = shm_object_name(name);
  const int fd = ::shm_open(object.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  const std::string junk(8192, 'j');
  ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  ::close(fd);

  const auto entry = find_entry(name);
  ::shm_unlink(object.c_str());
  ASSERT_TRUE(entry);
  EXPECT_FALSE(entry->status);
  EXPECT_NE(entry->problem.find("magic"), std::string::npos) << entry->problem;
}

TEST(Registry, RemoveUnlinksTheName) {
  const std::string name = unique_name();
  const SegmentWriter writer = SegmentWriter::create(name, small_desc());
  remove_segment(name);
  EXPECT_FALSE(shm_exists(name));
}

TEST(Registry, RemovingNoSegmentFailsWithNotFound) {
  try {
    remove_segment(unique_name());
    ADD_FAILURE() << "removed a segment that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
  }
}

TEST(Registry, TheWriterLeavesANewSegmentOfTheSameNameAlone) {
  // After 'cpipc rm', another producer may take the name: the first
  // producer's destructor must not unlink the second one's segment.
  const std::string name = unique_name();
  std::optional<SegmentWriter> first = SegmentWriter::create(name, small_desc());
  remove_segment(name);
  const SegmentWriter second = SegmentWriter::create(name, small_desc());
  first.reset();
  EXPECT_TRUE(shm_exists(name));
}

TEST(Registry, GarbageCollectionRemovesTheSegmentOfADeadProducer) {
  const std::string name = unique_name();
  create_in_a_process_that_dies(name);
  ASSERT_TRUE(shm_exists(name));
  const auto entry = find_entry(name);
  ASSERT_TRUE(entry && entry->status);
  EXPECT_FALSE(entry->status->producer_alive);

  // Only this test's segment: under ctest -j, another test's collection
  // of everything would take it first (seen with -j16).
  const auto removed = collect_garbage(10.0, {name});

  EXPECT_TRUE(contains(removed, name));
  EXPECT_FALSE(shm_exists(name));
}

TEST(Registry, GarbageCollectionKeepsTheSegmentOfALiveProducer) {
  const std::string name = unique_name();
  const SegmentWriter writer = SegmentWriter::create(name, small_desc());
  EXPECT_FALSE(contains(collect_garbage(10.0, {name}), name));
  EXPECT_TRUE(shm_exists(name));
}

TEST(Registry, GarbageCollectionKeepsAYoungObjectWithoutAValidHeader) {
  // It may be a segment whose producer is still writing its header.
  const std::string name = unique_name();
  const std::string object = shm_object_name(name);
  const int fd = ::shm_open(object.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const auto removed = collect_garbage(3600.0, {name});  // only ours: tests beside this one have dead segments too
  const bool kept = shm_exists(name);
  ::shm_unlink(object.c_str());
  EXPECT_FALSE(contains(removed, name));
  EXPECT_TRUE(kept);
}

}  // namespace
}  // namespace cpipc::ipc
