#include "pickle_writer.hpp"

#include <bit>
#include <cstring>
#include <limits>

#include "cpipc/error.hpp"

namespace cpipc::io::detail {

namespace {

static_assert(std::endian::native == std::endian::little, "pickles and numpy data are written little-endian");

// The opcodes used, named as in Lib/pickletools.py.
constexpr char kProto = '\x80';
constexpr char kStop = '.';
constexpr char kNone = 'N';
constexpr char kNewTrue = '\x88';
constexpr char kNewFalse = '\x89';
constexpr char kBinInt1 = 'K';   // 1-byte unsigned
constexpr char kBinInt2 = 'M';   // 2-byte unsigned
constexpr char kBinInt = 'J';    // 4-byte signed
constexpr char kLong1 = '\x8a';  // n-byte two's complement
constexpr char kBinFloat = 'G';  // 8-byte big-endian IEEE double
constexpr char kBinUnicode = 'X';
constexpr char kBinUnicode8 = '\x8d';
constexpr char kBinBytes = 'B';
constexpr char kBinBytes8 = '\x8e';
constexpr char kGlobal = 'c';
constexpr char kMark = '(';
constexpr char kEmptyTuple = ')';
constexpr char kTuple = 't';
constexpr char kTuple1 = '\x85';
constexpr char kEmptyList = ']';
constexpr char kAppends = 'e';
constexpr char kEmptyDict = '}';
constexpr char kSetItems = 'u';
constexpr char kReduce = 'R';
constexpr char kBuild = 'b';

constexpr std::size_t kFlushAt = 64 * 1024;

template <class T>
void put_le(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian host (static_assert above)
  out.append(b, sizeof(T));
}

// numpy's dtype.str without its byte-order mark: 'u2', 'f4', 'b1', ...
std::string numpy_kind(const ipc::DType& d) {
  if (d.lanes != 1) throw Error(Errc::invalid_argument, "numpy has no dtype for " + ipc::to_string(d));
  char kind = 0;
  switch (d.code) {
    case ipc::DTypeCode::int_:
      kind = 'i';
      break;
    case ipc::DTypeCode::uint:
      kind = 'u';
      break;
    case ipc::DTypeCode::float_:
      kind = 'f';
      break;
    case ipc::DTypeCode::bool_:
      kind = 'b';
      break;
    case ipc::DTypeCode::bfloat:
      break;
  }
  if (kind == 0) throw Error(Errc::invalid_argument, "numpy has no dtype for " + ipc::to_string(d));
  return kind + std::to_string(d.bits / 8);
}

}  // namespace

PickleWriter::PickleWriter(Sink sink) : sink_(std::move(sink)) {
  op(kProto);
  buffer_ += '\x04';
}

void PickleWriter::op(char code) { buffer_ += code; }

void PickleWriter::raw(const void* data, std::size_t n) {
  if (n >= kFlushAt) {
    flush();
    sink_(static_cast<const char*>(data), n);
    return;
  }
  buffer_.append(static_cast<const char*>(data), n);
  if (buffer_.size() >= kFlushAt) flush();
}

void PickleWriter::flush() {
  if (buffer_.empty()) return;
  sink_(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void PickleWriter::none() { op(kNone); }

void PickleWriter::boolean(bool v) { op(v ? kNewTrue : kNewFalse); }

void PickleWriter::integer(std::int64_t v) {
  // The shortest of Python's own choices, as pickle.dumps makes them.
  if (v >= 0 && v <= 0xff) {
    op(kBinInt1);
    buffer_ += static_cast<char>(v);
  } else if (v >= 0 && v <= 0xffff) {
    op(kBinInt2);
    put_le(buffer_, static_cast<std::uint16_t>(v));
  } else if (v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max()) {
    op(kBinInt);
    put_le(buffer_, static_cast<std::int32_t>(v));
  } else {
    op(kLong1);  // 8 bytes of two's complement: not the shortest, equally valid
    buffer_ += '\x08';
    put_le(buffer_, v);
  }
}

void PickleWriter::real(double v) {
  op(kBinFloat);
  const auto bits = std::bit_cast<std::uint64_t>(v);
  for (int shift = 56; shift >= 0; shift -= 8) buffer_ += static_cast<char>(bits >> shift);  // big-endian, '>d'
}

void PickleWriter::string(std::string_view utf8) {
  if (utf8.size() <= std::numeric_limits<std::uint32_t>::max()) {
    op(kBinUnicode);
    put_le(buffer_, static_cast<std::uint32_t>(utf8.size()));
  } else {
    op(kBinUnicode8);
    put_le(buffer_, static_cast<std::uint64_t>(utf8.size()));
  }
  raw(utf8.data(), utf8.size());
}

void PickleWriter::bytes(const void* data, std::size_t n) {
  if (n <= std::numeric_limits<std::uint32_t>::max()) {
    op(kBinBytes);
    put_le(buffer_, static_cast<std::uint32_t>(n));
  } else {
    op(kBinBytes8);  // protocol 4: an array of 4 GiB or more
    put_le(buffer_, static_cast<std::uint64_t>(n));
  }
  raw(data, n);
}

void PickleWriter::global(std::string_view module, std::string_view name) {
  op(kGlobal);
  buffer_.append(module);
  buffer_ += '\n';
  buffer_.append(name);
  buffer_ += '\n';
}

void PickleWriter::mark() { op(kMark); }

void PickleWriter::tuple(std::size_t n) {
  if (n > 3) throw Error(Errc::invalid_argument, "PickleWriter::tuple: at most 3 items; use mark()");
  op(n == 0 ? kEmptyTuple : static_cast<char>(kTuple1 + static_cast<char>(n - 1)));  // TUPLE1, TUPLE2, TUPLE3
}

void PickleWriter::tuple_from_mark() { op(kTuple); }
void PickleWriter::empty_list() { op(kEmptyList); }
void PickleWriter::appends() { op(kAppends); }
void PickleWriter::empty_dict() { op(kEmptyDict); }
void PickleWriter::setitems() { op(kSetItems); }
void PickleWriter::reduce() { op(kReduce); }
void PickleWriter::build() { op(kBuild); }

void PickleWriter::numpy_dtype(const ipc::DType& d) {
  const std::string kind = numpy_kind(d);
  // numpy.dtype('u2', False, True) then __setstate__((3, '<', None, None,
  // None, -1, -1, 0)): version 3, byte order ('|' where it does not
  // matter), no subarray, names or fields, elsize and alignment -1 (fixed
  // by the type), flags 0 for a plain number.
  global("numpy", "dtype");
  string(kind);
  boolean(false);
  boolean(true);
  tuple(3);
  reduce();
  mark();
  integer(3);
  string(d.bits == 8 ? "|" : "<");
  none();
  none();
  none();
  integer(-1);
  integer(-1);
  integer(0);
  tuple_from_mark();
  build();
}

namespace {

// numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b'): an empty
// array that __setstate__ then fills, as ndarray.__reduce__ has it.
void empty_ndarray(PickleWriter& p) {
  p.global("numpy.core.multiarray", "_reconstruct");
  p.global("numpy", "ndarray");
  p.integer(0);
  p.tuple(1);
  p.bytes("b", 1);
  p.tuple(3);
  p.reduce();
}

}  // namespace

void PickleWriter::numpy_array(const ipc::HostView& view) {
  const ipc::TensorDesc& d = view.desc;
  if (!d.is_contiguous()) throw Error(Errc::invalid_argument, "numpy_array: a strided view (" + d.to_string() + ")");
  numpy_kind(d.dtype);  // refuse before writing anything
  empty_ndarray(*this);
  // __setstate__((1, shape, dtype, is_fortran, data)).
  mark();
  integer(1);
  if (d.ndim <= 3) {
    for (std::uint32_t i = 0; i < d.ndim; ++i) integer(d.shape[i]);
    tuple(d.ndim);
  } else {
    mark();
    for (std::uint32_t i = 0; i < d.ndim; ++i) integer(d.shape[i]);
    tuple_from_mark();
  }
  numpy_dtype(d.dtype);
  boolean(false);
  bytes(view.data, d.nbytes());
  tuple_from_mark();
  build();
}

void PickleWriter::numpy_object_scalar(const std::function<void()>& put_object) {
  empty_ndarray(*this);
  // __setstate__((1, (), dtype('O8'), False, [object])): object arrays keep
  // their items in a list; dtype('O8') has byte order '|' and flags 63
  // (NPY_OBJECT_DTYPE_FLAGS), as numpy pickles it.
  mark();
  integer(1);
  tuple(0);
  global("numpy", "dtype");
  string("O8");
  boolean(false);
  boolean(true);
  tuple(3);
  reduce();
  mark();
  integer(3);
  string("|");
  none();
  none();
  none();
  integer(-1);
  integer(-1);
  integer(63);
  tuple_from_mark();
  build();
  boolean(false);
  empty_list();
  mark();
  put_object();
  appends();
  tuple_from_mark();
  build();
}

void PickleWriter::finish() {
  op(kStop);
  flush();
}

}  // namespace cpipc::io::detail
