// cpipc: one program, one subcommand per job. Every failure ends in one line
// on stderr and the exit status documented in README.md.
#include <cstdio>
#include <exception>

#include "cli_common.hpp"
#include "cpipc/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"cpipc: Cellpose masks computed once and shared with many processes through named segments"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "cpipc 0.1.0 (segment ABI 1.0)");
  cpipc::cli::register_publish(app);
  cpipc::cli::register_save(app);
  cpipc::cli::register_registry(app);
  cpipc::cli::register_demo(app);
  cpipc::cli::register_devices(app);
  cpipc::cli::register_masks(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "cpipc: error: %s; see 'cpipc --help' or 'cpipc SUBCOMMAND --help'\n", e.what());
    return 2;
  } catch (const cpipc::Error& e) {
    std::fprintf(stderr, "cpipc: error: %s\n", e.what());
    return cpipc::exit_status(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpipc: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
