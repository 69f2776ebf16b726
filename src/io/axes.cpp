// arrange_axes: a stored array's axes decided and put in cpipc's order.
#include <algorithm>
#include <cstring>

#include "cpipc/error.hpp"
#include "cpipc/io/image.hpp"

namespace cpipc::io {

namespace {

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
  throw Error(Errc::invalid_argument, "cannot read '" + path + "': " + why);
}

using Shape = std::vector<std::int64_t>;

std::string shape_text(const Shape& d) {
  std::string s = "(";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + ")";
}

// The letters as cpipc uses them: S (a sample inside the page) is a channel;
// anything but T Z C Y X is unknown (Q).
std::string normalised_letters(const StoredImage& s) {
  std::string l = s.axes;
  if (l.size() != s.shape.size()) l.assign(s.shape.size(), 'Q');
  for (char& c : l) {
    if (c == 'S') c = 'C';
    if (!std::strchr("TZCYX", c)) c = 'Q';
  }
  return l;
}

int count(const std::string& l, char c) { return static_cast<int>(std::count(l.begin(), l.end(), c)); }

// Applies --channel-axis / --z-axis: the named axis takes the letter, and an
// axis that had it before becomes unknown.
void apply_option(std::string& letters, const std::optional<int>& axis, char letter, const char* flag,
                  const Shape& d, const std::string& path) {
  if (!axis) return;
  const int n = static_cast<int>(d.size());
  int a = *axis;
  if (a < -n || a >= n) {
    refuse(path, std::string(flag) + " " + std::to_string(a) + " is out of range for its " + std::to_string(n) +
                     " axes " + shape_text(d) + "; count from 0 (or from -1 at the end)");
  }
  if (a < 0) a += n;
  for (char& c : letters) {
    if (c == letter) c = 'Q';
  }
  letters[static_cast<std::size_t>(a)] = letter;
}

// Decides the unknown (Q) letters among `pos` (the axes other than T), as
// Cellpose 4's transforms.convert_image guesses, but never against a letter
// the file or the user gave. Returns true when something was guessed.
bool decide(std::string& l, const std::vector<int>& pos, const Shape& d, const std::string& path) {
  const int m = static_cast<int>(pos.size());
  std::string sub;
  for (int p : pos) sub += l[static_cast<std::size_t>(p)];
  for (char c : {'C', 'Z', 'Y', 'X'}) {
    if (count(sub, c) > 1) refuse(path, std::string("the file names axis ") + c + " twice (" + l + ")");
  }
  if (m > 4) {
    refuse(path, "it has " + std::to_string(m) + " axes besides time " + shape_text(d) +
                     " and cpipc reads at most Z, Y, X and C; name them with --z-axis and --channel-axis or save "
                     "fewer");
  }
  if (m < 2) refuse(path, "it has fewer than two image axes " + shape_text(d));
  const auto size = [&](int i) { return d[static_cast<std::size_t>(pos[static_cast<std::size_t>(i)])]; };
  const auto letter = [&](int i) -> char& { return l[static_cast<std::size_t>(pos[static_cast<std::size_t>(i)])]; };
  const int extra = m - 2;  // how many of C and Z there are
  const int c_known = count(sub, 'C');
  const int z_known = count(sub, 'Z');
  if (c_known + z_known > extra) {
    refuse(path, std::string("a ") + std::to_string(m) + "-axis image " + shape_text(d) +
                     " cannot have both a channel and a z axis besides Y and X" +
                     (m == 2 ? " (it has only Y and X; drop --channel-axis / --z-axis)" : ""));
  }
  const bool unknown = count(sub, 'Q') > 0;
  // Cellpose's guesses, tried only where they agree with the known letters.
  const auto is_free = [&](int i) { return letter(i) == 'Q'; };
  if (m == 3 && c_known + z_known == 0 && unknown) {
    const int c = size(0) < size(2) ? 0 : 2;  // channels first when the first axis is the smaller
    if (is_free(c)) {
      letter(c) = 'C';
    } else {
      // The page's own Y and X are known (a plain multi-page TIFF): the
      // pages are channels when fewer than the columns, else z planes.
      const int q = static_cast<int>(sub.find('Q'));
      letter(q) = size(q) < size(m - 1) ? 'C' : 'Z';
    }
  } else if (m == 4 && unknown) {
    if (c_known == 0) {
      int c = -1;
      if (z_known == 0) {
        c = size(1) < size(3) ? 1 : 3;  // Cellpose: Z first, channels at 1 or 3
      } else {
        std::vector<int> rest;
        for (int i = 0; i < m; ++i) {
          if (letter(i) != 'Z') rest.push_back(i);
        }
        c = size(rest.front()) < size(rest.back()) ? rest.front() : rest.back();
      }
      if (!is_free(c)) {
        for (int i = m - 1; i >= 0; --i) {
          if (is_free(i)) c = i;
        }
      }
      letter(c) = 'C';
    }
    if (count(l, 'Z') == 0) {
      for (int i = 0; i < m; ++i) {
        if (is_free(i)) {
          letter(i) = 'Z';
          break;
        }
      }
    }
  }
  // What is left is Y then X, in stored order.
  for (char c : {'Y', 'X'}) {
    std::string now;
    for (int p : pos) now += l[static_cast<std::size_t>(p)];
    if (count(now, c) == 1) continue;
    for (int i = 0; i < m; ++i) {
      if (is_free(i)) {
        letter(i) = c;
        break;
      }
    }
  }
  std::string now;
  for (int p : pos) now += l[static_cast<std::size_t>(p)];
  if (count(now, 'Y') != 1 || count(now, 'X') != 1 || count(now, 'Q') != 0) {
    refuse(path, "its axes " + l + " " + shape_text(d) + " do not make an image; name them with --z-axis and "
                 "--channel-axis");
  }
  return unknown;
}

// Copies the elements of `src` (C-contiguous, `shape`) at time `t` of axis
// `t_axis` (-1: none) into `dst` in the order `perm` (source axes, slowest
// first). Contiguous runs of the innermost axis are copied with memcpy.
void gather(const std::byte* src, const std::vector<std::int64_t>& shape, std::size_t item, int t_axis,
            std::int64_t t, const std::vector<int>& perm, std::byte* dst) {
  const int n = static_cast<int>(shape.size());
  std::vector<std::int64_t> stride(static_cast<std::size_t>(n), 1);
  for (int i = n - 2; i >= 0; --i) stride[i] = stride[i + 1] * shape[i + 1];
  const std::byte* base = src + (t_axis >= 0 ? t * stride[t_axis] * static_cast<std::int64_t>(item) : 0);
  const int k = static_cast<int>(perm.size());
  // Merge the innermost output axis into a run when it is the source's last.
  const bool run = perm.back() == n - 1;
  const std::int64_t run_len = run ? shape[n - 1] : 1;
  const int loops = run ? k - 1 : k;
  std::vector<std::int64_t> idx(static_cast<std::size_t>(loops), 0);
  std::int64_t total = 1;
  for (int i = 0; i < loops; ++i) total *= shape[perm[i]];
  const std::size_t run_bytes = static_cast<std::size_t>(run_len) * item;
  for (std::int64_t done = 0; done < total; ++done) {
    std::int64_t off = 0;
    for (int i = 0; i < loops; ++i) off += idx[i] * stride[perm[i]];
    std::memcpy(dst, base + off * static_cast<std::int64_t>(item), run_bytes);
    dst += run_bytes;
    for (int i = loops - 1; i >= 0; --i) {
      if (++idx[i] < shape[perm[i]]) break;
      idx[i] = 0;
    }
  }
}

}  // namespace

ImageFile arrange_axes(StoredImage stored, const AxisOptions& options, const std::string& path) {
  const Shape& d = stored.shape;
  const int n = static_cast<int>(d.size());
  std::string l = normalised_letters(stored);
  if (options.channel_axis && options.z_axis && *options.channel_axis >= -n && *options.channel_axis < n &&
      (*options.channel_axis + n) % n == (*options.z_axis + n) % n) {
    refuse(path, "--channel-axis and --z-axis name the same axis");
  }
  apply_option(l, options.channel_axis, 'C', "--channel-axis", d, path);
  apply_option(l, options.z_axis, 'Z', "--z-axis", d, path);
  if (count(l, 'T') > 1) refuse(path, "the file names two time axes (" + l + ")");
  const int t_axis = static_cast<int>(l.find('T'));  // npos -> -1
  std::vector<int> pos;
  for (int i = 0; i < n; ++i) {
    if (i != t_axis) pos.push_back(i);
  }
  const bool guessed = decide(l, pos, d, path);

  ImageFile out;
  out.stored_axes = l;
  if (!options.empty()) {
    out.decided_by = options.channel_axis && options.z_axis ? "--channel-axis and --z-axis"
                     : options.channel_axis                 ? "--channel-axis"
                                                            : "--z-axis";
  } else if (guessed) {
    out.decided_by = "guessed as Cellpose 4 does";
  } else if (stored.source == "ImageJ") {
    out.decided_by = "ImageJ metadata";
  } else if (stored.source == "OME") {
    out.decided_by = "OME-XML";
  } else if (stored.source == "tifffile") {
    out.decided_by = "tifffile metadata";
  } else {
    out.decided_by = "fixed by the format";
  }

  // cpipc's order: Z, Y, X, C (those present).
  std::vector<int> perm;
  std::string axes;
  Shape shape;
  for (char c : {'Z', 'Y', 'X', 'C'}) {
    const std::size_t at = l.find(c);
    if (at == std::string::npos) continue;
    perm.push_back(static_cast<int>(at));
    axes += c;
    shape.push_back(d[at]);
  }
  const std::int64_t frames = t_axis >= 0 ? d[static_cast<std::size_t>(t_axis)] : 1;
  const std::size_t item = static_cast<std::size_t>(stored.dtype.bits / 8) * stored.dtype.lanes;
  const bool in_order = t_axis < 0 && std::is_sorted(perm.begin(), perm.end());
  for (std::int64_t t = 0; t < frames; ++t) {
    Image img;
    img.axes = axes;
    img.array.desc = ipc::TensorDesc::contiguous(stored.dtype, shape);
    if (in_order) {
      img.array.data = std::move(stored.data);  // the one frame, already in order
    } else {
      img.array.data.resize(static_cast<std::size_t>(img.array.desc.nbytes()));
      gather(stored.data.data(), d, item, t_axis, t, perm, img.array.data.data());
    }
    out.frames.push_back(std::move(img));
  }
  return out;
}

}  // namespace cpipc::io
