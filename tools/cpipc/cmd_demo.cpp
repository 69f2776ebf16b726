// cpipc demo: what the project does, end to end, with what ships. With
// LibTorch (cpipc-torch built): the service demo (demo_service.cpp). Without:
// one process publishes a label image, another saves it, nothing is left.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

#include "cli_common.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/util/child_process.hpp"
#include "demo_service.hpp"

namespace cpipc::cli {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// A deterministic label image: discs of varied radius on a grid with jitter,
// some touching. Labels 1..N in raster order of their centres.
io::Array make_labels(int size) {
  io::Array a;
  const std::int64_t shape[2] = {size, size};
  a.desc = ipc::TensorDesc::contiguous(ipc::kUInt16, shape);
  a.data.assign(a.desc.nbytes(), std::byte{0});
  auto* px = reinterpret_cast<std::uint16_t*>(a.data.data());
  std::uint32_t state = 12345;
  const auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return (state >> 8) / 16777216.0;
  };
  std::uint16_t label = 0;
  for (int cy = 24; cy < size; cy += 48) {
    for (int cx = 24; cx < size; cx += 48) {
      const double r = 10 + 14 * next();
      const double y0 = cy + 8 * (next() - 0.5);
      const double x0 = cx + 8 * (next() - 0.5);
      ++label;
      for (int y = std::max(0, static_cast<int>(y0 - r)); y <= std::min(size - 1, static_cast<int>(y0 + r)); ++y) {
        for (int x = std::max(0, static_cast<int>(x0 - r)); x <= std::min(size - 1, static_cast<int>(x0 + r)); ++x) {
          if ((y - y0) * (y - y0) + (x - x0) * (x - x0) <= r * r) px[y * size + x] = label;
        }
      }
    }
  }
  return a;
}

void run_demo(const std::string& out_dir) {
  namespace fs = std::filesystem;
  fs::create_directories(out_dir);
  const std::string self = util::self_executable();
  const std::string name = "demo-" + std::to_string(::getpid());
  const std::string input = (fs::path(out_dir) / "demo_labels.npy").string();
  const std::string output =
      (fs::path(out_dir) / (io::image_codecs_available() ? "demo_masks.png" : "demo_masks.npy")).string();

  const io::Array labels = make_labels(512);
  io::write_array(input, labels.view());
  std::set<std::uint16_t> ids(reinterpret_cast<const std::uint16_t*>(labels.data.data()),
                              reinterpret_cast<const std::uint16_t*>(labels.data.data()) + labels.desc.numel());
  ids.erase(0);

  // Producer process: publishes the labels and stays until SIGTERM.
  auto t0 = Clock::now();
  util::ChildProcess producer({self, "publish", input, name});
  const auto ready = producer.read_line(std::chrono::seconds(30));
  if (!ready || ready->rfind("published", 0) != 0) {
    throw Error(Errc::system, "the demo producer did not start: " + ready.value_or("no output"));
  }
  const double publish_ms = ms_since(t0);

  // Consumer process: attaches by name and saves the masks.
  t0 = Clock::now();
  util::ChildProcess saver({self, "save", name, output});
  const std::string saved = saver.read_all(std::chrono::seconds(30));
  if (saver.wait(std::chrono::seconds(30)) != 0) throw Error(Errc::system, "the demo consumer failed: " + saved);
  const double save_ms = ms_since(t0);

  // Stop the producer; it must unlink its segment.
  producer.signal(SIGTERM);
  const auto status = producer.wait(std::chrono::seconds(10));
  struct stat st {};
  const bool left_behind = ::stat(ipc::shm_file_path(name).c_str(), &st) == 0;
  if (status != 0 || left_behind) {
    throw Error(Errc::system, "the demo producer did not exit cleanly (status " +
                                  (status ? std::to_string(*status) : std::string("none")) + ")");
  }

  const io::Array back = io::read_array(output);
  const bool identical = back.data == labels.data && back.desc.same_layout(labels.desc);
  std::printf("cpipc demo\n");
  std::printf("  producer  pid %d published '%s' %s (%zu objects) in %.1f ms\n", producer.pid(), name.c_str(),
              labels.desc.to_string().c_str(), ids.size(), publish_ms);
  std::printf("  consumer  pid %d attached and saved it in %.1f ms: %s\n", saver.pid(), save_ms, output.c_str());
  std::printf("  check     saved masks %s the published ones\n", identical ? "are identical to" : "DIFFER from");
  std::printf("  cleanup   producer exited 0, segment unlinked, no process left\n");
  if (!identical) throw Error(Errc::system, "the saved masks differ from the published ones");
}

}  // namespace

void register_demo(CLI::App& app) {
  struct Args {
    std::string dir = "cpipc-demo";
    std::string samples = CPIPC_SAMPLES_DIR;
    bool segment_only = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "Run the end-to-end demo: a producer segments the bundled samples, consumers save and measure them");
  cmd->add_option("-o,--out", a->dir, "Directory for the demo's files");
  cmd->add_option("--samples", a->samples, "Directory of sample images (*.tif; *_masks.npy = ground truth)");
  cmd->add_flag("--segment-only", a->segment_only, "Only the shared-segment part (publish and save, no network)");
  cmd->callback([a] {
    namespace fs = std::filesystem;
    const std::string torch = (fs::path(util::self_executable()).parent_path() / "cpipc-torch").string();
    if (!a->segment_only && fs::exists(torch)) {
      run_service_demo(a->dir, a->samples, torch);
    } else {
      if (!a->segment_only) std::printf("(this build has no LibTorch: the segment demo only)\n");
      run_demo(a->dir);
    }
  });
}

}  // namespace cpipc::cli
