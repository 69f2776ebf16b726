// The stats/outlines fixtures in tests/data/stats (made with scikit-image and
// Cellpose by tools/stats/make_stats_fixture.py) and how tables are compared.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"

namespace cpipc::test {

inline std::string stats_data(const std::string& file) { return CPIPC_SOURCE_DIR "/tests/data/stats/" + file; }

// A CSV table: the header row and the cells of each row (no quoting).
struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

inline Csv parse_csv(const std::string& text) {
  Csv csv;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::istringstream cells_in(line);
    std::string cell;
    while (std::getline(cells_in, cell, ',')) cells.push_back(cell);
    if (csv.header.empty()) {
      csv.header = cells;
    } else {
      csv.rows.push_back(cells);
    }
  }
  return csv;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every column of `want` is in `got` with the same rows; numbers agree to
// 1e-6 relative (1e-9 absolute near 0).
inline void expect_table_near(const Csv& got, const Csv& want) {
  ASSERT_EQ(got.rows.size(), want.rows.size());
  for (std::size_t c = 0; c < want.header.size(); ++c) {
    std::size_t g = 0;
    while (g < got.header.size() && got.header[g] != want.header[c]) ++g;
    ASSERT_LT(g, got.header.size()) << "no column " << want.header[c];
    for (std::size_t r = 0; r < want.rows.size(); ++r) {
      ASSERT_EQ(got.rows[r].size(), got.header.size()) << "row " << r;
      const double a = std::stod(got.rows[r][g]);
      const double b = std::stod(want.rows[r][c]);
      EXPECT_LE(std::abs(a - b), std::max(1e-9, 1e-6 * std::abs(b)))
          << want.header[c] << " of label " << want.rows[r][0] << ": " << got.rows[r][g] << " vs " << want.rows[r][c];
    }
  }
}

// labels.npy as uint32, with its height and width.
struct FixtureLabels {
  std::vector<std::uint32_t> labels;
  int height = 0;
  int width = 0;
};

inline FixtureLabels fixture_labels() {
  const io::Array a = io::read_npy(stats_data("labels.npy"));
  return {io::to_labels(a, "labels.npy"), static_cast<int>(a.desc.shape[0]), static_cast<int>(a.desc.shape[1])};
}

}  // namespace cpipc::test
