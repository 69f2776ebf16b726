#include "tiff_metadata.hpp"

#include <cctype>
#include <charconv>

namespace cpipc::io::detail {

namespace {

std::optional<std::uint64_t> number(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '"' || s.front() == '\'')) s.remove_prefix(1);
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end == s.data()) return std::nullopt;
  return v;
}

// The value of `key=` on a line of an ImageJ description.
std::optional<std::uint64_t> imagej_value(std::string_view d, std::string_view key) {
  for (std::size_t at = 0; at < d.size();) {
    std::size_t end = d.find('\n', at);
    if (end == std::string_view::npos) end = d.size();
    const std::string_view line = d.substr(at, end - at);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == '=') {
      return number(line.substr(key.size() + 1));
    }
    at = end + 1;
  }
  return std::nullopt;
}

// The value of the XML attribute `name="..."` in `element` (an opening tag).
std::optional<std::string_view> attribute(std::string_view element, std::string_view name) {
  for (std::size_t at = element.find(name); at != std::string_view::npos; at = element.find(name, at + 1)) {
    const bool starts = at > 0 && std::isspace(static_cast<unsigned char>(element[at - 1]));
    std::size_t i = at + name.size();
    while (i < element.size() && element[i] == ' ') ++i;
    if (!starts || i >= element.size() || element[i] != '=') continue;
    ++i;
    while (i < element.size() && element[i] == ' ') ++i;
    if (i >= element.size() || (element[i] != '"' && element[i] != '\'')) continue;
    const std::size_t close = element.find(element[i], i + 1);
    if (close == std::string_view::npos) return std::nullopt;
    return element.substr(i + 1, close - i - 1);
  }
  return std::nullopt;
}

// The opening tag of the first element named `tag` (with or without a
// namespace prefix) at or after `from`.
std::optional<std::string_view> element(std::string_view xml, std::string_view tag, std::size_t from = 0) {
  for (std::size_t at = xml.find('<', from); at != std::string_view::npos; at = xml.find('<', at + 1)) {
    std::size_t name = at + 1;
    const std::size_t end = xml.find_first_of(" \t\r\n/>", name);
    if (end == std::string_view::npos) return std::nullopt;
    const std::size_t colon = xml.find(':', name);
    if (colon != std::string_view::npos && colon < end) name = colon + 1;
    if (xml.substr(name, end - name) == tag) {
      const std::size_t close = xml.find('>', end);
      if (close == std::string_view::npos) return std::nullopt;
      return xml.substr(at, close - at + 1);
    }
  }
  return std::nullopt;
}

PageAxes drop_ones(PageAxes a) {
  PageAxes out;
  for (std::size_t i = 0; i < a.letters.size(); ++i) {
    if (a.counts[i] != 1) {
      out.letters += a.letters[i];
      out.counts.push_back(a.counts[i]);
    }
  }
  return out;
}

}  // namespace

std::uint64_t PageAxes::pages() const noexcept {
  std::uint64_t n = 1;
  for (const std::uint64_t c : counts) n *= c;
  return n;
}

std::optional<PageAxes> imagej_axes(std::string_view d, std::uint64_t samples) {
  if (d.substr(0, 7) != "ImageJ=") return std::nullopt;
  const std::uint64_t channels = imagej_value(d, "channels").value_or(1);
  const std::uint64_t slices = imagej_value(d, "slices").value_or(1);
  const std::uint64_t frames = imagej_value(d, "frames").value_or(1);
  // An RGB file's channels are its samples, not pages.
  const bool rgb = samples > 1 && channels == samples;
  PageAxes a{"TZC", {frames, slices, rgb ? 1 : channels}};
  if (channels == 1 && slices == 1 && frames == 1) {
    // images= alone names no axis (tifffile's 'I'): unknown, as a plain stack.
    a = {"Q", {imagej_value(d, "images").value_or(1)}};
  }
  return drop_ones(a);
}

std::optional<std::uint64_t> imagej_images(std::string_view d) {
  if (d.substr(0, 7) != "ImageJ=") return std::nullopt;
  return imagej_value(d, "images");
}

std::optional<PageAxes> ome_axes(std::string_view d, std::uint64_t samples) {
  if (d.substr(0, 5) != "<?xml" && d.substr(0, 4) != "<OME") return std::nullopt;
  const auto image = element(d, "Image");
  if (!image) return std::nullopt;
  const auto pixels = element(d, "Pixels", static_cast<std::size_t>(image->data() - d.data()));
  if (!pixels) return std::nullopt;
  const std::string_view order = attribute(*pixels, "DimensionOrder").value_or("XYCZT");
  const auto size = [&](std::string_view name) { return number(attribute(*pixels, name).value_or("1")).value_or(1); };
  std::uint64_t c = size("SizeC");
  if (samples > 1 && c % samples == 0) c /= samples;  // SizeC counts the samples in each page
  PageAxes a;
  for (std::size_t i = order.size(); i-- > 0;) {  // slowest first
    const char l = order[i];
    if (l == 'X' || l == 'Y') continue;
    if (l != 'C' && l != 'Z' && l != 'T') return std::nullopt;
    a.letters += l;
    a.counts.push_back(l == 'C' ? c : size(std::string("Size") + l));
  }
  if (a.letters.size() != 3) return std::nullopt;
  return drop_ones(a);
}

std::optional<ShapedAxes> shaped_axes(std::string_view d) {
  // tifffile writes exactly this JSON object on a series' first page; a few
  // string searches read it without a JSON library in the reader.
  if (d.empty() || d.front() != '{') return std::nullopt;
  const std::size_t key = d.find("\"shape\"");
  if (key == std::string_view::npos) return std::nullopt;
  const std::size_t open = d.find('[', key);
  const std::size_t close = d.find(']', key);
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
  ShapedAxes s;
  std::string_view list = d.substr(open + 1, close - open - 1);
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const auto v = number(list.substr(0, comma));
    if (!v) return std::nullopt;
    s.shape.push_back(*v);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  if (s.shape.empty()) return std::nullopt;
  s.letters.assign(s.shape.size(), 'Q');
  const std::size_t axes = d.find("\"axes\"");
  if (axes != std::string_view::npos) {
    const std::size_t q1 = d.find('"', d.find(':', axes));
    const std::size_t q2 = q1 == std::string_view::npos ? q1 : d.find('"', q1 + 1);
    if (q2 != std::string_view::npos && q2 - q1 - 1 == s.shape.size()) {
      for (std::size_t i = 0; i < s.shape.size(); ++i) {
        const char l = static_cast<char>(std::toupper(static_cast<unsigned char>(d[q1 + 1 + i])));
        s.letters[i] = std::string_view("TZCSYX").find(l) != std::string_view::npos ? l : 'Q';
      }
    }
  }
  return s;
}

}  // namespace cpipc::io::detail
