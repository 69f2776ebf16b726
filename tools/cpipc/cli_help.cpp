#include "cli_help.hpp"

#include <algorithm>
#include <limits>
#include <vector>

namespace cpipc::cli {

std::string HelpFormatter::make_option_name(const CLI::Option* opt, bool is_positional) const {
  if (is_positional) return opt->get_name(true, false);
  std::string name;
  for (const std::string& s : opt->get_snames()) name += (name.empty() ? "-" : ",-") + s;
  if (!opt->get_lnames().empty()) name += (name.empty() ? "--" : ",--") + opt->get_lnames().front();
  return name;
}

std::string HelpFormatter::make_option_opts(const CLI::Option* opt) const {
  if (!opt->get_option_text().empty()) return " " + opt->get_option_text();
  std::string out;
  if (opt->get_type_size() != 0) {
    if (!opt->get_type_name().empty()) out += " " + get_label(opt->get_type_name());
    if (!opt->get_default_str().empty()) out += "=" + opt->get_default_str();
    if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) {
      out += " ...";
    } else if (opt->get_expected_min() > 1) {
      out += " x " + std::to_string(opt->get_expected());
    }
    if (opt->get_required()) out += " " + get_label("REQUIRED");
  }
  return out;
}

std::string HelpFormatter::make_group(std::string group, bool is_positional,
                                      std::vector<const CLI::Option*> opts) const {
  if (group == kCellposeGroup) return {};
  return CLI::Formatter::make_group(std::move(group), is_positional, std::move(opts));
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

namespace {

std::string dashes_alike(std::string s) {
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

// The nearest of `app`'s option names to `typed` ("--flow-treshold"), in its
// cpipc spelling; empty when none is within a few edits.
std::string nearest_option(const CLI::App& app, const std::string& typed) {
  const std::string word = dashes_alike(typed.substr(0, typed.find('=')));
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 4);
  std::size_t best = std::numeric_limits<std::size_t>::max();
  std::string suggestion;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_lnames().empty()) continue;
    for (const std::string& name : opt->get_lnames()) {
      const std::size_t d = edit_distance(word, dashes_alike("--" + name));
      if (d < best) {
        best = d;
        suggestion = "--" + opt->get_lnames().front();
      }
    }
  }
  return best <= limit ? suggestion : std::string();
}

}  // namespace

std::string did_you_mean(const CLI::App& app) {
  std::vector<const CLI::App*> apps = {&app};
  for (const CLI::App* sub : app.get_subcommands()) apps.push_back(sub);
  // The innermost command first: a subcommand's own options are what was meant.
  std::reverse(apps.begin(), apps.end());
  for (const CLI::App* a : apps) {
    for (const std::string& arg : a->remaining()) {
      if (!arg.starts_with("--")) continue;
      std::string s = nearest_option(*a, arg);
      if (!s.empty()) return s;
    }
  }
  return {};
}

}  // namespace cpipc::cli
