// libFuzzer target: parse_header must reject any byte string it does not
// accept with cpipc::Error, never crash, overflow or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <span>

#include "cpipc/error.hpp"
#include "cpipc/ipc/header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> object(reinterpret_cast<const std::byte*>(data), size);
  try {
    const cpipc::ipc::SegmentLayout layout = cpipc::ipc::parse_header(object, size);
    // What a reader does next with an accepted header: every slot's frame
    // must lie inside the object.
    for (std::uint32_t s = 0; s < layout.slot_count; ++s) {
      const std::uint64_t end = layout.slot_offset(s) + layout.desc.nbytes();
      if (end > size) __builtin_trap();
      if (layout.desc.nbytes() > 0) {
        volatile std::byte last = object[end - 1];
        (void)last;
      }
    }
  } catch (const cpipc::Error&) {
  }
  return 0;
}
