// The other process of the multi-process tests: a producer or a reader of a
// segment, started with fork/exec and reporting one result line on stdout.
//
//   segment_peer produce NAME FRAMES BYTES SLOTS [interval_us]
//     Creates NAME as uint32[BYTES/4] with SLOTS ring slots, publishes frame 1,
//     prints "ready pid=P" and waits for SIGUSR1. Then publishes frames
//     2..FRAMES (pausing interval_us between them), prints
//     "produced frames=N overrides=M elapsed_ms=T stopped=0|1", and waits for
//     SIGTERM or SIGINT. SIGTERM/SIGINT at any point end it with status 0
//     (the segment is closed and unlinked).
//
//   segment_peer stall NAME
//     Creates NAME as uint32[1024] with ONE slot, publishes frame 1, then
//     begins frame 2 and leaves it unpublished (the latest slot's seq stays
//     odd, as with a producer stopped mid-write), prints "stalled pid=P" and
//     waits for SIGTERM or SIGINT (then abandons the frame, closes, unlinks).
//
//   segment_peer read NAME copy|lease|copy-spin|lease-spin UNTIL_FRAME [slow_ms [lease_ms]]
//     Attaches, prints "attached", then reads frames (wait_next, then
//     copy_latest or lease_latest; the -spin paths do not wait, they read the
//     latest frame again and again) until it has read frame UNTIL_FRAME or
//     later. With slow_ms it prints "holding id=N" and sleeps that long while
//     it holds each lease. Prints "read frames=.. torn=.. revoked=..
//     out_of_order=.. missing=.. last=.. end=ok|<errc> end_ns=<CLOCK_MONOTONIC>"
//     and exits 0, or with cpipc::exit_status() of the error that ended it.
//
// Every frame carries the pattern of support/frame_pattern.hpp.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/ipc/process.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "support/frame_pattern.hpp"

namespace {

using namespace cpipc;
using cpipc::test::as_words;
using cpipc::test::fill_pattern;
using cpipc::test::matches_pattern;

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_argument:
      return "invalid_argument";
    case Errc::not_found:
      return "not_found";
    case Errc::producer_gone:
      return "producer_gone";
    case Errc::timed_out:
      return "timed_out";
    case Errc::corrupt:
      return "corrupt";
    case Errc::exists:
      return "exists";
    case Errc::system:
      return "system";
    case Errc::io:
      return "io";
    case Errc::cancelled:
      return "cancelled";
    case Errc::out_of_memory:
      return "out_of_memory";
    case Errc::overloaded:
      return "overloaded";
  }
  return "unknown";
}

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

sigset_t control_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// The next control signal within `timeout_ns` (0: just look), or 0.
int next_signal(std::uint64_t timeout_ns) {
  const sigset_t set = control_signals();
  timespec ts{static_cast<time_t>(timeout_ns / 1000000000ull), static_cast<long>(timeout_ns % 1000000000ull)};
  const int sig = ::sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

bool is_stop(int sig) { return sig == SIGTERM || sig == SIGINT; }

// Waits for SIGTERM or SIGINT, or for SIGUSR1 too when `go_counts`.
int wait_signal(bool go_counts) {
  for (;;) {
    const int sig = next_signal(1'000'000'000ull);
    if (is_stop(sig) || (go_counts && sig == SIGUSR1)) return sig;
  }
}

void publish_pattern(ipc::SegmentWriter& writer) {
  ipc::FrameWriter frame = writer.begin_frame();
  auto* words = reinterpret_cast<std::uint32_t*>(frame.bytes().data());
  fill_pattern({words, frame.bytes().size() / sizeof(std::uint32_t)}, writer.frames_published() + 1);
  frame.publish();
}

int produce(const std::string& name, std::uint64_t frames, std::uint64_t bytes, std::uint32_t slots,
            std::uint64_t interval_us) {
  const sigset_t set = control_signals();
  ::sigprocmask(SIG_BLOCK, &set, nullptr);

  const std::int64_t shape[1] = {static_cast<std::int64_t>(bytes / sizeof(std::uint32_t))};
  ipc::SegmentOptions options;
  options.slots = slots;
  ipc::SegmentWriter writer =
      ipc::SegmentWriter::create(name, ipc::TensorDesc::contiguous(ipc::kUInt32, shape), options);
  publish_pattern(writer);
  say("ready pid=" + std::to_string(::getpid()));

  bool stopped = is_stop(wait_signal(/*go_counts=*/true));
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 2; i <= frames && !stopped; ++i) {
    publish_pattern(writer);
    stopped = is_stop(next_signal(interval_us * 1000));
  }
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  say("produced frames=" + std::to_string(writer.frames_published()) +
      " overrides=" + std::to_string(writer.lease_overrides()) + " elapsed_ms=" + std::to_string(ms) +
      " stopped=" + (stopped ? "1" : "0"));
  if (!stopped) wait_signal(/*go_counts=*/false);
  return 0;  // ~SegmentWriter closes and unlinks
}

int stall(const std::string& name) {
  const sigset_t set = control_signals();
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  const std::int64_t shape[1] = {1024};
  ipc::SegmentOptions options;
  options.slots = 1;  // begin_frame has to take the latest slot
  ipc::SegmentWriter writer =
      ipc::SegmentWriter::create(name, ipc::TensorDesc::contiguous(ipc::kUInt32, shape), options);
  publish_pattern(writer);
  ipc::FrameWriter frame = writer.begin_frame();
  say("stalled pid=" + std::to_string(::getpid()));
  wait_signal(/*go_counts=*/false);
  return 0;  // ~FrameWriter abandons the frame, ~SegmentWriter closes and unlinks
}

struct ReadTally {
  std::uint64_t frames = 0;
  std::uint64_t torn = 0;
  std::uint64_t revoked = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t missing = 0;
  std::uint64_t last = 0;

  void saw(std::uint64_t id) {
    if (id == last) return;  // a spinning reader reads a frame again
    if (id < last) ++out_of_order;
    last = id;
    ++frames;
  }
  [[nodiscard]] std::string line(const std::string& end) const {
    return "read frames=" + std::to_string(frames) + " torn=" + std::to_string(torn) +
           " revoked=" + std::to_string(revoked) + " out_of_order=" + std::to_string(out_of_order) +
           " missing=" + std::to_string(missing) + " last=" + std::to_string(last) + " end=" + end +
           " end_ns=" + std::to_string(ipc::monotonic_ns());
  }
};

int read(const std::string& name, const std::string& path, std::uint64_t until, long slow_ms, long lease_ms) {
  ReadTally tally;
  try {
    const ipc::SegmentReader reader = ipc::SegmentReader::attach(name);
    say("attached");
    std::vector<std::byte> copy;
    bool announced = false;
    const bool spin = path.ends_with("-spin");
    for (std::uint64_t reads = 1; tally.last < until; ++reads) {
      if (!spin) {
        reader.wait_next(tally.last, std::chrono::seconds(10));
      } else if (reads % 256 == 0) {
        reader.check_producer();  // a spinning reader never waits, so it looks now and then
      }
      if (path.starts_with("copy")) {
        const auto info = reader.copy_latest(copy);
        if (!info) {
          ++tally.missing;
          continue;
        }
        if (!matches_pattern(as_words(copy), info->frame_id)) ++tally.torn;
        tally.saw(info->frame_id);
        continue;
      }
      auto lease = reader.lease_latest(std::chrono::milliseconds(lease_ms));
      if (!lease) {
        ++tally.missing;
        continue;
      }
      const std::uint64_t id = lease->info().frame_id;
      if (slow_ms > 0) {
        if (!announced) say("holding id=" + std::to_string(id));
        announced = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms));
      }
      const bool whole = matches_pattern(as_words(lease->view().bytes()), id);
      // Like a seqlock: the data counts only if the lease still held after reading it.
      if (!lease->valid()) {
        ++tally.revoked;
      } else if (!whole) {
        ++tally.torn;
      }
      tally.saw(id);
    }
  } catch (const Error& e) {
    say(tally.line(errc_name(e.code())));
    std::fprintf(stderr, "segment_peer read: %s\n", e.what());
    return exit_status(e.code());
  }
  say(tally.line("ok"));
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: segment_peer produce NAME FRAMES BYTES SLOTS [interval_us]\n"
               "       segment_peer stall NAME\n"
               "       segment_peer read NAME copy|lease|copy-spin|lease-spin UNTIL_FRAME [slow_ms [lease_ms]]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto number = [&](std::size_t i, std::uint64_t fallback) {
    return i < args.size() ? std::strtoull(args[i].c_str(), nullptr, 10) : fallback;
  };
  try {
    if (args.size() >= 5 && args[0] == "produce") {
      return produce(args[1], number(2, 1), number(3, 4096), static_cast<std::uint32_t>(number(4, 4)), number(5, 0));
    }
    if (args.size() == 2 && args[0] == "stall") return stall(args[1]);
    const bool path_ok = args.size() >= 4 &&
                         (args[2] == "copy" || args[2] == "lease" || args[2] == "copy-spin" || args[2] == "lease-spin");
    if (args[0] == "read" && path_ok) {
      return read(args[1], args[2], number(3, 1), static_cast<long>(number(4, 0)), static_cast<long>(number(5, 2000)));
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "segment_peer: %s\n", e.what());
    return exit_status(e.code());
  }
  return usage();
}
