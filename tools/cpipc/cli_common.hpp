// Pieces the subcommands share.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

#include "cpipc/ipc/reader.hpp"
#include "exit_status.hpp"

namespace cpipc::cli {

// Each subcommand registers itself on the app.
void register_publish(CLI::App& app);
void register_save(CLI::App& app);
void register_registry(CLI::App& app);  // ls, info, rm, gc
void register_demo(CLI::App& app);
void register_devices(CLI::App& app);
void register_masks(CLI::App& app);
void register_stats(CLI::App& app);
void register_outlines(CLI::App& app);
void register_submit(CLI::App& app);
void register_watch(CLI::App& app);

// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and threads it starts),
// so that wait_for_stop_signal() receives them instead of the default
// action killing the process before destructors unlink segments.
void block_stop_signals();
// Waits up to `timeout` for one of those signals; returns it, or 0.
int wait_for_stop_signal(std::chrono::milliseconds timeout);

// --device cpu|cuda|cuda:N on the consumers that can also run on the GPU.
void add_post_device_option(CLI::App* cmd, std::string& device);
// The ordinal in "cuda" (0) or "cuda:N".
[[nodiscard]] int cuda_ordinal(const std::string& device);

// JSON description of a segment's status, for ls/info --json.
[[nodiscard]] nlohmann::json status_json(const std::string& name, const ipc::SegmentStatus& s);
// Metadata bytes from a segment (another program wrote them) as a string
// JSON can hold: unchanged if they are UTF-8, else with every byte outside
// printable ASCII as \xNN and `note` saying so. Never throws.
[[nodiscard]] std::string safe_string(const std::string& bytes, std::string* note = nullptr);
// The JSON value the metadata holds if it parses, else safe_string(bytes).
[[nodiscard]] nlohmann::json meta_json(const std::string& bytes, std::string* note = nullptr);

// j.dump(), but bytes that are not UTF-8 never make it throw (replaced by U+FFFD).
[[nodiscard]] std::string dump_json(const nlohmann::json& j);

// "1.5 MiB"
[[nodiscard]] std::string human_bytes(std::uint64_t bytes);
[[nodiscard]] const char* state_name(ipc::format::State state);

}  // namespace cpipc::cli
