// cpipc-torch: the subcommands that run a network (segment). `cpipc segment`
// executes this program, so that only processes that need LibTorch load it.
#include <cstdio>
#include <exception>

#include "cpipc/error.hpp"
#include "torch_commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"cpipc: Cellpose segmentation with LibTorch (run as 'cpipc segment' and 'cpipc serve')"};
  app.name("cpipc");
  app.require_subcommand(1);
  cpipc::cli::register_segment(app);
  cpipc::cli::register_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "cpipc: error: %s; see 'cpipc SUBCOMMAND --help'\n", e.what());
    return 2;
  } catch (const cpipc::cli::ExitStatus& e) {
    return e.status;
  } catch (const cpipc::Error& e) {
    std::fprintf(stderr, "cpipc: error: %s\n", e.what());
    return cpipc::exit_status(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpipc: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
