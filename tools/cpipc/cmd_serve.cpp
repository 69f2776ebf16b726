// cpipc serve: the producer. Loads a model once and serves segmentation to
// clients over a Unix socket until SIGINT/SIGTERM (docs/PROTOCOL.md).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

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
  int lifeline_fd = -1;
  service::ServerOptions server;
};

// --lifeline FD: the read end of a pipe whose write end only the parent
// holds. When the parent dies, however it dies, the kernel closes that end
// and the pipe hangs up: the producer then stops as on SIGTERM (socket and
// segments removed) instead of living on as an orphan. A pipe rather than
// PR_SET_PDEATHSIG, which fires when the parent's spawning *thread* exits.
class Lifeline {
 public:
  explicit Lifeline(int fd) : fd_(fd) {
    if (fd_ < 0) return;
    if (::fcntl(fd_, F_GETFD) < 0)
      throw Error(Errc::invalid_argument, "--lifeline " + std::to_string(fd_) +
                                              " is not an open file descriptor: pass the read end of a pipe the "
                                              "parent keeps open");
    ::fcntl(fd_, F_SETFD, FD_CLOEXEC);  // not handed on to anything this process starts
    watcher_ = std::thread([this] { watch(); });
  }
  ~Lifeline() {
    done_ = true;
    if (watcher_.joinable()) watcher_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  Lifeline(const Lifeline&) = delete;
  Lifeline& operator=(const Lifeline&) = delete;

 private:
  void watch() {
    char buf[256];
    while (!done_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      // Bytes the parent writes are ignored; end of file or a hang-up is its death.
      if ((p.revents & POLLIN) && ::read(fd_, buf, sizeof buf) > 0) continue;
      if (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
        ::kill(::getpid(), SIGTERM);  // blocked in every thread: the server's signalfd takes it
        return;
      }
    }
  }

  int fd_;
  std::atomic<bool> done_{false};
  std::thread watcher_;
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
  // Started after the mask is set, so its thread leaves SIGTERM to the signalfd too.
  Lifeline lifeline(a.lifeline_fd);

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
  cmd->add_option("--lifeline", a->lifeline_fd,
                  "Stop (cleanly, as on SIGTERM) when this inherited file descriptor hangs up: the read end of a pipe "
                  "the parent holds, so the producer never outlives it")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace cpipc::cli
