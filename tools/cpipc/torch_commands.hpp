// The subcommands of cpipc-torch.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "cpipc/model/model.hpp"
#include "exit_status.hpp"

namespace cpipc::cli {

void register_segment(CLI::App& app);
void register_serve(CLI::App& app);

// "auto" (CUDA when LibTorch sees a device), "cpu", "cuda", "cuda:N".
[[nodiscard]] model::Device choose_device(const std::string& text);
// The model at `path` (empty: the embedded default), loaded, checked and warmed up.
[[nodiscard]] model::Model load_model(const std::string& path, const std::string& device, const std::string& precision);

}  // namespace cpipc::cli
