// The files io meets outside the happy path, each with a real file, a real
// limit or a real process: a write that fails (file size limit, a full
// device) keeps the old file and says so in one line.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/frames.hpp"
#include "cpipc/io/npy.hpp"
#include "support/cli_support.hpp"
#include "support/test_support.hpp"
#include "support/tiff_builder.hpp"

namespace io = cpipc::io;
namespace ipc = cpipc::ipc;
namespace fs = std::filesystem;
using cpipc::Errc;
using cpipc::Error;
using cpipc::test::CommandResult;
using cpipc::test::expect_failure;
using cpipc::test::Publisher;
using cpipc::test::read_file_bytes;
using cpipc::test::run_cpipc;
using cpipc::test::TempDir;
using cpipc::test::tiff_file;
using cpipc::test::TiffPage;
using namespace std::chrono_literals;

namespace {

// Incompressible values: an encoded image is about as large as its pixels.
std::uint64_t noise(std::uint64_t i, std::uint64_t seed) {
  std::uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed * 0xbf58476d1ce4e5b9ull;
  x ^= x >> 31;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 29);
}

io::Array u16_image(std::vector<std::int64_t> shape, std::uint32_t seed) {
  io::Array a;
  a.desc = ipc::TensorDesc::contiguous(ipc::kUInt16, shape);
  a.data.resize(a.desc.nbytes());
  auto* p = reinterpret_cast<std::uint16_t*>(a.data.data());
  for (std::size_t i = 0; i < a.data.size() / 2; ++i) p[i] = static_cast<std::uint16_t>(noise(i, seed));
  return a;
}

io::Array u8_image(std::vector<std::int64_t> shape, std::uint32_t seed) {
  io::Array a;
  a.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  a.data.resize(a.desc.nbytes());
  for (std::size_t i = 0; i < a.data.size(); ++i) a.data[i] = static_cast<std::byte>(noise(i, seed));
  return a;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Runs `body` in a forked child and returns its exit status (128+N for a
// signal): for limits (RLIMIT_FSIZE, RLIMIT_AS) that must not touch the test
// process, and for calls that might block (`alarm` ends them).
int in_child(const std::function<int()>& body, unsigned alarm_s = 20, rusage* usage = nullptr) {
  const pid_t child = ::fork();
  if (child == 0) {
    ::alarm(alarm_s);
    int rc = 99;
    try {
      rc = body();
    } catch (...) {
      rc = 98;
    }
    ::_exit(rc);
  }
  int status = 0;
  rusage ru{};
  if (child < 0 || ::wait4(child, &status, 0, &ru) != child) return -1;
  if (usage) *usage = ru;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// 0 when `call` throws an Error of `code` whose one-line message has `text`.
int throws_with(Errc code, const std::string& text, const std::function<void()>& call) {
  try {
    call();
    return 1;
  } catch (const Error& e) {
    const std::string m = e.what();
    return e.code() == code && m.find(text) != std::string::npos && m.find('\n') == std::string::npos ? 0 : 2;
  }
}

// ---- a write that fails keeps the old file (fixes: checked writes) ----

class FailedWrites : public ::testing::TestWithParam<std::string> {
 protected:
  TempDir dir_;
};

// A file size limit as a full disk would: the encoded image is a few hundred
// bytes, less than stdio's buffer, so that OpenCV's imwrite could only have
// seen the failure at fclose, which it does not check.
TEST_P(FailedWrites, AFileSizeLimitFailsTheWriteAndKeepsTheOldFile) {
  const std::string ext = GetParam();
  if (ext != ".png" && !io::image_codecs_available()) GTEST_SKIP() << "TIFF is written by OpenCV";
  const std::string path = dir_.file("masks" + ext);
  io::write_array(path, u16_image({8, 8}, 1).view());
  const auto old_bytes = read_file_bytes(path);
  const int rc = in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of killing
    const rlimit limit{100, 100};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    return throws_with(Errc::io, "cannot write '" + path + "': File too large; raise the file size limit", [&] {
      io::write_array(path, u16_image({24, 24}, 7).view());
    });
  });
  EXPECT_EQ(rc, 0) << "1: the write did not fail; 2: not one io line naming the file, the reason and the fix";
  EXPECT_EQ(read_file_bytes(path), old_bytes);
  EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"masks" + ext}) << "no temporary is left";
}

// /dev/full: every write fails with ENOSPC. A link to it is written in place.
TEST_P(FailedWrites, AFullDeviceIsAnError) {
  const std::string ext = GetParam();
  if (ext != ".png" && !io::image_codecs_available()) GTEST_SKIP() << "TIFF is written by OpenCV";
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full here";
  const std::string link = dir_.file("full" + ext);
  fs::create_symlink("/dev/full", link);
  EXPECT_EQ(throws_with(Errc::io, "cannot write '" + link + "': No space left on device; free space",
                        [&] {
                          io::write_array(link, u16_image({8, 8}, 2).view());
                        }),
            0);
}

// Through the CLI: exit 1, one line with the reason and the fix, no "saved".
TEST_P(FailedWrites, CpipcSaveFailsInOneLineAndKeepsTheOldFile) {
  const std::string ext = GetParam();
  if (ext != ".png" && !io::image_codecs_available()) GTEST_SKIP() << "TIFF is written by OpenCV";
  const std::string name = cpipc::test::unique_name();
  io::write_npy(dir_.file("labels.npy"), u16_image({24, 24}, 3).view());
  const Publisher publisher(dir_.file("labels.npy"), name);
  const std::string out = dir_.file("out" + ext);
  io::write_array(out, u16_image({4, 4}, 4).view());
  const auto old_bytes = read_file_bytes(out);
  // 512 bytes (ulimit -f counts 512-byte blocks); an ignored SIGXFSZ stays
  // ignored across exec.
  const CommandResult r = run_cpipc({"save", name, out}, 30s, "trap '' XFSZ; ulimit -f 1");
  expect_failure(r, 1);
  EXPECT_NE(r.err.find("cannot write '" + out + "': File too large; raise the file size limit"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.out.find("saved"), std::string::npos) << r.out;
  EXPECT_EQ(read_file_bytes(out), old_bytes);
}

TEST_P(FailedWrites, AMissingDirectoryIsOneLineWithTheFix) {
  const std::string ext = GetParam();
  if (ext != ".png" && !io::image_codecs_available()) GTEST_SKIP() << "TIFF is written by OpenCV";
  const std::string name = cpipc::test::unique_name();
  io::write_npy(dir_.file("labels.npy"), u16_image({24, 24}, 3).view());
  const Publisher publisher(dir_.file("labels.npy"), name);
  const std::string out = dir_.file("no/such/dir/out" + ext);
  const CommandResult r = run_cpipc({"save", name, out});
  expect_failure(r, 1);
  EXPECT_NE(r.err.find("cannot write '" + out + "': No such file or directory; create the directory first"),
            std::string::npos)
      << r.err;
}

INSTANTIATE_TEST_SUITE_P(PngAndTiff, FailedWrites, ::testing::Values(".png", ".tif"),
                         [](const auto& info) { return info.param.substr(1); });

}  // namespace
