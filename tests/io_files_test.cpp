// The files io meets outside the happy path, each with a real file, a real
// limit or a real process: a write that fails (file size limit, a full
// device) keeps the old file and says so in one line; special files given as
// images are refused at once; TIFFs of more than 4 samples are read; and an
// image too large for the process is refused from its header, before it is
// decoded.
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
#include "cpipc/io/image.hpp"
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

// ---- special files are refused at once (fix: RegularFile) ----

class SpecialFiles : public ::testing::Test {
 protected:
  TempDir dir_;
};

// A FIFO with no writer: opening it for reading would wait forever.
TEST_F(SpecialFiles, AFifoIsRefusedAtOnceByTheCli) {
  const std::string fifo = dir_.file("cells.png");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const auto start = std::chrono::steady_clock::now();
  const CommandResult r = run_cpipc({"publish", fifo, cpipc::test::unique_name()}, 10s);
  expect_failure(r, 2);
  EXPECT_NE(r.err.find("'" + fifo + "': it is a FIFO (named pipe), not an image file"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(SpecialFiles, EveryReaderRefusesAFifoAtOnce) {
  for (const char* name : {"a.tif", "a.png", "a.npy"}) {
    const std::string fifo = dir_.file(name);
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
    const std::string why = "it is a FIFO (named pipe), not an image file";
    EXPECT_EQ(
        in_child([&] { return throws_with(Errc::invalid_argument, why, [&] { (void)io::read_frames(fifo); }); }, 5), 0)
        << "read_frames " << name << " (142: it blocked)";
    EXPECT_EQ(
        in_child([&] { return throws_with(Errc::invalid_argument, why, [&] { (void)io::read_array(fifo); }); }, 5), 0)
        << "read_array " << name << " (142: it blocked)";
  }
}

// /dev/zero would be read forever by a reader that trusts its size; a
// socket cannot be opened at all. Both are named for what they are.
TEST_F(SpecialFiles, DevicesAndSocketsAreNamed) {
  fs::create_symlink("/dev/zero", dir_.file("zero.tif"));
  fs::create_symlink("/dev/zero", dir_.file("zero.npy"));
  for (const char* name : {"zero.tif", "zero.npy"}) {
    EXPECT_EQ(in_child([&] {
                return throws_with(Errc::invalid_argument, "it is a character device, not an image file",
                                   [&] { (void)io::read_frames(dir_.file(name)); });
              }),
              0)
        << name;
  }
  const std::string sock = dir_.file("s.png");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  EXPECT_EQ(
      throws_with(Errc::invalid_argument, "it is a socket, not an image file", [&] { (void)io::read_frames(sock); }),
      0);
  ::close(fd);
}

// ---- TIFFs of more than 4 samples per pixel ----

class ManySamples : public ::testing::Test {
 protected:
  std::string file(const std::string& name, const std::vector<TiffPage>& pages, bool big_endian = false) {
    write_bytes(dir_.file(name), tiff_file(big_endian, pages));
    return dir_.file(name);
  }
  TempDir dir_;
};

// Channels last, BlackIsZero with ExtraSamples, as tifffile writes a
// multi-channel microscopy image: every channel, every value.
TEST_F(ManySamples, EightAndSixtyFiveChannelTiffsAreReadExactly) {
  for (const std::int64_t channels : {8, 65}) {
    for (const bool big_endian : {false, true}) {
      TiffPage page(u16_image({13, 11, channels}, static_cast<std::uint32_t>(channels)));
      page.extra_samples = true;
      page.rows_per_strip = 5;
      TiffPage second(u16_image({13, 11, channels}, 99));
      second.extra_samples = true;
      const std::string path =
          file("c" + std::to_string(channels) + (big_endian ? "mm" : "ii") + ".tif", {page, second}, big_endian);
      SCOPED_TRACE(path);
      try {
        // Two pages of one shape and no description: a z-stack of two planes.
        const io::ImageFile f = io::read_image_file(path);
        ASSERT_EQ(f.frames.size(), 1u);
        EXPECT_EQ(f.frames[0].axes, "ZYXC");
        EXPECT_EQ(f.frames[0].array.desc.to_string(), "uint16[2, 13, 11, " + std::to_string(channels) + "]");
        std::vector<std::byte> both = page.pixels.data;
        both.insert(both.end(), second.pixels.data.begin(), second.pixels.data.end());
        EXPECT_TRUE(f.frames[0].array.data == both) << "the pixels differ";
      } catch (const Error& e) {
        ADD_FAILURE() << e.what();
      }
    }
  }
}

TEST_F(ManySamples, EightChannelUint8IsReadExactly) {
  TiffPage page(u8_image({9, 7, 8}, 5));
  page.extra_samples = true;
  const std::string path = file("c8.tif", {page});
  try {
    const std::vector<io::Array> frames = io::read_frames(path);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].desc.to_string(), "uint8[9, 7, 8]");
    EXPECT_TRUE(frames[0].data == page.pixels.data);
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
}

// ---- images too large for the process, refused from their headers ----

// A classic TIFF of one uncompressed strip of `width` x `height` uint16
// whose pixels are a hole: gigabytes long, a few blocks on disk.
void write_sparse_tiff(const std::string& path, std::uint32_t width, std::uint32_t height) {
  cpipc::test::TiffBytes b(false);
  b.str() = "II";
  b.u16(42);
  b.u32(8);
  const std::vector<std::pair<std::uint16_t, std::uint32_t>> tags = {
      {256, width}, {257, height}, {258, 16},
      {259, 1},     {262, 1},      {273, 4096},
      {277, 1},     {278, height}, {279, width * height * 2},
      {284, 1},     {339, 1}};
  b.u16(static_cast<std::uint32_t>(tags.size()));
  for (const auto& [tag, value] : tags) {
    b.u16(tag);
    b.u16(4);
    b.u32(1);
    b.u32(value);
  }
  b.u32(0);
  write_bytes(path, b.str());
  ASSERT_EQ(::truncate(path.c_str(), 4096 + off_t{width} * height * 2), 0) << std::strerror(errno);
}

// CRC-32 of a PNG chunk's type and data (bitwise; the chunks here are tiny).
std::uint32_t png_crc(const std::string& bytes) {
  std::uint32_t c = 0xffffffffu;
  for (const char ch : bytes) {
    c ^= static_cast<unsigned char>(ch);
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

// A valid PNG header whose IHDR says `width` x `height` 16-bit gray, then an
// empty IDAT: the decoder allocates the image before it finds no pixels.
void write_huge_png_header(const std::string& path, std::uint32_t width, std::uint32_t height) {
  std::string b("\x89PNG\r\n\x1a\n", 8);
  const auto be32 = [](std::string& s, std::uint32_t v) {
    for (int k = 24; k >= 0; k -= 8) s += static_cast<char>(v >> k);
  };
  const auto chunk = [&](const std::string& type, const std::string& data) {
    be32(b, static_cast<std::uint32_t>(data.size()));
    b += type + data;
    be32(b, png_crc(type + data));
  };
  std::string ihdr;
  be32(ihdr, width);
  be32(ihdr, height);
  ihdr += std::string("\x10\x00\x00\x00\x00", 5);  // 16 bits, gray, deflate, filter 0, no interlace
  chunk("IHDR", ihdr);
  chunk("IDAT", std::string("\x78\x01\x03\x00\x00\x00\x00\x01", 8));  // an empty zlib stream
  chunk("IEND", "");
  write_bytes(path, b);
}

class TooLarge : public ::testing::Test {
 protected:
  TempDir dir_;
};

// 30000 x 30000 uint16 is 1.8 GB decoded (fewer pixels than OpenCV's own
// limit). Under `ulimit -v` of 1.5 GB the process cannot hold that: exit 5
// at once, without decoding.
TEST_F(TooLarge, CpipcPublishRefusesFromTheHeaderUnderUlimitV) {
  write_sparse_tiff(dir_.file("big.tif"), 30000, 30000);
  write_huge_png_header(dir_.file("big.png"), 30000, 30000);
  for (const char* name : {"big.tif", "big.png"}) {
    if (std::string(name) == "big.png" && !io::image_codecs_available()) continue;
    const auto start = std::chrono::steady_clock::now();
    const CommandResult r =
        run_cpipc({"publish", dir_.file(name), cpipc::test::unique_name()}, 30s, "ulimit -v 1500000");
    expect_failure(r, 5);
    EXPECT_NE(r.err.find("decoding it needs "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("of memory available; crop it"), std::string::npos) << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << name;
  }
}

// The library, in a child whose address space is its own plus 1 GiB:
// Error(out_of_memory), and the child never grew (max RSS well under the
// 1.8 GB of pixels).
TEST_F(TooLarge, ReadFramesChecksMemoryBeforeDecoding) {
  write_sparse_tiff(dir_.file("big.tif"), 30000, 30000);
  (void)io::image_codecs_available();  // the plugin is loaded before the limit
  rusage usage{};
  const int rc = in_child(
      [&] {
        std::ifstream status("/proc/self/status");
        std::string line;
        rlim_t size_kib = 0;
        while (std::getline(status, line)) {
          if (line.rfind("VmSize:", 0) == 0) size_kib = std::stoull(line.substr(7));
        }
        const rlim_t bytes = (size_kib + 1024 * 1024) * 1024;
        const rlimit limit{bytes, bytes};
        if (::setrlimit(RLIMIT_AS, &limit) != 0) return 3;
        return throws_with(Errc::out_of_memory, "decoding it needs",
                           [&] { (void)io::read_frames(dir_.file("big.tif")); });
      },
      20, &usage);
  EXPECT_EQ(rc, 0) << "1: it was read; 2: not an out-of-memory error";
  EXPECT_LT(usage.ru_maxrss, 400 * 1024) << "KiB: the pixels were decoded";
}

}  // namespace
