// How both cpipc programs talk about their options: --help lists each option
// under its cpipc spelling only (Cellpose's spellings are accepted but not
// listed), and a mistyped option gets the nearest real one suggested.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace cpipc::cli {

// Options in this group are accepted but left out of --help: Cellpose's own
// flags that map onto a cpipc option (--chan, --use_gpu, ...). Unlike CLI11's
// hidden group (""), errors still name them.
inline constexpr const char* kCellposeGroup = "Cellpose spellings";

// The formatter for every cpipc subcommand: an option's short names and its
// first long name ("-o,--output-dir", not "--output-dir,--savedir"), negated
// flags without CLI11's "{false}", kCellposeGroup not listed, and no
// "Excludes:" (it would name those unlisted flags; the descriptions say it).
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override;
  std::string make_option_opts(const CLI::Option* opt) const override;
  std::string make_group(std::string group, bool is_positional, std::vector<const CLI::Option*> opts) const override;
};

// After a parse error: the nearest option name to the first unexpected
// "--option" (edit distance, '_' and '-' alike), as "--name" in its cpipc
// spelling; empty when nothing is near.
[[nodiscard]] std::string did_you_mean(const CLI::App& app);

// Levenshtein distance between two strings.
[[nodiscard]] std::size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace cpipc::cli
