// A segment within one process: a writer and readers of the same name,
// publishing, copying, leasing, waiting, and the segment's lifetime.
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "support/test_support.hpp"

namespace cpipc::ipc {
namespace {

using namespace std::chrono_literals;
using test::shm_exists;
using test::unique_name;

// A uint16[32, 48] label image: a small mask frame.
TensorDesc masks_desc() {
  const std::int64_t shape[2] = {32, 48};
  return TensorDesc::contiguous(kUInt16, shape);
}

// Frame bytes in which every label is `value`.
std::vector<std::byte> frame_of(std::uint16_t value, const TensorDesc& desc = masks_desc()) {
  std::vector<std::byte> bytes(desc.nbytes());
  for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) std::memcpy(&bytes[i], &value, 2);
  return bytes;
}

SegmentWriter create(const std::string& name, std::uint32_t slots = 4) {
  SegmentOptions options;
  options.slots = slots;
  return SegmentWriter::create(name, masks_desc(), options);
}

// The code of the Error that `f` throws; fails the test if it throws none.
template <class F>
std::optional<Errc> error_code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no cpipc::Error was thrown";
  return std::nullopt;
}

TEST(Segment, CopyLatestReturnsThePublishedBytesAndMeta) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);

  const auto published = writer.publish(frame_of(42), {17, 30.5f, R"({"source":"cells.tif"})"});
  std::vector<std::byte> copy;
  const auto info = reader.copy_latest(copy);

  ASSERT_TRUE(info);
  EXPECT_EQ(copy, frame_of(42));
  EXPECT_EQ(info->frame_id, 1u);
  EXPECT_EQ(info->frame_id, published.frame_id);
  EXPECT_EQ(info->seq, published.seq);
  EXPECT_EQ(info->meta.object_count, 17u);
  EXPECT_FLOAT_EQ(info->meta.diameter, 30.5f);
  EXPECT_EQ(info->meta.json, R"({"source":"cells.tif"})");
  EXPECT_GT(info->publish_realtime_ns, 0u);
}

TEST(Segment, AReaderSeesTheWritersTensorDescription) {
  const std::string name = unique_name();
  const SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  EXPECT_TRUE(reader.desc().same_layout(masks_desc()));
  EXPECT_EQ(reader.layout().slot_count, 4u);
  EXPECT_EQ(reader.name(), name);
}

TEST(Segment, NothingToReadBeforeTheFirstPublish) {
  const std::string name = unique_name();
  const SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  std::vector<std::byte> copy;
  EXPECT_EQ(reader.copy_latest(copy), std::nullopt);
  EXPECT_EQ(reader.lease_latest(), std::nullopt);
}

TEST(Segment, LeaseLatestIsAZeroCopyViewOfTheSlot) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(5), {3, 0.0f, "{}"});

  const auto lease = reader.lease_latest();
  ASSERT_TRUE(lease);
  EXPECT_TRUE(lease->valid());
  EXPECT_EQ(lease->info().frame_id, 1u);
  EXPECT_EQ(lease->info().meta.object_count, 3u);
  EXPECT_TRUE(lease->view().desc.same_layout(masks_desc()));
  const auto bytes = lease->view().bytes();
  EXPECT_EQ(std::vector<std::byte>(bytes.begin(), bytes.end()), frame_of(5));
  EXPECT_EQ(lease->view().as<std::uint16_t>()[0], 5);
}

TEST(Segment, ALeaseViewIsTheSharedSlotNotACopy) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name, 1);  // one slot: every publish overwrites it
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(5));
  const auto lease = reader.lease_latest(10s);
  ASSERT_TRUE(lease);

  writer.publish(frame_of(6));

  EXPECT_EQ(lease->view().as<std::uint16_t>()[0], 6) << "the view shows the slot as the producer left it";
  EXPECT_FALSE(lease->valid()) << "and says that it no longer holds the leased frame";
  EXPECT_EQ(writer.lease_overrides(), 1u);
}

TEST(Segment, WaitNextReturnsTheNextFrame) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));

  std::thread publisher([&] {
    std::this_thread::sleep_for(50ms);
    writer.publish(frame_of(2));
  });
  const FrameInfo next = reader.wait_next(1, 5s);
  publisher.join();

  EXPECT_EQ(next.frame_id, 2u);
  std::vector<std::byte> copy;
  ASSERT_TRUE(reader.copy_latest(copy));
  EXPECT_EQ(copy, frame_of(2));
}

// A service promises each client its result until released: frames in `keep`
// are skipped while another slot is free, and taken (oldest first) only when
// nothing else is.
TEST(Segment, PublishSkipsKeptFramesWhileAnotherSlotIsFree) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name, 3);
  const SegmentReader reader = SegmentReader::attach(name);
  const FrameInfo first = writer.publish(frame_of(1));
  writer.publish(frame_of(2));
  writer.publish(frame_of(3));
  const std::uint64_t keep[] = {first.frame_id};
  const FrameInfo fourth = writer.publish(frame_of(4), {}, keep);  // the oldest is kept: frame 2's slot is taken
  EXPECT_NE(fourth.slot, first.slot);
  writer.publish(frame_of(5), {}, keep);  // then frame 3's
  std::vector<std::byte> copy;
  ASSERT_TRUE(reader.copy_frame(first.slot, first.seq, copy));
  EXPECT_EQ(copy, frame_of(1));
  // Every slot but the latest kept: the oldest goes, as without `keep`.
  const std::uint64_t both[] = {first.frame_id, fourth.frame_id};
  const FrameInfo sixth = writer.publish(frame_of(6), {}, both);
  EXPECT_EQ(sixth.slot, first.slot);
  EXPECT_FALSE(reader.copy_frame(first.slot, first.seq, copy));
  // Into a caller's buffer: exactly one frame's bytes, or a one-line refusal.
  std::vector<std::byte> mine(copy.size());
  ASSERT_TRUE(reader.copy_frame(sixth.slot, sixth.seq, std::span<std::byte>(mine)));
  EXPECT_EQ(mine, frame_of(6));
  ASSERT_TRUE(reader.copy_latest(std::span<std::byte>(mine)));
  EXPECT_EQ(mine, frame_of(6));
  std::vector<std::byte> small(copy.size() - 1);
  try {
    (void)reader.copy_latest(std::span<std::byte>(small));
    ADD_FAILURE() << "a buffer one byte short was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("the buffer given is"), std::string::npos) << e.what();
  }
}

// The device half as the ipc module sees it (module `cuda` fills it on a
// GPU): opaque handles per slot, written at creation, read back verbatim;
// the device-valid flag follows each publish.
TEST(Segment, DeviceExportFieldsRoundTrip) {
  const std::string name = unique_name();
  SegmentOptions options;
  options.slots = 2;
  options.export_kind = format::ExportKind::cuda_ipc;
  options.device_ordinal = 1;
  for (std::uint8_t i = 0; i < 16; ++i) options.device_uuid[i] = static_cast<std::uint8_t>(0xA0 + i);
  for (std::uint32_t s = 0; s < 2; ++s) {
    SlotExport e;
    e.mem_handle.fill(static_cast<std::uint8_t>(0x10 + s));
    e.event_handle.fill(static_cast<std::uint8_t>(0x20 + s));
    e.device_offset = 0;
    e.device_bytes = 2u << 20;
    options.slot_exports.push_back(e);
  }
  SegmentWriter writer = SegmentWriter::create(name, masks_desc(), options);
  const SegmentReader reader = SegmentReader::attach(name);
  EXPECT_EQ(reader.layout().export_kind, format::ExportKind::cuda_ipc);
  EXPECT_EQ(reader.layout().device_uuid, options.device_uuid);
  EXPECT_EQ(reader.layout().device_ordinal, 1);
  for (std::uint32_t s = 0; s < 2; ++s) {
    const auto e = reader.slot_export(s);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->mem_handle, options.slot_exports[s].mem_handle);
    EXPECT_EQ(e->event_handle, options.slot_exports[s].event_handle);
    EXPECT_EQ(e->device_bytes, 2u << 20);
  }
  EXPECT_EQ(error_code_of([&] { (void)reader.slot_export(2); }), Errc::invalid_argument);

  FrameWriter on_device = writer.begin_frame();
  on_device.set_device_valid(true);
  const FrameInfo a = on_device.publish();
  EXPECT_TRUE(a.device_valid);  // what the service tells its client (seen false on a GPU before)
  std::vector<std::byte> copy;
  EXPECT_TRUE(reader.copy_frame(a.slot, a.seq, copy)->device_valid);
  const FrameInfo b = writer.publish(frame_of(2));  // host only: the device buffer does not hold it
  EXPECT_FALSE(b.device_valid);
  EXPECT_FALSE(reader.copy_frame(b.slot, b.seq, copy)->device_valid);

  // A host-only segment has no exports, and refuses to be given any.
  const SegmentWriter plain = create(unique_name());
  EXPECT_FALSE(SegmentReader::attach(plain.name()).slot_export(0).has_value());
  SegmentOptions wrong = options;
  wrong.slot_exports.pop_back();
  EXPECT_EQ(error_code_of([&] { (void)SegmentWriter::create(unique_name(), masks_desc(), wrong); }),
            Errc::invalid_argument);
  wrong = options;
  wrong.slot_exports[0].device_bytes = 16;  // smaller than a frame
  EXPECT_EQ(error_code_of([&] { (void)SegmentWriter::create(unique_name(), masks_desc(), wrong); }),
            Errc::invalid_argument);
}

TEST(Segment, WaitNextReturnsAtOnceWhenANewerFrameIsThere) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));
  writer.publish(frame_of(2));
  EXPECT_EQ(reader.wait_next(0, 0ms).frame_id, 2u);
}

TEST(Segment, WaitNextTimesOut) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));

  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(error_code_of([&] { reader.wait_next(1, 150ms); }), Errc::timed_out);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 2s);
}

TEST(Segment, WaitNextReportsAClosedStream) {
  const std::string name = unique_name();
  std::optional<SegmentWriter> writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.reset();
  EXPECT_EQ(error_code_of([&] { reader.wait_next(0, 5s); }), Errc::producer_gone);
}

TEST(Segment, MetaJsonOver240BytesIsRejected) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));

  FrameMeta meta;
  meta.json = std::string(format::kMetaBytes + 1, 'x');
  EXPECT_EQ(error_code_of([&] { writer.publish(frame_of(2), meta); }), Errc::invalid_argument);

  // The refused frame is not published; the last good one still is.
  std::vector<std::byte> copy;
  const auto info = reader.copy_latest(copy);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->frame_id, 1u);
  EXPECT_EQ(copy, frame_of(1));
}

TEST(Segment, MetaJsonOfExactly240BytesFits) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  FrameMeta meta;
  meta.json = std::string(format::kMetaBytes, 'x');
  writer.publish(frame_of(1), meta);
  std::vector<std::byte> copy;
  EXPECT_EQ(reader.copy_latest(copy)->meta.json, meta.json);
}

TEST(Segment, PublishingTheWrongByteCountIsRejected) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  std::vector<std::byte> short_frame = frame_of(1);
  short_frame.pop_back();
  EXPECT_EQ(error_code_of([&] { writer.publish(short_frame); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { writer.publish(std::vector<std::byte>(masks_desc().nbytes() + 1)); }),
            Errc::invalid_argument);
  EXPECT_EQ(writer.frames_published(), 0u);
}

TEST(Segment, CreatingTheSameNameTwiceFailsWithExists) {
  const std::string name = unique_name();
  const SegmentWriter first = create(name);
  EXPECT_EQ(error_code_of([&] { (void)create(name); }), Errc::exists);
  EXPECT_TRUE(shm_exists(name)) << "the failed create must not unlink the first segment";
}

TEST(Segment, CreateRejectsBadOptions) {
  EXPECT_EQ(error_code_of([&] { (void)create(unique_name(), 0); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { (void)create(unique_name(), format::kMaxSlots + 1); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { (void)create("../escape"); }), Errc::invalid_argument);
  TensorDesc transposed = masks_desc();
  std::swap(transposed.strides[0], transposed.strides[1]);
  EXPECT_EQ(error_code_of([&] { (void)SegmentWriter::create(unique_name(), transposed); }), Errc::invalid_argument);
}

TEST(Segment, TheWriterUnlinksTheNameWhenDestroyed) {
  const std::string name = unique_name();
  {
    const SegmentWriter writer = create(name);
    EXPECT_TRUE(shm_exists(name));
  }
  EXPECT_FALSE(shm_exists(name));
  EXPECT_EQ(error_code_of([&] { (void)SegmentReader::attach(name); }), Errc::not_found);
}

TEST(Segment, AReaderKeepsItsMappingAfterTheNameIsGone) {
  const std::string name = unique_name();
  std::optional<SegmentWriter> writer = create(name);
  writer->publish(frame_of(9));
  const SegmentReader reader = SegmentReader::attach(name);
  writer.reset();

  std::vector<std::byte> copy;
  ASSERT_TRUE(reader.copy_latest(copy));
  EXPECT_EQ(copy, frame_of(9));
  EXPECT_EQ(error_code_of([&] { reader.check_producer(); }), Errc::producer_gone);
}

TEST(Segment, AttachingToNoSegmentFailsWithNotFound) {
  EXPECT_EQ(error_code_of([&] { (void)SegmentReader::attach(unique_name()); }), Errc::not_found);
}

TEST(Stream, ReusesTheSegmentWhileShapeAndDtypeStayTheSame) {
  Stream stream(unique_name());
  const TensorDesc desc = masks_desc();
  stream.publish(desc, frame_of(1));
  const SegmentReader reader = SegmentReader::attach(stream.name());
  stream.publish(desc, frame_of(2));
  stream.publish(desc, frame_of(3));

  EXPECT_EQ(stream.generations(), 1u);
  EXPECT_NO_THROW(reader.check_producer());
  std::vector<std::byte> copy;
  EXPECT_EQ(reader.copy_latest(copy)->frame_id, 3u);
  EXPECT_EQ(copy, frame_of(3));
}

TEST(Stream, ReCreatesTheSegmentWhenTheShapeChanges) {
  Stream stream(unique_name());
  stream.publish(masks_desc(), frame_of(1));
  const SegmentReader old_reader = SegmentReader::attach(stream.name());

  const std::int64_t bigger[2] = {64, 64};
  const TensorDesc new_desc = TensorDesc::contiguous(kUInt16, bigger);
  stream.publish(new_desc, frame_of(2, new_desc));

  EXPECT_EQ(stream.generations(), 2u);
  try {
    old_reader.check_producer();
    ADD_FAILURE() << "the old reader was not told the segment was replaced";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::producer_gone);
    EXPECT_NE(std::string(e.what()).find("re-created it with another shape or dtype"), std::string::npos) << e.what();
  }
  const SegmentReader new_reader = SegmentReader::attach(stream.name());
  EXPECT_TRUE(new_reader.desc().same_layout(new_desc));
  std::vector<std::byte> copy;
  ASSERT_TRUE(new_reader.copy_latest(copy));
  EXPECT_EQ(copy, frame_of(2, new_desc));
}

// A reader that sees `replaced` finds the successor at once: the stream
// creates it before it marks the old one. (Done the other way round, a
// reader that looks in between finds no segment and has to poll: this
// reader spins on the state, so it would look in between every time.)
TEST(Stream, AReaderThatSeesReplacedFindsTheSuccessorAtOnce) {
  Stream stream(unique_name());
  const std::int64_t bigger[2] = {64, 64};
  const TensorDesc descs[2] = {masks_desc(), TensorDesc::contiguous(kUInt16, bigger)};
  stream.publish(descs[0], frame_of(1, descs[0]));
  for (int round = 1; round <= 10; ++round) {
    const SegmentReader old_reader = SegmentReader::attach(stream.name());
    std::optional<Errc> attach_error;
    std::atomic<bool> spinning{false};
    std::thread watcher([&] {
      spinning = true;
      for (;;) {
        try {
          old_reader.check_producer();
        } catch (const Error&) {
          break;  // replaced
        }
      }
      try {
        (void)SegmentReader::attach(stream.name());
      } catch (const Error& e) {
        attach_error = e.code();
      }
    });
    while (!spinning) std::this_thread::yield();
    const TensorDesc& d = descs[round % 2];
    stream.publish(d, frame_of(static_cast<std::uint16_t>(round), d));
    watcher.join();
    ASSERT_FALSE(attach_error.has_value()) << "round " << round << ": the successor was not there yet";
  }
}

TEST(Stream, ReCreatesTheSegmentWhenTheDtypeChanges) {
  Stream stream(unique_name());
  stream.publish(masks_desc(), frame_of(1));
  const SegmentReader old_reader = SegmentReader::attach(stream.name());
  const std::int64_t shape[2] = {32, 48};
  const TensorDesc labels32 = TensorDesc::contiguous(kInt32, shape);
  stream.publish(labels32, std::vector<std::byte>(labels32.nbytes()));
  EXPECT_EQ(stream.generations(), 2u);
  EXPECT_EQ(error_code_of([&] { old_reader.check_producer(); }), Errc::producer_gone);
}

// 'cpipc rm', or Python's resource tracker, unlinks the name behind the
// producer's back: the next publish notices and re-creates the segment, so
// readers that attach later find the new frame (not "no segment named").
TEST(Stream, ReCreatesTheSegmentWhenItsNameWasUnlinkedBehindItsBack) {
  Stream stream(unique_name());
  const TensorDesc desc = masks_desc();
  stream.publish(desc, frame_of(1));
  const SegmentReader old_reader = SegmentReader::attach(stream.name());
  ASSERT_EQ(::shm_unlink(shm_object_name(stream.name()).c_str()), 0);
  ASSERT_FALSE(shm_exists(stream.name()));

  testing::internal::CaptureStderr();
  stream.publish(desc, frame_of(2));
  const std::string said = testing::internal::GetCapturedStderr();

  EXPECT_EQ(stream.generations(), 2u);
  EXPECT_NE(said.find("was unlinked by someone else; re-creating it"), std::string::npos) << said;
  ASSERT_TRUE(shm_exists(stream.name()));
  const SegmentReader reader = SegmentReader::attach(stream.name());
  std::vector<std::byte> copy;
  ASSERT_TRUE(reader.copy_latest(copy));
  EXPECT_EQ(copy, frame_of(2));
  // Readers of the unlinked object are sent on to the new one.
  EXPECT_EQ(error_code_of([&] { old_reader.check_producer(); }), Errc::producer_gone);

  // With the name ours again, publishing goes on in the same segment.
  stream.publish(desc, frame_of(3));
  EXPECT_EQ(stream.generations(), 2u);
  ASSERT_TRUE(reader.copy_latest(copy));
  EXPECT_EQ(copy, frame_of(3));
}

// After the unlink another producer took the name: it is not ours to
// replace. The stream refuses until the name is free again.
TEST(Stream, DoesNotReplaceAnotherSegmentThatTookItsName) {
  Stream stream(unique_name());
  stream.publish(masks_desc(), frame_of(1));
  ASSERT_EQ(::shm_unlink(shm_object_name(stream.name()).c_str()), 0);
  std::optional<SegmentWriter> other = create(stream.name());
  other->publish(frame_of(7));

  EXPECT_EQ(error_code_of([&] { stream.publish(masks_desc(), frame_of(2)); }), Errc::exists);
  EXPECT_EQ(stream.generations(), 1u);
  std::vector<std::byte> copy;
  ASSERT_TRUE(SegmentReader::attach(stream.name()).copy_latest(copy));
  EXPECT_EQ(copy, frame_of(7));

  other.reset();  // its producer ends and frees the name
  stream.publish(masks_desc(), frame_of(2));
  EXPECT_EQ(stream.generations(), 2u);
  ASSERT_TRUE(SegmentReader::attach(stream.name()).copy_latest(copy));
  EXPECT_EQ(copy, frame_of(2));
}

TEST(FrameWriter, AnAbandonedFrameLeavesThePreviousFrameReadable) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1), {1, 0.0f, "{\"frame\":1}"});
  {
    FrameWriter frame = writer.begin_frame();
    std::memset(frame.bytes().data(), 0xEE, frame.bytes().size());
  }  // destroyed without publish

  std::vector<std::byte> copy;
  const auto info = reader.copy_latest(copy);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->frame_id, 1u);
  EXPECT_EQ(info->meta.json, "{\"frame\":1}");
  EXPECT_EQ(copy, frame_of(1));
  EXPECT_EQ(writer.frames_published(), 1u);

  // And the writer goes on: the next frame gets the next id.
  EXPECT_EQ(writer.publish(frame_of(2)).frame_id, 2u);
}

TEST(FrameWriter, OnlyOneFrameIsWrittenAtATime) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const FrameWriter frame = writer.begin_frame();
  EXPECT_EQ(error_code_of([&] { (void)writer.begin_frame(); }), Errc::invalid_argument);
}

TEST(Lease, AHeldLeaseMakesTheProducerWriteOtherSlots) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name, 4);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));
  const auto lease = reader.lease_latest(10s);
  ASSERT_TRUE(lease);

  for (std::uint16_t i = 2; i <= 40; ++i) {
    const FrameInfo info = writer.publish(frame_of(i));
    EXPECT_NE(info.slot, lease->info().slot) << "frame " << i << " was written into the leased slot";
  }

  EXPECT_EQ(writer.lease_overrides(), 0u);
  EXPECT_TRUE(lease->valid());
  const auto bytes = lease->view().bytes();
  EXPECT_EQ(std::vector<std::byte>(bytes.begin(), bytes.end()), frame_of(1));
}

TEST(Lease, WithTwoSlotsTheProducerOverridesTheLeaseInsteadOfBlocking) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name, 2);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));
  const auto lease = reader.lease_latest(10s);
  ASSERT_TRUE(lease);

  writer.publish(frame_of(2));  // the other slot: the lease still holds
  EXPECT_TRUE(lease->valid());
  EXPECT_EQ(writer.lease_overrides(), 0u);

  const FrameInfo third = writer.publish(frame_of(3));  // only the leased slot is left
  EXPECT_EQ(third.slot, lease->info().slot);
  EXPECT_EQ(writer.lease_overrides(), 1u);
  EXPECT_FALSE(lease->valid());
}

TEST(Lease, AnExpiredLeaseNoLongerProtectsItsSlot) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name, 2);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));
  const auto lease = reader.lease_latest(20ms);
  ASSERT_TRUE(lease);
  writer.publish(frame_of(2));

  std::this_thread::sleep_for(60ms);
  const FrameInfo third = writer.publish(frame_of(3));

  EXPECT_EQ(third.slot, lease->info().slot);
  EXPECT_EQ(writer.lease_overrides(), 0u) << "an expired lease is not overridden, it is simply gone";
  EXPECT_FALSE(lease->valid());
}

TEST(Lease, RenewKeepsTheLeaseAlive) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name, 2);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));
  auto lease = reader.lease_latest(100ms);
  ASSERT_TRUE(lease);
  writer.publish(frame_of(2));
  lease->renew(10s);

  std::this_thread::sleep_for(200ms);
  writer.publish(frame_of(3));

  EXPECT_EQ(writer.lease_overrides(), 1u) << "the renewed lease still protected its slot";
  EXPECT_FALSE(lease->valid());
}

TEST(Lease, AReleasedLeaseFreesItsEntry) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));
  {
    const auto lease = reader.lease_latest(10s);
    EXPECT_EQ(reader.status().active_leases, 1u);
  }
  EXPECT_EQ(reader.status().active_leases, 0u);
}

TEST(Lease, AllSixteenEntriesTakenIsAClearError) {
  const std::string name = unique_name();
  SegmentWriter writer = create(name);
  const SegmentReader reader = SegmentReader::attach(name);
  writer.publish(frame_of(1));
  std::vector<FrameLease> leases;
  for (std::uint32_t i = 0; i < format::kLeaseCount; ++i) leases.push_back(*reader.lease_latest(10s));
  EXPECT_EQ(error_code_of([&] { (void)reader.lease_latest(10s); }), Errc::system);
  leases.pop_back();
  EXPECT_TRUE(reader.lease_latest(10s));
}

}  // namespace
}  // namespace cpipc::ipc
