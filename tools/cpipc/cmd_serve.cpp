// cpipc serve: the producer. Loads a model once and serves segmentation to
// clients over a Unix socket until SIGINT/SIGTERM (docs/PROTOCOL.md).
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "cpipc/error.hpp"
#include "cpipc/model/segmenter.hpp"
#include "cpipc/service/server.hpp"
#include "number_checks.hpp"
#include "torch_commands.hpp"

namespace cpipc::cli {

namespace {

struct ServeArgs {
  std::string model;
  std::string device = "auto";
  std::string precision = "fp32";
  std::string channels = "0,0";
  double diameter = 0.0;
  int release_wait_ms = 5000;
  service::ServerOptions server;
};

void run_serve(ServeArgs a) {
  // Stop signals go to a signalfd that the server polls, so that it always
  // gets to unlink its segments and socket. Blocked first: a signal during
  // the model load waits for the loop instead of killing the process.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  const int stop_fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (stop_fd < 0) throw_errno("signalfd", errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{stop_fd};

  a.server.defaults.channels = model::ChannelSpec::parse(a.channels);
  if (a.diameter > 0) a.server.defaults.diameter = a.diameter;
  a.server.stop_fd = stop_fd;
  a.server.release_wait = std::chrono::milliseconds(a.release_wait_ms);
  model::Segmenter segmenter(load_model(a.model, a.device, a.precision));
  const std::string source = segmenter.model().source();
  const std::string device = segmenter.model().device().to_string();
  service::Server server(std::move(segmenter), a.server);
  std::printf("serving on %s (stream '%s', model %s on %s); SIGINT or SIGTERM stops\n", server.socket_path().c_str(),
              a.server.stream.c_str(), source.c_str(), device.c_str());
  std::fflush(stdout);
  server.run();
  std::printf("stopped; socket and segments removed\n");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Keep a model loaded and segment images for clients (cpipc submit)");
  cmd->add_option("--model", a->model, "TorchScript model exported by tools/export (default: the embedded network)");
  cmd->add_option("--device", a->device, "auto (CUDA when there is one), cpu, cuda or cuda:N");
  cmd->add_option("--precision", a->precision, "fp32 (IEEE), or on CUDA tf32 (Cellpose's GPU default), bf16, fp16")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16", "fp16"}));
  cmd->add_option("--name", a->server.stream, "Stream: the result segment's name (default cpipc)");
  cmd->add_option("--socket", a->server.socket_path,
                  "Socket path (default $XDG_RUNTIME_DIR/cpipc/NAME.sock or /tmp/cpipc-UID/NAME.sock)");
  cmd->add_option("--slots", a->server.slots, "Ring slots of the result segment (8)")->check(CLI::Range(2, 8));
  cmd->add_option("--max-clients", a->server.max_clients, "Connections beyond this are refused (64)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--release-wait-ms", a->release_wait_ms,
                  "How long an unreleased result is kept for its client before its slot may be reused (5000)")
      ->check(CLI::Range(1, 3600 * 1000));
  cmd->add_option("--diameter", a->diameter,
                  "Default cell diameter, px (default: estimated per image by the model's size model)")
      ->check(diameter_pixels());
  cmd->add_option("--channels", a->channels, "Default SEG,NUC channels (0,0)");
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace cpipc::cli
