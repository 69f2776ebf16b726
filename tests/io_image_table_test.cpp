// io::read_image_file against issue 14's table: every TIFF in
// tests/data/images (written by tifffile, tools/io/make_image_fixtures.py) is
// read and compared with what its manifest.json row says: the number of
// frames, each frame's axes in cpipc's order, and its dtype, shape and bytes
// equal to NAME.expect.npy (NAME.expect0.npy, ... for several frames), which
// is tifffile's own array of the file put in that order. Rows with "refused"
// must throw Error(invalid_argument) (exit 2) with a one-line message that
// names the file and contains the row's substring. One named test per row:
// Table/ImageTable.Reads/<name>.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/ipc/tensor.hpp"

namespace io = cpipc::io;
namespace ipc = cpipc::ipc;
namespace fs = std::filesystem;
using cpipc::Errc;
using cpipc::Error;

namespace {

std::string images_dir() { return CPIPC_SOURCE_DIR "/tests/data/images"; }

struct Row {
  std::string name;
  std::string file;
  std::string refused;  // empty: read, and compared with `expect`
  std::vector<std::string> axes;
  std::vector<std::string> expect;
  std::string note;
};

// gtest_discover_tests lists the tests by running this program, so a
// manifest that cannot be read must not crash it: it yields no rows, and
// Manifest.ListsEveryFixture fails with the reason.
std::string& manifest_error() {
  static std::string error;
  return error;
}

std::vector<Row> load_rows() {
  std::vector<Row> rows;
  const std::string path = images_dir() + "/manifest.json";
  try {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    const nlohmann::json manifest = nlohmann::json::parse(in);
    for (const auto& r : manifest.at("fixtures")) {
      Row row;
      row.name = r.at("name").get<std::string>();
      row.file = r.at("file").get<std::string>();
      row.note = r.value("note", "");
      if (r.contains("refused")) {
        row.refused = r.at("refused").get<std::string>();
      } else {
        row.axes = r.at("axes").get<std::vector<std::string>>();
        row.expect = r.at("expect").get<std::vector<std::string>>();
        if (row.axes.size() != r.at("frames").get<std::size_t>() || row.expect.size() != row.axes.size()) {
          throw std::runtime_error("row " + row.name + ": frames, axes and expect disagree");
        }
      }
      rows.push_back(std::move(row));
    }
  } catch (const std::exception& e) {
    manifest_error() = path + ": " + e.what();
    rows.clear();
  }
  return rows;
}

const std::vector<Row>& rows() {
  static const std::vector<Row> all = load_rows();
  return all;
}

std::string shape_of(const ipc::TensorDesc& d) { return d.to_string(); }

// How gtest prints a row (in a failure's "GetParam() = ...").
[[maybe_unused]] void PrintTo(const Row& row, std::ostream* os) { *os << row.file; }

// The first element where `got` and `want` (same layout) differ, as
// "element i (index [a, b, c])", or "" when their bytes are equal.
std::string first_difference(const io::Array& got, const io::Array& want) {
  if (got.data == want.data) return "";
  const std::size_t item = want.desc.dtype.itemsize();
  const std::size_t n = std::min(got.data.size(), want.data.size());
  std::size_t i = 0;
  while (i < n && got.data[i] == want.data[i]) ++i;
  if (i == n) return "sizes differ: " + std::to_string(got.data.size()) + " vs " + std::to_string(want.data.size());
  std::int64_t element = static_cast<std::int64_t>(i / item);
  std::vector<std::int64_t> index(want.desc.ndim);
  for (std::int64_t k = static_cast<std::int64_t>(want.desc.ndim) - 1, rest = element; k >= 0; --k) {
    index[static_cast<std::size_t>(k)] = rest % want.desc.shape[static_cast<std::size_t>(k)];
    rest /= want.desc.shape[static_cast<std::size_t>(k)];
  }
  std::ostringstream s;
  s << "element " << element << " (index [";
  for (std::size_t k = 0; k < index.size(); ++k) s << (k ? ", " : "") << index[k];
  s << "]) differs first, at byte " << i;
  return s.str();
}

class ImageTable : public ::testing::TestWithParam<Row> {};

TEST_P(ImageTable, Reads) {
  const Row& row = GetParam();
  const std::string path = images_dir() + "/" + row.file;
  SCOPED_TRACE(row.file + ": " + row.note);
  if (!row.refused.empty()) {
    try {
      const io::ImageFile f = io::read_image_file(path);
      ADD_FAILURE() << "read " << f.frames.size() << " frame(s), stored axes '" << f.stored_axes
                    << "'; expected a refusal containing '" << row.refused << "'";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.code(), Errc::invalid_argument) << what;
      EXPECT_EQ(cpipc::exit_status(e.code()), 2) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
      EXPECT_NE(what.find(row.refused), std::string::npos) << "'" << row.refused << "' not in: " << what;
      EXPECT_NE(what.find(row.file), std::string::npos) << "the file is not named in: " << what;
    }
    return;
  }

  const io::ImageFile f = io::read_image_file(path);
  RecordProperty("stored_axes", f.stored_axes);
  RecordProperty("decided_by", f.decided_by);
  ASSERT_EQ(f.frames.size(), row.expect.size())
      << "stored axes '" << f.stored_axes << "', decided by " << f.decided_by;
  for (std::size_t i = 0; i < row.expect.size(); ++i) {
    SCOPED_TRACE("frame " + std::to_string(i) + " (" + row.expect[i] + "), stored axes '" + f.stored_axes +
                 "', decided by " + f.decided_by);
    const io::Image& frame = f.frames[i];
    const io::Array want = io::read_npy(images_dir() + "/" + row.expect[i]);
    EXPECT_EQ(frame.axes, row.axes[i]);
    EXPECT_EQ(frame.axes.size(), frame.array.desc.ndim) << "one letter per dimension";
    EXPECT_TRUE(frame.array.desc.is_contiguous()) << frame.array.desc.to_string();
    ASSERT_EQ(frame.array.desc.dtype, want.desc.dtype)
        << ipc::to_string(frame.array.desc.dtype) << " vs " << ipc::to_string(want.desc.dtype);
    ASSERT_TRUE(frame.array.desc.same_layout(want.desc))
        << shape_of(frame.array.desc) << " vs expected " << shape_of(want.desc);
    ASSERT_EQ(frame.array.data.size(), want.desc.nbytes());
    EXPECT_EQ(first_difference(frame.array, want), "");
  }
}

std::string row_name(const ::testing::TestParamInfo<Row>& info) {
  std::string n = info.param.name;
  std::replace_if(n.begin(), n.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  return n;
}

INSTANTIATE_TEST_SUITE_P(Table, ImageTable, ::testing::ValuesIn(rows()), row_name);

// The table is the folder: a fixture the manifest forgets is a row nobody
// checks, and an unreadable manifest would leave the table empty.
TEST(Manifest, ListsEveryFixture) {
  ASSERT_EQ(manifest_error(), "");
  ASSERT_GE(rows().size(), 40u);
  std::set<std::string> listed;
  for (const Row& r : rows()) {
    EXPECT_TRUE(listed.insert(r.file).second) << r.file << " listed twice";
    EXPECT_TRUE(fs::exists(images_dir() + "/" + r.file)) << r.file;
    for (const std::string& e : r.expect) EXPECT_TRUE(fs::exists(images_dir() + "/" + e)) << e;
  }
  for (const auto& entry : fs::directory_iterator(images_dir())) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".tif") {
      EXPECT_TRUE(listed.count(name)) << name << " is not in manifest.json";
    }
  }
}

// Axes the user names win over guessing (Cellpose's --z_axis): 70 pages of
// [32, 48] without metadata are guessed channels-last (the table's row), but
// with z_axis 0 they are a [70, 32, 48] ZYX stack, the stored order.
TEST(ImageAxes, NamedZAxisWinsOverTheGuess) {
  const std::string path = images_dir() + "/stack70_nometa_uint8.tif";
  io::AxisOptions options;
  options.z_axis = 0;
  const io::ImageFile f = io::read_image_file(path, options);
  ASSERT_EQ(f.frames.size(), 1u);
  EXPECT_EQ(f.frames[0].axes, "ZYX");
  const io::Array want = io::read_npy(images_dir() + "/stack70_nometa_uint8.expect.npy");  // the stored order too
  ASSERT_TRUE(f.frames[0].array.desc.same_layout(want.desc)) << shape_of(f.frames[0].array.desc);
  EXPECT_EQ(first_difference(f.frames[0].array, want), "");
}

// A missing file is not_found (exit 3), not a refusal.
TEST(ImageAxes, MissingFileIsNotFound) {
  try {
    (void)io::read_image_file(images_dir() + "/no-such-file.tif");
    ADD_FAILURE() << "read a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found) << e.what();
  }
}

}  // namespace
