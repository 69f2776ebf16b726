// The image reader's side of benchmarks/run_image_read_bench.sh: times
// cpipc::io::read_image_file(PATH) REPEATS times in this process and prints
// one JSON object: every run's wall time, their median and minimum (ms), and
// what was read (frames, axes, dtype[shape] of frame 0, how the axes were
// decided). The first run is not left out: the file is in the page cache
// after the driver made it, and image_read_tifffile.py counts the same way.
//
//   bench_image_read PATH [REPEATS=20]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "cpipc/io/image.hpp"

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: bench_image_read PATH [REPEATS=20]\n");
    return 2;
  }
  const std::string path = argv[1];
  const int repeats = argc == 3 ? std::atoi(argv[2]) : 20;
  if (repeats < 1) {
    std::fprintf(stderr, "bench_image_read: REPEATS must be >= 1\n");
    return 2;
  }
  try {
    std::vector<double> ms;
    ms.reserve(static_cast<std::size_t>(repeats));
    cpipc::io::ImageFile last;
    for (int i = 0; i < repeats; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      cpipc::io::ImageFile f = cpipc::io::read_image_file(path);
      const auto t1 = std::chrono::steady_clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      last = std::move(f);  // destroyed outside the timed part, as tifffile's array is
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t n = sorted.size();
    const double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    std::string runs;
    for (std::size_t i = 0; i < ms.size(); ++i) runs += (i ? "," : "") + std::to_string(ms[i]);
    const std::string frame0 = last.frames.empty() ? "" : last.frames[0].array.desc.to_string();
    const std::string axes0 = last.frames.empty() ? "" : last.frames[0].axes;
    std::printf(
        "{\"reader\":\"cpipc\",\"path\":%s,\"repeats\":%d,\"median_ms\":%.4f,\"min_ms\":%.4f,\"frames\":%zu,"
        "\"frame0\":%s,\"axes\":%s,\"decided_by\":%s,\"runs_ms\":[%s]}\n",
        json_string(path).c_str(), repeats, median, sorted.front(), last.frames.size(), json_string(frame0).c_str(),
        json_string(axes0).c_str(), json_string(last.decided_by).c_str(), runs.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_image_read: %s\n", e.what());
    return 1;
  }
}
