// The header parser treats everything in a segment as untrusted: a header
// copied out of a real segment is corrupted one field at a time, and each
// must be refused with Error(corrupt) naming the field, never a crash.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/ipc/format.hpp"
#include "cpipc/ipc/header.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "support/test_support.hpp"

namespace cpipc::ipc {
namespace {

using format::Header;
using test::read_file_bytes;
using test::unique_name;

// The first page of a real segment (uint32[64, 256], 4 slots, one frame
// published) as the file in /dev/shm holds it, and the object's size.
struct RealHeader {
  std::vector<std::byte> bytes;
  std::uint64_t object_bytes = 0;
};

RealHeader real_header() {
  const std::string name = unique_name();
  const std::int64_t shape[2] = {64, 256};
  SegmentWriter writer = SegmentWriter::create(name, TensorDesc::contiguous(kUInt32, shape));
  writer.publish(std::vector<std::byte>(writer.desc().nbytes(), std::byte{7}));
  RealHeader h;
  const std::vector<std::byte> object = read_file_bytes(shm_file_path(name));
  h.object_bytes = object.size();
  h.bytes.assign(object.begin(), object.begin() + format::kHeaderBytes);
  return h;
}

// `real` with one change made through the Header struct.
std::vector<std::byte> corrupted(const RealHeader& real, const std::function<void(Header&)>& change) {
  Header h;
  std::memcpy(&h, real.bytes.data(), sizeof h);
  change(h);
  std::vector<std::byte> bytes(sizeof h);
  std::memcpy(bytes.data(), &h, sizeof h);
  return bytes;
}

// Runs the parser; returns the Error it threw (code and message), failing
// the test if it accepted the bytes or threw anything else.
std::optional<Error> refusal(std::span<const std::byte> bytes, std::uint64_t object_bytes) {
  try {
    (void)parse_header(bytes, object_bytes);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "parse_header accepted the header";
  return std::nullopt;
}

TEST(ParseHeader, AcceptsTheHeaderOfARealSegment) {
  const RealHeader real = real_header();
  const SegmentLayout layout = parse_header(real.bytes, real.object_bytes);
  EXPECT_EQ(layout.abi_major, format::kAbiMajor);
  EXPECT_EQ(layout.slot_count, 4u);
  EXPECT_EQ(layout.total_bytes, real.object_bytes);
  EXPECT_EQ(layout.desc.to_string(), "uint32[64, 256]");
  EXPECT_EQ(layout.data_offset, 4096u);
  EXPECT_EQ(layout.data_stride, 65536u);
  EXPECT_EQ(layout.producer.pid, ::getpid());
}

TEST(ParseHeader, RefusesATruncatedHeader) {
  const RealHeader real = real_header();
  for (const std::size_t size : {std::size_t{0}, std::size_t{8}, std::size_t{512}, std::size_t{4095}}) {
    const auto e = refusal(std::span(real.bytes).first(size), real.object_bytes);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::corrupt);
    EXPECT_NE(std::string(e->what()).find("4096-byte header"), std::string::npos) << e->what();
  }
}

TEST(ParseHeader, RefusesAnObjectSmallerThanTheHeader) {
  const RealHeader real = real_header();
  const auto e = refusal(real.bytes, 100);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::corrupt);
  EXPECT_NE(std::string(e->what()).find("4096-byte header"), std::string::npos) << e->what();
}

TEST(ParseHeader, RefusesAnObjectWhoseSizeIsNotTotalBytes) {
  const RealHeader real = real_header();
  const auto e = refusal(real.bytes, real.object_bytes + 4096);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::corrupt);
  EXPECT_NE(std::string(e->what()).find("total_bytes"), std::string::npos) << e->what();
}

// One corrupted field, and the words the refusal must contain.
struct Corruption {
  const char* name;
  std::function<void(Header&)> change;
  const char* names_field;
};

class ParseHeaderRefuses : public ::testing::TestWithParam<Corruption> {};

TEST_P(ParseHeaderRefuses, TheCorruptedFieldByName) {
  static const RealHeader real = real_header();
  const std::vector<std::byte> bytes = corrupted(real, GetParam().change);
  const auto e = refusal(bytes, real.object_bytes);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::corrupt);
  EXPECT_NE(std::string(e->what()).find(GetParam().names_field), std::string::npos) << e->what();
}

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

INSTANTIATE_TEST_SUITE_P(
    Fields, ParseHeaderRefuses,
    ::testing::Values(
        Corruption{"wrong_magic", [](Header& h) { h.magic[0] = 'X'; }, "magic"},
        Corruption{"zero_magic", [](Header& h) { std::memset(h.magic, 0, sizeof h.magic); }, "magic"},
        Corruption{"abi_major_2", [](Header& h) { h.abi_major = 2; }, "ABI version 2.0"},
        Corruption{"header_bytes", [](Header& h) { h.header_bytes = 8192; }, "header_bytes"},
        Corruption{"slot_record_bytes", [](Header& h) { h.slot_record_bytes = 64; }, "slot_record_bytes"},
        Corruption{"slots_offset", [](Header& h) { h.slots_offset = 4000; }, "slots_offset"},
        Corruption{"lease_count", [](Header& h) { h.lease_count = 1000; }, "lease table"},
        Corruption{"total_bytes", [](Header& h) { h.total_bytes += 4096; }, "total_bytes"},
        Corruption{"slot_count_0", [](Header& h) { h.slot_count = 0; }, "slot_count 0"},
        Corruption{"slot_count_9", [](Header& h) { h.slot_count = 9; }, "slot_count 9"},
        Corruption{"unsupported_dtype_bits", [](Header& h) { h.dtype_bits = 12; }, "unsupported dtype"},
        Corruption{"unsupported_dtype_code", [](Header& h) { h.dtype_code = 3; }, "unsupported dtype"},
        Corruption{"dtype_lanes", [](Header& h) { h.dtype_lanes = 4; }, "unsupported dtype"},
        Corruption{"ndim_5", [](Header& h) { h.ndim = 5; }, "ndim 5"},
        Corruption{"shape_beyond_ndim", [](Header& h) { h.shape[3] = 1; }, "beyond ndim"},
        Corruption{"negative_extent", [](Header& h) { h.shape[0] = -64; }, "negative shape"},
        Corruption{"shape_x_itemsize_not_frame_bytes", [](Header& h) { h.frame_bytes -= 4; }, "frame_bytes"},
        Corruption{"shape_grown_past_frame_bytes", [](Header& h) { h.shape[0] = 65; }, "frame_bytes"},
        Corruption{"shape_overflows_int64", [](Header& h) { h.shape[1] = kInt64Max; }, "shape overflows"},
        // Found by fuzz_header: 0 bytes in all, but (2^61 - 1) x 5 overflows int64 on the way.
        Corruption{"shape_with_a_zero_overflows_int64",
                   [](Header& h) {
                     h.ndim = 3;
                     h.shape[0] = (std::int64_t{1} << 61) - 1;
                     h.shape[1] = 5;
                     h.shape[2] = 0;
                     h.strides[0] = h.strides[1] = h.strides[2] = 0;
                     h.frame_bytes = 0;
                   },
                   "shape overflows"},
        Corruption{"shape_x_itemsize_overflows",
                   [](Header& h) {
                     h.shape[0] = std::int64_t{1} << 31;
                     h.shape[1] = std::int64_t{1} << 31;
                     h.strides[0] = std::int64_t{1} << 31;
                   },
                   "shape x itemsize overflows"},
        Corruption{"strides_out_of_bounds", [](Header& h) { h.strides[0] = 257; }, "strides reach outside"},
        Corruption{"strides_overflow", [](Header& h) { h.strides[0] = kInt64Max; }, "strides overflow"},
        Corruption{"data_offset_in_header", [](Header& h) { h.data_offset = 0; }, "data_offset"},
        Corruption{"data_offset_unaligned", [](Header& h) { h.data_offset = 4097; }, "data_offset"},
        Corruption{"data_stride_too_small", [](Header& h) { h.data_stride = 4096; }, "data_stride"},
        Corruption{"data_stride_zero", [](Header& h) { h.data_stride = 0; }, "data_stride"},
        Corruption{"data_stride_unaligned", [](Header& h) { h.data_stride = 65536 + 8; }, "data_stride"},
        Corruption{"slot_regions_past_the_end", [](Header& h) { h.data_stride *= 2; }, "slot regions end at"},
        Corruption{"slot_regions_overflow", [](Header& h) { h.data_stride = std::uint64_t{1} << 62; },
                   "slot regions overflow"},
        Corruption{"slot_host_offset", [](Header& h) { h.slots[2].host_offset += 4096; }, "slot 2 host region"},
        Corruption{"slot_host_bytes", [](Header& h) { h.slots[1].host_bytes = 1; }, "slot 1 host region"},
        Corruption{"export_kind", [](Header& h) { h.export_kind = 7; }, "export_kind"},
        Corruption{"producer_pid_zero", [](Header& h) { h.producer_pid = 0; }, "producer_pid"},
        Corruption{"state", [](Header& h) { h.state = 9; }, "state 9"},
        Corruption{"latest_slot_out_of_range", [](Header& h) { h.latest_slot = 4; }, "latest_slot 4"}),
    [](const ::testing::TestParamInfo<Corruption>& info) { return std::string(info.param.name); });

TEST(ParseHeader, AcceptsNoLatestSlotBeforeTheFirstFrame) {
  static const RealHeader real = real_header();
  const std::vector<std::byte> bytes = corrupted(real, [](Header& h) { h.latest_slot = format::kNoSlot; });
  EXPECT_NO_THROW((void)parse_header(bytes, real.object_bytes));
}

// Random byte damage anywhere in the header: the parser throws Error or
// returns a layout whose every slot lies inside the object; nothing else.
TEST(ParseHeader, SurvivesRandomDamageWithoutCrashing) {
  const RealHeader real = real_header();
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<std::size_t> offset(0, format::kHeaderBytes - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> damage(1, 8);
  int refused = 0;
  for (int round = 0; round < 20000; ++round) {
    std::vector<std::byte> bytes = real.bytes;
    // Bias towards the 512 bytes of fixed fields, where damage matters.
    for (int i = damage(rng); i > 0; --i) {
      bytes[round % 2 ? offset(rng) % 512 : offset(rng)] = static_cast<std::byte>(byte(rng));
    }
    try {
      const SegmentLayout layout = parse_header(bytes, real.object_bytes);
      ASSERT_LE(layout.desc.nbytes(), layout.data_stride);
      ASSERT_LE(layout.slot_offset(layout.slot_count - 1) + layout.data_stride, real.object_bytes);
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), Errc::corrupt) << e.what();
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
}

// An shm object with the cpipc prefix and arbitrary contents, unlinked when it goes.
class RawObject {
 public:
  RawObject(std::string name, const std::vector<std::byte>& contents) : name_(std::move(name)) {
    const int fd = ::shm_open(shm_object_name(name_).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) throw std::runtime_error("shm_open failed for " + name_);
    const bool written = ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size());
    ::close(fd);
    if (!written) throw std::runtime_error("write failed for " + name_);
  }
  RawObject(const RawObject&) = delete;
  RawObject& operator=(const RawObject&) = delete;
  ~RawObject() { ::shm_unlink(shm_object_name(name_).c_str()); }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
};

// The Error that attaching to `name` throws.
std::optional<Error> attach_refusal(const std::string& name) {
  try {
    (void)SegmentReader::attach(name);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "attach accepted '" << name << "'";
  return std::nullopt;
}

std::vector<std::byte> random_bytes(std::size_t n) {
  std::mt19937 rng(7);
  std::vector<std::byte> bytes(n);
  for (auto& b : bytes) b = static_cast<std::byte>(rng() | 1);  // never a zero (= "being created") magic
  return bytes;
}

TEST(AttachToADamagedObject, GarbageIsRefusedAsCorrupt) {
  const RawObject garbage(unique_name(), random_bytes(3 * 4096));
  const auto e = attach_refusal(garbage.name());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::corrupt);
  const std::string what = e->what();
  EXPECT_NE(what.find("magic"), std::string::npos) << what;
  EXPECT_NE(what.find(garbage.name()), std::string::npos) << "the message names the segment: " << what;
}

TEST(AttachToADamagedObject, AnObjectShorterThanTheHeaderIsRefusedAsCorrupt) {
  const RawObject truncated(unique_name(), random_bytes(100));
  const auto e = attach_refusal(truncated.name());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::corrupt);
  EXPECT_NE(std::string(e->what()).find("less than the 4096-byte header"), std::string::npos) << e->what();
}

TEST(AttachToADamagedObject, AnEmptyObjectIsRefusedAsCorrupt) {
  const RawObject empty(unique_name(), {});
  const auto e = attach_refusal(empty.name());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::corrupt);
}

TEST(AttachToADamagedObject, AHeaderNeverCompletedIsRefusedAsCorrupt) {
  const RawObject zeros(unique_name(), std::vector<std::byte>(2 * 4096));
  const auto e = attach_refusal(zeros.name());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::corrupt);
  EXPECT_NE(std::string(e->what()).find("still being created"), std::string::npos) << e->what();
}

TEST(AttachToADamagedObject, AValidHeaderInATruncatedObjectIsRefusedAsCorrupt) {
  const RealHeader real = real_header();
  const RawObject cut(unique_name(), real.bytes);  // the header page alone, without its slots
  const auto e = attach_refusal(cut.name());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::corrupt);
  EXPECT_NE(std::string(e->what()).find("total_bytes"), std::string::npos) << e->what();
}

}  // namespace
}  // namespace cpipc::ipc
