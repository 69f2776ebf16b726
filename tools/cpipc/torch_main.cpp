// cpipc-torch: the subcommands that run a network (segment, serve). `cpipc`
// executes this program for them, so that only processes that need LibTorch
// load it.
#include "exit_status.hpp"
#include "torch_commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"cpipc: Cellpose segmentation with LibTorch (run as 'cpipc segment' and 'cpipc serve')"};
  app.name("cpipc");
  app.require_subcommand(1);
  app.formatter(std::make_shared<cpipc::cli::HelpFormatter>());  // before the subcommands: they copy it
  cpipc::cli::register_segment(app);
  cpipc::cli::register_serve(app);
  return cpipc::cli::run_app(app, argc, argv);
}
