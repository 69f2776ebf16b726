// How both cpipc programs end: every failure as one line on stderr and the
// exit status documented in README.md.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli_help.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cli {

// Thrown by a subcommand that has already reported its errors (one line
// each) and only needs the process to exit with `status`.
struct ExitStatus {
  int status;
};

// Parses and runs `app`; returns the process's exit status.
inline int run_app(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string near = did_you_mean(app);
    const std::string hint = near.empty() ? "" : " (did you mean " + near + "?)";
    std::fprintf(stderr, "cpipc: error: %s%s; see 'cpipc --help' or 'cpipc SUBCOMMAND --help'\n", e.what(),
                 hint.c_str());
    return 2;
  } catch (const ExitStatus& e) {
    return e.status;
  } catch (const Error& e) {
    std::fprintf(stderr, "cpipc: error: %s\n", e.what());
    return exit_status(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpipc: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace cpipc::cli
