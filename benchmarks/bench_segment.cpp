// Segment benchmarks, run by benchmarks/run_segment_bench.sh (see README.md there).
//
//   attach/<side>           SegmentReader::attach + detach on an existing segment
//   checksum/<side>         the readers' checksum alone (the seed baseline times numpy's)
//   check_producer          the liveness check wait_next makes each time it goes to sleep
//   wake_latency            publish -> a reader blocked in wait_next in another process
//                           returns (CLOCK_MONOTONIC: FrameInfo::publish_monotonic_ns)
//   fps/<mode>/<side>/<n>   <side>x<side> uint32 frames to n reader processes that lease
//                           (zero-copy) or copy every frame they get and checksum it
//
// Reader processes are this executable started again with --reader. --quick
// shortens every benchmark to a smoke run.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/process.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "cpipc/util/child_process.hpp"

namespace {

using cpipc::ipc::monotonic_ns;
using cpipc::ipc::SegmentReader;
using cpipc::ipc::SegmentWriter;
using cpipc::util::ChildProcess;
using namespace std::chrono_literals;

// The ring length; the seed baseline keeps as many frames in flight.
constexpr std::uint32_t kSlots = 4;
constexpr int kMaxReaders = 64;  // room in the counters; the benchmarks start 1 or 8

struct Settings {
  double warmup_s = 0.3;  // publishing before an fps window opens
  double window_s = 2.0;  // the measured part of an fps run
  int wake_samples = 2000;
  int attach_samples = 5000;
};
Settings g_settings;

// A label image like a Cellpose mask: 16x16 blocks of labels 0..999. Odd and
// even frames differ (`parity`), so a frame torn between two publishes fails
// its checksum. The seed baseline builds the same frames.
std::vector<std::uint32_t> make_frame(std::int64_t side, int parity = 0) {
  std::vector<std::uint32_t> frame(static_cast<std::size_t>(side * side));
  for (std::int64_t y = 0; y < side; ++y) {
    for (std::int64_t x = 0; x < side; ++x) frame[y * side + x] = ((y / 16) * 131 + (x / 16) * 7 + parity) % 1000;
  }
  return frame;
}

// The sum of the elements modulo 2^32: one read pass over the frame, the
// value numpy's arr.sum(dtype=np.uint32) gives on the seed's side.
std::uint32_t checksum(std::span<const std::byte> bytes) {
  const auto* p = reinterpret_cast<const std::uint32_t*>(bytes.data());
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < bytes.size() / 4; ++i) sum += p[i];
  return sum;
}

std::uint32_t frame_checksum(std::int64_t side, int parity) {
  const auto frame = make_frame(side, parity);
  return checksum(std::as_bytes(std::span(frame)));
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  const auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// --- cleanup: no shm object and no process outlives the benchmark ---------

// The shm object of the live segment. A fatal signal skips the writer's
// destructor, so the handler unlinks it; readers die with us (PDEATHSIG).
char g_live_object[256] = {};

void unlink_and_reraise(int sig) {
  if (g_live_object[0] != '\0') ::shm_unlink(g_live_object);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// A segment of side x side uint32 frames under a name unique to this process.
class BenchSegment {
 public:
  explicit BenchSegment(std::int64_t side) : writer_(create(side)) {}
  ~BenchSegment() {
    writer_.close();
    g_live_object[0] = '\0';
  }
  SegmentWriter& writer() { return writer_; }
  const std::string& name() const { return writer_.name(); }

 private:
  static SegmentWriter create(std::int64_t side) {
    static int count = 0;
    const std::string name = "bench-" + std::to_string(::getpid()) + "-" + std::to_string(++count);
    const std::string object = cpipc::ipc::shm_object_name(name);
    std::snprintf(g_live_object, sizeof g_live_object, "%s", object.c_str());  // before it exists
    const std::int64_t shape[2] = {side, side};
    try {
      return SegmentWriter::create(name, cpipc::ipc::TensorDesc::contiguous(cpipc::ipc::kUInt32, shape),
                                   {.slots = kSlots});
    } catch (...) {
      g_live_object[0] = '\0';
      throw;
    }
  }
  SegmentWriter writer_;
};

// Frame counters the readers bump and the producer samples: a memfd that the
// reader processes inherit, so there is no name to clean up.
class ReaderCounters {
 public:
  ReaderCounters() : fd_(::memfd_create("cpipc-bench-counters", 0)) {
    if (fd_.get() < 0 || ::ftruncate(fd_.get(), kBytes) != 0) cpipc::throw_errno("memfd for counters", errno);
    map_ = cpipc::ipc::detail::Mapping(fd_.get(), kBytes, /*writable=*/true);
  }
  // A reader's view of the counters behind `fd` (inherited from the producer).
  explicit ReaderCounters(int fd) : map_(fd, kBytes, /*writable=*/true) {}

  int fd() const { return fd_.get(); }
  std::atomic_ref<std::uint64_t> operator[](int reader) const {
    return std::atomic_ref<std::uint64_t>(reinterpret_cast<std::uint64_t*>(map_.data())[reader]);
  }

 private:
  static constexpr std::size_t kBytes = kMaxReaders * sizeof(std::uint64_t);
  cpipc::ipc::detail::UniqueFd fd_;
  cpipc::ipc::detail::Mapping map_;
};

// --- reader processes -------------------------------------------------------

// bench_segment --reader NAME MODE COUNTERS_FD INDEX PARENT_PID
//   MODE wake:  print the publish-to-wake-up latency (ns) of every frame
//   MODE lease / copy: lease or copy each frame it gets, checksum it, count it
// Prints "ready" once attached, and "done DELIVERED BAD TAKEN_BACK" when the
// producer closes the segment.
int reader_main(int argc, char** argv) {
  if (argc != 7) return 2;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != std::stoi(argv[6])) return 1;  // the producer died before prctl
  const std::string mode = argv[3];
  const int index = std::stoi(argv[5]);
  const auto reader = SegmentReader::attach(argv[2]);
  const ReaderCounters counters(std::stoi(argv[4]));
  const std::uint32_t expected[2] = {frame_checksum(reader.desc().shape[0], 0),
                                     frame_checksum(reader.desc().shape[0], 1)};
  std::printf("ready\n");
  std::fflush(stdout);

  std::uint64_t last = 0, delivered = 0, bad = 0, taken_back = 0;
  std::vector<std::byte> copy;
  try {
    for (;;) {
      const auto info = reader.wait_next(last, 60s);
      if (mode == "wake") {
        const std::uint64_t now = monotonic_ns();
        std::printf("%llu\n", static_cast<unsigned long long>(now - info.publish_monotonic_ns));
        std::fflush(stdout);
        last = info.frame_id;
        continue;
      }
      std::uint32_t sum = 0;
      if (mode == "lease") {
        const auto lease = reader.lease_latest();
        if (!lease) continue;  // only after an abandoned write, which this producer never does
        sum = checksum(lease->view().bytes());
        last = lease->info().frame_id;
        // Overwritten while we read (the producer never waits): not delivered.
        if (!lease->valid()) {
          ++taken_back;
          continue;
        }
      } else {
        const auto got = reader.copy_latest(copy);
        if (!got) continue;
        last = got->frame_id;
        sum = checksum(copy);
      }
      bad += sum != expected[last % 2];
      counters[index].store(++delivered, std::memory_order_relaxed);
    }
  } catch (const cpipc::Error& e) {
    if (e.code() != cpipc::Errc::producer_gone) throw;
  }
  std::printf("done %llu %llu %llu\n", static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(bad),
              static_cast<unsigned long long>(taken_back));
  return 0;
}

std::vector<ChildProcess> start_readers(const std::string& segment, const char* mode, int count,
                                        const ReaderCounters& counters) {
  std::vector<ChildProcess> readers;
  for (int i = 0; i < count; ++i) {
    readers.emplace_back(std::vector<std::string>{cpipc::util::self_executable(), "--reader", segment, mode,
                                                  std::to_string(counters.fd()), std::to_string(i),
                                                  std::to_string(::getpid())});
  }
  for (auto& reader : readers) {
    if (reader.read_line(20s) != "ready") throw std::runtime_error("a reader process did not start");
  }
  return readers;
}

// Waits until the reader sleeps in its futex wait, so that every sample times
// a real wake-up rather than a reader still on its way into wait_next.
void wait_until_asleep(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/wchan";
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    std::ifstream in(path);
    std::string wchan;
    std::getline(in, wchan);
    if (wchan.find("futex") != std::string::npos) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("the reader never slept in a futex wait (" + path + ": '" + wchan + "')");
    }
    std::this_thread::sleep_for(20us);
  }
}

// --- benchmarks ---------------------------------------------------------------

void attach(benchmark::State& state, std::int64_t side) {
  BenchSegment segment(side);
  const auto frame = make_frame(side);
  segment.writer().publish(std::as_bytes(std::span(frame)));
  std::vector<double> samples_us;
  for (auto _ : state) {
    const std::uint64_t t0 = monotonic_ns();
    {
      const auto reader = SegmentReader::attach(segment.name());
      benchmark::DoNotOptimize(reader.layout().total_bytes);
    }  // detach
    const std::uint64_t ns = monotonic_ns() - t0;
    state.SetIterationTime(static_cast<double>(ns) * 1e-9);
    samples_us.push_back(static_cast<double>(ns) * 1e-3);
  }
  state.counters["p50_us"] = percentile(samples_us, 0.50);
  state.counters["p99_us"] = percentile(samples_us, 0.99);
}

void checksum_only(benchmark::State& state, std::int64_t side) {
  const auto frame = make_frame(side);
  for (auto _ : state) benchmark::DoNotOptimize(checksum(std::as_bytes(std::span(frame))));
}

void check_producer(benchmark::State& state) {
  BenchSegment segment(512);
  const auto reader = SegmentReader::attach(segment.name());
  for (auto _ : state) reader.check_producer();
}

void wake_latency(benchmark::State& state) {
  BenchSegment segment(512);
  const auto frame = make_frame(512);
  const ReaderCounters counters;
  auto readers = start_readers(segment.name(), "wake", 1, counters);
  std::vector<double> samples_us;
  for (auto _ : state) {
    wait_until_asleep(readers[0].pid());
    segment.writer().publish(std::as_bytes(std::span(frame)));
    const auto line = readers[0].read_line(10s);
    if (!line) throw std::runtime_error("the reader did not wake up within 10 s");
    const double ns = std::stod(*line);
    state.SetIterationTime(ns * 1e-9);
    samples_us.push_back(ns * 1e-3);
  }
  state.counters["p50_us"] = percentile(samples_us, 0.50);
  state.counters["p99_us"] = percentile(samples_us, 0.99);
}

// The producer publishes as fast as it can (it never waits for readers); each
// reader counts the frames it checksummed. Rates are taken over a window that
// opens after a warm-up, from counters sampled at its two ends.
void frames_per_second(benchmark::State& state, const char* mode, std::int64_t side, int reader_count) {
  BenchSegment segment(side);
  SegmentWriter& writer = segment.writer();
  const std::vector<std::uint32_t> frames[2] = {make_frame(side, 0), make_frame(side, 1)};
  const ReaderCounters counters;
  auto readers = start_readers(segment.name(), mode, reader_count, counters);

  const auto publish_until = [&](std::uint64_t deadline_ns) {
    while (monotonic_ns() < deadline_ns) {
      const std::uint64_t frame_id = writer.frames_published() + 1;
      writer.publish(std::as_bytes(std::span(frames[frame_id % 2])));
    }
  };
  const auto delivered = [&] {
    std::vector<std::uint64_t> n(reader_count);
    for (int i = 0; i < reader_count; ++i) n[i] = counters[i].load(std::memory_order_relaxed);
    return n;
  };
  double seconds = 0;
  std::uint64_t published = 0;
  std::vector<double> reader_fps(reader_count);
  for (auto _ : state) {
    publish_until(monotonic_ns() + static_cast<std::uint64_t>(g_settings.warmup_s * 1e9));
    const std::uint64_t t0 = monotonic_ns();
    const std::uint64_t p0 = writer.frames_published();
    const auto d0 = delivered();
    publish_until(t0 + static_cast<std::uint64_t>(g_settings.window_s * 1e9));
    const auto d1 = delivered();
    published = writer.frames_published() - p0;
    seconds = static_cast<double>(monotonic_ns() - t0) * 1e-9;
    for (int i = 0; i < reader_count; ++i) reader_fps[i] = static_cast<double>(d1[i] - d0[i]) / seconds;
    state.SetIterationTime(seconds);
  }

  writer.close();  // readers see the segment closed, report and exit
  std::uint64_t bad = 0, taken_back = 0;
  for (auto& reader : readers) {
    const auto line = reader.read_line(20s);
    std::istringstream in(line.value_or(""));
    std::string word;
    std::uint64_t n = 0, b = 0, t = 0;
    if (!(in >> word >> n >> b >> t) || word != "done") {
      const auto status = reader.wait(5s);
      throw std::runtime_error("reader process " + std::to_string(reader.pid()) + " ended (status " +
                               (status ? std::to_string(*status) : "?") + ") without its report");
    }
    bad += b;
    taken_back += t;
    reader.wait(5s);
  }
  if (bad != 0) throw std::runtime_error(std::to_string(bad) + " frames had a wrong checksum");

  double sum = 0;
  for (double fps : reader_fps) sum += fps;
  state.counters["reader_fps"] = sum / reader_count;  // mean per reader
  state.counters["reader_fps_min"] = *std::min_element(reader_fps.begin(), reader_fps.end());
  state.counters["producer_fps"] = static_cast<double>(published) / seconds;
  state.counters["taken_back"] = static_cast<double>(taken_back);  // leases overwritten mid-read
  state.counters["lease_overrides"] = static_cast<double>(writer.lease_overrides());
  state.counters["expected_checksum"] = checksum(std::as_bytes(std::span(frames[0])));  // the seed's must match
}

benchmark::internal::Benchmark* add(const std::string& name, std::function<void(benchmark::State&)> body) {
  return benchmark::RegisterBenchmark(name.c_str(), [body](benchmark::State& state) {
    try {
      body(state);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--reader") == 0) {
    try {
      return reader_main(argc, argv);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_segment reader: %s\n", e.what());
      return 1;
    }
  }

  // --quick is ours, not Google Benchmark's: take it out before it sees argv.
  const auto quick_end = std::remove_if(argv + 1, argv + argc, [](char* a) { return std::strcmp(a, "--quick") == 0; });
  if (quick_end != argv + argc) {
    g_settings = {.warmup_s = 0.05, .window_s = 0.1, .wake_samples = 200, .attach_samples = 500};
  }
  argc = static_cast<int>(quick_end - argv);

  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGABRT}) ::signal(sig, unlink_and_reraise);

  using benchmark::kMicrosecond;
  using benchmark::kMillisecond;
  for (std::int64_t side : {512, 2048}) {
    add("attach/" + std::to_string(side), [side](auto& s) { attach(s, side); })
        ->UseManualTime()
        ->Iterations(g_settings.attach_samples)
        ->Unit(kMicrosecond);
  }
  for (std::int64_t side : {512, 2048}) {
    add("checksum/" + std::to_string(side), [side](auto& s) { checksum_only(s, side); })->Unit(kMicrosecond);
  }
  add("check_producer", check_producer)->Unit(kMicrosecond);
  add("wake_latency", wake_latency)->UseManualTime()->Iterations(g_settings.wake_samples)->Unit(kMicrosecond);
  for (const char* mode : {"lease", "copy"}) {
    for (std::int64_t side : {512, 2048}) {
      for (int readers : {1, 8}) {
        const std::string name =
            "fps/" + std::string(mode) + "/" + std::to_string(side) + "/" + std::to_string(readers);
        add(name, [=](auto& s) { frames_per_second(s, mode, side, readers); })
            ->UseManualTime()
            ->Iterations(1)
            ->Unit(kMillisecond);
      }
    }
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
