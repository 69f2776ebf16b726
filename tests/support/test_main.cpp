// main() of every test program: GoogleTest plus the /dev/shm leak check.
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <string>

#include "cpipc/ipc/name.hpp"
#include "support/test_support.hpp"

namespace {

// After the last test (passed or failed), no shm object named by this
// process may remain: a leak fails the run, and is cleaned up so that it
// does not outlive it.
class NoSegmentLeftBehind : public ::testing::Environment {
 public:
  void TearDown() override {
    const auto left = cpipc::test::leftover_segments();
    std::string names;
    for (const auto& name : left) {
      ::shm_unlink(("/" + cpipc::ipc::shm_prefix() + name).c_str());
      names += " " + name;
    }
    if (!left.empty()) ADD_FAILURE() << left.size() << " shm object(s) left in /dev/shm (now removed):" << names;
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new NoSegmentLeftBehind);
  return RUN_ALL_TESTS();
}
