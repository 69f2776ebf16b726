#include "folder_inputs.hpp"

#include <algorithm>
#include <filesystem>
#include <set>
#include <span>
#include <system_error>

#include "cpipc/error.hpp"

namespace cpipc::cli {

namespace {

namespace fs = std::filesystem;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// natsort's key: chunks alternate text, number, text, ... (the first is text,
// empty when the string starts with a digit).
std::vector<std::string_view> natural_chunks(std::string_view s) {
  std::vector<std::string_view> chunks;
  std::size_t i = 0;
  bool digits = false;
  while (i < s.size() || chunks.empty()) {
    std::size_t j = i;
    while (j < s.size() && is_digit(s[j]) == digits) ++j;
    chunks.push_back(s.substr(i, j - i));
    i = j;
    digits = !digits;
  }
  return chunks;
}

int compare_numbers(std::string_view a, std::string_view b) {
  a.remove_prefix(std::min(a.find_first_not_of('0'), a.size()));
  b.remove_prefix(std::min(b.find_first_not_of('0'), b.size()));
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return a.compare(b);
}

bool ends_with(std::string_view s, std::string_view end) { return s.size() >= end.size() && s.ends_with(end); }

// Cellpose's extensions that cpipc reads, and those it does not.
constexpr std::string_view kExtensions[] = {".png", ".jpg", ".jpeg", ".tif", ".tiff"};
constexpr std::string_view kUnsupported[] = {".flex", ".dax", ".nd2", ".nrrd"};

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  return u;
}

// Whether the name ends with the filter and one of `exts`, as Cellpose's
// glob("*{imf}{ext}") and glob("*{imf}{ext.upper()}") match it (exact case
// either way; hidden names are never listed).
bool has_extension(std::string_view name, std::span<const std::string_view> exts, std::string_view img_filter) {
  return std::any_of(exts.begin(), exts.end(), [&](std::string_view ext) {
    return ends_with(name, std::string(img_filter) + std::string(ext)) ||
           ends_with(name, std::string(img_filter) + upper(ext));
  });
}

// Names Python's glob("*") lists: not hidden.
std::vector<fs::directory_entry> listing(const fs::path& dir) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->path().filename().string().starts_with('.')) entries.push_back(*it);
  }
  if (ec) throw Error(Errc::io, "cannot list folder '" + dir.string() + "': " + ec.message());
  return entries;
}

}  // namespace

bool natural_less(std::string_view a, std::string_view b) {
  const auto ka = natural_chunks(a);
  const auto kb = natural_chunks(b);
  for (std::size_t i = 0; i < std::min(ka.size(), kb.size()); ++i) {
    const int c = (i % 2 == 1) ? compare_numbers(ka[i], kb[i]) : ka[i].compare(kb[i]);
    if (c != 0) return c < 0;
  }
  if (ka.size() != kb.size()) return ka.size() < kb.size();
  return a < b;
}

FolderImages folder_images(const FolderQuery& q) {
  std::error_code ec;
  const fs::path dir(q.dir);
  if (!fs::exists(dir, ec)) throw Error(Errc::not_found, "no folder '" + q.dir + "' (--dir)");
  if (!fs::is_directory(dir, ec)) throw Error(Errc::invalid_argument, "--dir '" + q.dir + "' is not a folder");

  std::vector<fs::path> folders;
  if (q.look_one_level_down) {
    for (const auto& e : listing(dir)) {
      if (e.is_directory(ec)) folders.push_back(e.path());
    }
  }
  folders.push_back(dir);

  std::size_t files = 0;
  std::set<std::string> found;  // Cellpose removes duplicates too
  FolderImages out;
  for (const fs::path& folder : folders) {
    for (const auto& e : listing(folder)) {
      ++files;
      if (e.is_directory(ec)) continue;
      const std::string name = e.path().filename().string();
      if (has_extension(name, kExtensions, q.img_filter)) {
        found.insert(e.path().string());
      } else if (has_extension(name, kUnsupported, q.img_filter)) {
        out.unsupported.push_back(e.path().string());
      }
    }
  }
  const std::string where = "--dir '" + q.dir + "'" + (q.look_one_level_down ? " (and its subfolders)" : "");
  if (files == 0) throw Error(Errc::not_found, where + " is empty");
  if (found.empty()) {
    std::string what = "no images in " + where;
    if (!q.img_filter.empty()) what += " whose names end with '" + q.img_filter + "' and";
    what += " with extensions .png, .jpg, .jpeg, .tif, .tiff";
    if (!out.unsupported.empty()) what += " (cpipc does not read .flex, .dax, .nd2 or .nrrd)";
    throw Error(Errc::not_found, what);
  }

  // Outputs of Cellpose and cpipc, by the ending of the path without its extension.
  const std::string skip[] = {"_cp_output", "_flows", "_flows_0",    "_flows_1",  "_flows_2",
                              "_cellprob",  "_masks", q.mask_filter, "_outlines", "_seg"};
  for (const std::string& path : found) {
    const std::string stem = fs::path(path).replace_extension().string();
    const bool output = std::any_of(std::begin(skip), std::end(skip), [&](const std::string& s) {
      return !s.empty() && stem.size() > s.size() && stem.ends_with(s);
    });
    if (!output) out.images.push_back(path);
  }
  if (out.images.empty()) {
    throw Error(Errc::not_found, "no images in " + where + " other than segmentation outputs (names ending in " +
                                     "_masks, _flows, _cellprob, _outlines, _seg or '" + q.mask_filter + "')");
  }
  std::sort(out.images.begin(), out.images.end(), natural_less);
  std::sort(out.unsupported.begin(), out.unsupported.end(), natural_less);
  return out;
}

}  // namespace cpipc::cli
