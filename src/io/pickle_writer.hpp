// A Python pickle written from C++, opcode by opcode: what a `_seg.npy`
// needs (Cellpose's io.masks_flows_to_seg saves a dict of numpy arrays,
// lists, strings and a float with np.save, that is a pickle inside a .npy).
// No C or C++ library writes pickles that hold numpy arrays, so this is the
// few opcodes such a file uses and nothing more (docs/ARCHITECTURE.md).
//
// The opcodes are Python's (Lib/pickletools.py documents each); the stream
// is declared protocol 4 and uses no framing and no memo, both optional
// there. numpy arrays are written as ndarray.__reduce__ writes them:
// numpy.core.multiarray._reconstruct(ndarray, (0,), b'b') and then
// __setstate__((1, shape, dtype, False, raw bytes)). "numpy.core" is the
// name that numpy 1.x has and that numpy 2.x keeps, without a warning, for
// exactly these old pickles (numpy/core/multiarray.py), so the file loads
// with both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "cpipc/ipc/tensor.hpp"

namespace cpipc::io::detail {

class PickleWriter {
 public:
  // Receives the pickle's bytes, in order, in pieces of any size.
  using Sink = std::function<void(const char* data, std::size_t n)>;

  // Starts the stream (PROTO 4). Small opcodes are gathered and handed to
  // `sink` in pieces of about 64 KiB; an array's data goes to it directly.
  explicit PickleWriter(Sink sink);

  // Each pushes one Python object onto the unpickler's stack.
  void none();
  void boolean(bool v);
  void integer(std::int64_t v);
  void real(double v);
  void string(std::string_view utf8);  // str; `utf8` must be valid UTF-8
  void bytes(const void* data, std::size_t n);
  void global(std::string_view module, std::string_view name);  // module.name, looked up on load

  // The stack building blocks: mark() then items then tuple_from_mark()
  // (or appends/setitems into the list or dict below the mark).
  void mark();
  void tuple(std::size_t n);  // the last n (0..3) items as a tuple
  void tuple_from_mark();
  void empty_list();
  void appends();  // list below the mark += the items above it
  void empty_dict();
  void setitems();  // dict below the mark gets the key, value pairs above it
  void reduce();    // callable(*args): the two items on top
  void build();     // obj.__setstate__(state): the two items on top

  // numpy.dtype of `d` (bool, [u]int8-64, float16-64), little-endian as
  // numpy writes it on x86 and ARM. Throws Error(invalid_argument) for
  // bfloat16 or vector lanes, which numpy has no dtype for.
  void numpy_dtype(const ipc::DType& d);
  // A numpy array equal to `view` (C-contiguous; its bytes are copied as
  // they are). Throws Error(invalid_argument) for a strided view or what
  // numpy_dtype refuses.
  void numpy_array(const ipc::HostView& view);
  // A 0-d numpy array of dtype object holding the one object that
  // `put_object` pushes: what np.save(file, obj) pickles for a dict.
  void numpy_object_scalar(const std::function<void()>& put_object);

  // STOP: ends the pickle and hands what is gathered to the sink.
  void finish();

 private:
  void op(char code);
  void raw(const void* data, std::size_t n);
  void flush();

  Sink sink_;
  std::string buffer_;
};

}  // namespace cpipc::io::detail
