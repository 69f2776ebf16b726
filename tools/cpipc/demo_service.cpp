// The service demo (cpipc demo, when cpipc-torch is built): a producer
// serving the embedded network, this process as the client submitting the
// bundled samples, and consumer processes working on each result at once.
#include "demo_service.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/post/metrics.hpp"
#include "cpipc/service/client.hpp"
#include "cpipc/util/child_process.hpp"

namespace cpipc::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Runs the consumers of one result side by side; throws if one fails.
void run_consumers(const std::vector<std::vector<std::string>>& commands) {
  std::vector<util::ChildProcess> running;
  running.reserve(commands.size());
  for (const auto& argv : commands) running.emplace_back(argv);
  for (std::size_t i = 0; i < running.size(); ++i) {
    const std::string out = running[i].read_all(60s);
    if (running[i].wait(60s) != 0) {
      throw Error(Errc::system, "demo consumer '" + commands[i][1] + "' failed: " + out);
    }
  }
}

}  // namespace

void run_service_demo(const std::string& out_dir, const std::string& samples_dir, const std::string& torch_program) {
  const std::string self = util::self_executable();
  fs::create_directories(out_dir);
  std::vector<fs::path> samples;
  for (const auto& e : fs::directory_iterator(samples_dir)) {
    if (e.path().extension() == ".tif") samples.push_back(e.path());
  }
  std::sort(samples.begin(), samples.end());
  if (samples.empty()) throw Error(Errc::not_found, "no sample images (*.tif) in '" + samples_dir + "'");

  const std::string name = "demo-" + std::to_string(::getpid());
  const std::string socket = (fs::path(out_dir) / (name + ".sock")).string();
  std::printf("cpipc demo: a producer serving the embedded network, a client, consumers on each result\n");

  // The producer: its own process, the model loaded once.
  auto t0 = Clock::now();
  std::optional<util::ChildProcess> producer;
  producer.emplace(std::vector<std::string>{self, "serve", "--name", name, "--socket", socket});
  const auto ready = producer->read_line(120s);
  if (!ready || ready->rfind("serving on", 0) != 0) {
    throw Error(Errc::system, "the demo producer did not start: " + ready.value_or("no output"));
  }
  service::Client client = service::Client::connect(socket);
  std::printf("  producer  pid %d serving '%s' (%s on %s), ready in %.1f s\n", producer->pid(), name.c_str(),
              client.hello().model.c_str(), client.hello().device.c_str(), seconds_since(t0));

  std::uint64_t objects = 0;
  double segment_s = 0.0;
  for (std::size_t k = 0; k < samples.size(); ++k) {
    const fs::path& image = samples[k];
    const std::string stem = (fs::path(out_dir) / image.stem()).string();
    service::SubmitRequest r;
    r.id = image.stem().string();
    r.image = fs::absolute(image).string();
    t0 = Clock::now();
    const service::SegmentResult res = client.segment(r);
    const double request_s = seconds_since(t0);
    // Consumers read the frame the producer just published (the latest: the
    // client has not released it, so nothing replaces it meanwhile).
    t0 = Clock::now();
    run_consumers({{self, "save", name, stem + "_cp_masks.png"},
                   {self, "stats", name, "--image", r.image, "-o", stem + "_stats.csv"},
                   {self, "outlines", name, "--image", r.image, "-o", stem + "_outlines.png"}});
    const double consumers_s = seconds_since(t0);
    client.release(r.id);

    const std::uint32_t count = res.result.objects;
    objects += count;
    segment_s += res.result.timings.total_s;
    std::string score;
    const fs::path truth = image.parent_path() / (image.stem().string() + "_masks.npy");
    if (fs::exists(truth)) {
      const auto m =
          post::match_at_iou50(io::to_labels(io::read_npy(truth.string()), "truth"), io::to_labels(res.masks, "masks"));
      char buf[96];
      std::snprintf(buf, sizeof buf, " (%lld of %lld true cells matched, AP@0.5 %.3f)",
                    static_cast<long long>(m.true_positives),
                    static_cast<long long>(m.true_positives + m.false_negatives), m.ap());
      score = buf;
    }
    std::printf(
        "  %-12s %u objects%s; found diameter of %.2f pixels%s; request %.2f s; consumers (save, stats, "
        "outlines) %.2f s\n",
        image.filename().c_str(), count, score.c_str(), res.result.diameter,
        res.result.diameter_estimated ? " (estimated)" : "", request_s, consumers_s);
  }

  // Stop the producer the polite way; it must take its socket and segment along.
  producer->signal(SIGTERM);
  const auto status = producer->wait(30s);
  struct stat st {};
  const bool shm_left = ::stat(ipc::shm_file_path(name).c_str(), &st) == 0;
  const bool socket_left = fs::exists(socket);
  if (status != 0 || shm_left || socket_left) {
    throw Error(Errc::system, "the demo producer did not clean up (status " +
                                  (status ? std::to_string(*status) : std::string("none")) +
                                  (shm_left ? ", segment left" : "") + (socket_left ? ", socket left" : "") + ")");
  }
  std::printf("  total     %llu objects in %zu images, %.2f s of segmentation\n",
              static_cast<unsigned long long>(objects), samples.size(), segment_s);
  std::printf("  files     %s/: <image>_cp_masks.png, _stats.csv, _outlines.png\n", out_dir.c_str());
  std::printf("  cleanup   producer exited 0; socket and segment removed; no process left\n");
  (void)torch_program;
}

}  // namespace cpipc::cli
