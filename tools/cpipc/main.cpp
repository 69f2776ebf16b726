// cpipc: one program, one subcommand per job. Every failure ends in one line
// on stderr and the exit status documented in README.md.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string_view>

#include "cli_common.hpp"
#include "cpipc/error.hpp"

namespace {

// The subcommands that need LibTorch live in cpipc-torch, beside this
// program; running them here would make every cpipc process load LibTorch.
constexpr std::string_view kTorchCommands[] = {"segment", "serve"};

[[noreturn]] void exec_torch_program(char** argv) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string program = (self.parent_path() / "cpipc-torch").string();
  ::execv(program.c_str(), argv);
  std::fprintf(stderr, "cpipc: error: '%s' needs %s (%s); this build has no LibTorch: run scripts/setup.sh\n", argv[1],
               program.c_str(), std::strerror(errno));
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  for (std::string_view c : kTorchCommands) {
    if (argc > 1 && c == argv[1]) exec_torch_program(argv);
  }
  CLI::App app{"cpipc: Cellpose masks computed once and shared with many processes through named segments"};
  app.require_subcommand(1);
  app.formatter(std::make_shared<cpipc::cli::HelpFormatter>());  // before the subcommands: they copy it
  app.set_version_flag("--version", "cpipc 0.1.0 (segment ABI 1.0)");
  cpipc::cli::register_publish(app);
  cpipc::cli::register_save(app);
  cpipc::cli::register_registry(app);
  cpipc::cli::register_demo(app);
  cpipc::cli::register_devices(app);
  cpipc::cli::register_masks(app);
  cpipc::cli::register_stats(app);
  cpipc::cli::register_outlines(app);
  app.add_subcommand("segment", "Segment images with a Cellpose network (see 'cpipc segment --help')");
  app.add_subcommand("serve", "Keep a model loaded and segment for clients (see 'cpipc serve --help')");
  cpipc::cli::register_submit(app);
  cpipc::cli::register_watch(app);
  return cpipc::cli::run_app(app, argc, argv);
}
