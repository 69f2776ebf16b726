// One-off A/B of the re-attach path (benchmarks/README.md, Service, 'Re-checked after the hardening').
// Build against each tree's Release ipc library (run_segment_bench.sh makes build-bench/):
//   g++ -std=c++20 -O2 -I<tree>/include reattach_ab.cpp <tree>/build-bench/libcpipc_ipc.a -lrt -o reattach
// A/B: publish -> first byte for the first frame after a stream re-creation
// (shape change), a consumer in another process re-attaching on `replaced`.
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>
#include "cpipc/error.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "cpipc/ipc/process.hpp"
using namespace cpipc;
using namespace std::chrono_literals;
static ipc::SegmentReader attach_waiting(const std::string& n) {
  for (;;) { try { return ipc::SegmentReader::attach(n); } catch (const Error& e) { if (e.code() != Errc::not_found) throw; }
    std::this_thread::sleep_for(20ms); }
}
int main() {
  const std::string name = "ab-reattach-" + std::to_string(getpid());
  int p[2]; if (pipe(p)) return 1;
  const pid_t child = fork();
  if (child == 0) {
    close(p[0]);
    ipc::SegmentReader r = attach_waiting(name);
    std::uint64_t after = 0; bool re = false; std::vector<double> normal, reatt;
    for (int k = 0; k < 200;) {
      ipc::FrameInfo f;
      try { f = r.wait_next(after, 2000ms); } catch (const Error& e) {
        if (e.code() == Errc::timed_out) break;
        if (std::string(e.what()).find("re-created") == std::string::npos) break;
        r = attach_waiting(name); after = 0; re = true; continue; }
      after = f.frame_id;
      auto l = r.lease_latest(); if (!l || l->info().frame_id != f.frame_id) continue;
      volatile std::byte b = l->view().data[0]; (void)b;
      const double us = (ipc::monotonic_ns() - f.publish_monotonic_ns) / 1000.0;
      (re ? reatt : normal).push_back(us); re = false; ++k;
    }
    auto med = [](std::vector<double> v) { if (v.empty()) return -1.0; std::sort(v.begin(), v.end()); return v[v.size()/2]; };
    std::printf("normal n=%zu median %.1f us; reattached n=%zu median %.1f us\n", normal.size(), med(normal), reatt.size(), med(reatt));
    std::fflush(stdout);
    _exit(0);
  }
  ipc::Stream s(name, ipc::SegmentOptions{.slots = 4});
  std::vector<std::byte> a(256 * 256 * 2), b(512 * 512 * 2);
  const std::int64_t sa[2] = {256, 256}, sb[2] = {512, 512};
  for (int i = 0; i < 120; ++i) {
    const bool big = (i / 3) % 2;  // three frames per shape
    s.publish(ipc::TensorDesc::contiguous(ipc::kUInt16, big ? sb : sa), big ? b : a);
    std::this_thread::sleep_for(30ms);
  }
  int st; waitpid(child, &st, 0);
  return 0;
}
