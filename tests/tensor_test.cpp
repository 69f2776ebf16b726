// Tensor descriptions, dtype names, and the sizes a segment is built from.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/ipc/format.hpp"
#include "cpipc/ipc/header.hpp"
#include "cpipc/ipc/tensor.hpp"

namespace cpipc::ipc {
namespace {

TensorDesc contiguous(DType dtype, std::vector<std::int64_t> shape) { return TensorDesc::contiguous(dtype, shape); }

Errc code_of_contiguous(DType dtype, std::vector<std::int64_t> shape) {
  try {
    (void)TensorDesc::contiguous(dtype, shape);
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "contiguous() accepted it";
  return Errc::system;
}

TEST(TensorDesc, ContiguousHasRowMajorStrides) {
  const TensorDesc d = contiguous(kUInt16, {2, 3, 4});
  EXPECT_EQ(d.ndim, 3u);
  EXPECT_EQ(d.shape[0], 2);
  EXPECT_EQ(d.shape[2], 4);
  EXPECT_EQ(d.strides[0], 12);
  EXPECT_EQ(d.strides[1], 4);
  EXPECT_EQ(d.strides[2], 1);
  EXPECT_EQ(d.shape[3], 0) << "unused dimensions are zero";
  EXPECT_EQ(d.numel(), 24);
  EXPECT_EQ(d.nbytes(), 48u);
  EXPECT_TRUE(d.is_contiguous());
  EXPECT_EQ(d.to_string(), "uint16[2, 3, 4]");
}

TEST(TensorDesc, AZeroDimensionalTensorHoldsOneElement) {
  const TensorDesc d = contiguous(kFloat32, {});
  EXPECT_EQ(d.ndim, 0u);
  EXPECT_EQ(d.numel(), 1);
  EXPECT_EQ(d.nbytes(), 4u);
}

TEST(TensorDesc, AnEmptyExtentMakesAnEmptyTensor) {
  const TensorDesc d = contiguous(kInt32, {0, 5});
  EXPECT_EQ(d.numel(), 0);
  EXPECT_EQ(d.nbytes(), 0u);
}

TEST(TensorDesc, ContiguousRejectsFiveDimensions) {
  EXPECT_EQ(code_of_contiguous(kUInt8, {1, 1, 1, 1, 1}), Errc::invalid_argument);
}

TEST(TensorDesc, ContiguousRejectsANegativeExtent) {
  EXPECT_EQ(code_of_contiguous(kUInt8, {4, -1}), Errc::invalid_argument);
}

TEST(TensorDesc, ContiguousRejectsAnUnsupportedDtype) {
  EXPECT_EQ(code_of_contiguous(DType{DTypeCode::uint, 12, 1}, {4}), Errc::invalid_argument);
  EXPECT_EQ(code_of_contiguous(DType{DTypeCode::float_, 32, 2}, {4}), Errc::invalid_argument);
}

TEST(TensorDesc, ContiguousRejectsAShapeWhoseBytesOverflow) {
  const std::int64_t big = std::int64_t{1} << 32;
  EXPECT_EQ(code_of_contiguous(kUInt8, {big, big}), Errc::invalid_argument);
  EXPECT_EQ(code_of_contiguous(kUInt32, {std::int64_t{1} << 62}), Errc::invalid_argument);
}

TEST(TensorDesc, TransposedStridesAreNotContiguous) {
  TensorDesc d = contiguous(kUInt8, {3, 4});
  std::swap(d.strides[0], d.strides[1]);
  EXPECT_FALSE(d.is_contiguous());
}

TEST(TensorDesc, SameLayoutComparesDtypeAndShape) {
  EXPECT_TRUE(contiguous(kUInt16, {8, 8}).same_layout(contiguous(kUInt16, {8, 8})));
  EXPECT_FALSE(contiguous(kUInt16, {8, 8}).same_layout(contiguous(kUInt32, {8, 8})));
  EXPECT_FALSE(contiguous(kUInt16, {8, 8}).same_layout(contiguous(kUInt16, {8, 9})));
  EXPECT_FALSE(contiguous(kUInt16, {8, 8}).same_layout(contiguous(kUInt16, {8, 8, 1})));
}

TEST(DType, EverySupportedDtypeRoundTripsThroughItsName) {
  const std::vector<std::pair<DType, const char*>> all = {
      {{DTypeCode::int_, 8, 1}, "int8"},       {{DTypeCode::int_, 16, 1}, "int16"},
      {{DTypeCode::int_, 32, 1}, "int32"},     {{DTypeCode::int_, 64, 1}, "int64"},
      {{DTypeCode::uint, 8, 1}, "uint8"},      {{DTypeCode::uint, 16, 1}, "uint16"},
      {{DTypeCode::uint, 32, 1}, "uint32"},    {{DTypeCode::uint, 64, 1}, "uint64"},
      {{DTypeCode::float_, 16, 1}, "float16"}, {{DTypeCode::float_, 32, 1}, "float32"},
      {{DTypeCode::float_, 64, 1}, "float64"}, {{DTypeCode::bfloat, 16, 1}, "bfloat16"},
      {{DTypeCode::bool_, 8, 1}, "bool"},
  };
  for (const auto& [dtype, name] : all) {
    EXPECT_TRUE(is_supported(dtype)) << name;
    EXPECT_EQ(to_string(dtype), name);
    EXPECT_EQ(parse_dtype(name), dtype) << name;
  }
}

TEST(DType, ItemsizeIsBitsOverEight) {
  EXPECT_EQ(kUInt8.itemsize(), 1u);
  EXPECT_EQ(kUInt16.itemsize(), 2u);
  EXPECT_EQ(kFloat32.itemsize(), 4u);
  EXPECT_EQ((DType{DTypeCode::float_, 64, 1}.itemsize()), 8u);
}

TEST(DType, AnUnsupportedDtypeIsNamedByItsFields) {
  const DType odd{static_cast<DTypeCode>(9), 3, 1};
  EXPECT_FALSE(is_supported(odd));
  EXPECT_EQ(to_string(odd), "dtype(code=9,bits=3,lanes=1)");
  EXPECT_EQ(to_string(DType{DTypeCode::uint, 16, 2}), "dtype(code=1,bits=16,lanes=2)");
}

TEST(DType, ParseRejectsUnknownNames) {
  for (const char* name :
       {"", "int", "uint128", "float8", "bfloat32", "UINT16", "uint16 ", "dtype(code=9,bits=3,lanes=1)"}) {
    EXPECT_EQ(parse_dtype(name), std::nullopt) << "'" << name << "'";
  }
}

TEST(SegmentSize, DataStrideIsAWholeNumberOfPagesAndAtLeastOne) {
  EXPECT_EQ(data_stride_for(0), 4096u);
  EXPECT_EQ(data_stride_for(1), 4096u);
  EXPECT_EQ(data_stride_for(4096), 4096u);
  EXPECT_EQ(data_stride_for(4097), 8192u);
  EXPECT_EQ(data_stride_for(512 * 512 * 2), 512u * 512u * 2u);
}

TEST(SegmentSize, DataStrideRejectsFramesThatCannotBeRoundedUpToAPage) {
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(data_stride_for(max - (max % 4096)), max - (max % 4096));  // the largest page multiple
  for (const std::uint64_t bytes : {max, max - 1, max - 4094, max - (max % 4096) + 1}) {
    try {
      const std::uint64_t stride = data_stride_for(bytes);
      ADD_FAILURE() << "data_stride_for(" << bytes << ") returned " << stride;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
    }
  }
}

TEST(SegmentSize, SegmentBytesIsTheHeaderPageAndOneStridePerSlot) {
  EXPECT_EQ(segment_bytes(contiguous(kUInt8, {1}), 4), 4096u + 4u * 4096u);
  EXPECT_EQ(segment_bytes(contiguous(kUInt32, {64, 256}), 4), 4096u + 4u * 65536u);
  EXPECT_EQ(segment_bytes(contiguous(kUInt16, {100, 100}), 1), 4096u + 20480u);
  EXPECT_EQ(segment_bytes(contiguous(kUInt8, {0}), format::kMaxSlots), 4096u + 8u * 4096u);
}

TEST(SegmentSize, SegmentBytesRejectsOverflow) {
  TensorDesc huge = contiguous(kUInt8, {std::int64_t{1} << 62});
  try {
    (void)segment_bytes(huge, 8);
    ADD_FAILURE() << "segment_bytes accepted 8 slots of 2^62 bytes";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
  }
}

}  // namespace
}  // namespace cpipc::ipc
