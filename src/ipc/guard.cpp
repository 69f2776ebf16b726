#include "guard.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <mutex>

namespace cpipc::ipc::detail {

namespace {

struct sigaction g_previous {};

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const auto* addr = static_cast<const std::byte*>(info->si_addr);
  for (GuardFrame* f = guard_top(); f != nullptr; f = f->prev) {
    if (addr >= f->lo && addr < f->hi) siglongjmp(f->env, 1);
  }
  // Not a fault of ours: whoever handled SIGBUS before us decides.
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // Default action: die of SIGBUS, as without us.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGBUS, &dfl, nullptr);
  ::raise(SIGBUS);
}

}  // namespace

GuardFrame*& guard_top() noexcept {
  thread_local GuardFrame* top = nullptr;
  return top;
}

void install_sigbus_handler() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous);
  });
}

Error truncated_error(const SegmentState& s) {
  struct stat st {};
  const std::string now =
      ::fstat(s.fd.get(), &st) == 0 ? std::to_string(st.st_size) + " bytes" : std::string("unknown size");
  return Error(Errc::corrupt, "segment '" + s.name + "' was truncated by another process while in use (now " + now +
                                  ", " + std::to_string(s.map.size()) +
                                  " expected): its data is gone; stop using it, remove it with 'cpipc rm " + s.name +
                                  "' and restart its producer");
}

}  // namespace cpipc::ipc::detail
