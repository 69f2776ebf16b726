// Refuses an image whose working set would not fit, with a message instead
// of an OOM kill half-way (2-D images and z-stacks alike).
#pragma once

#include <c10/util/Exception.h>

#include <new>
#include <string>
#include <string_view>

#include "cpipc/error.hpp"

#include "cpipc/model/model.hpp"

namespace cpipc::model::detail {

// `pixels`: the image's pixels (voxels for a stack); `scaled`: those of the
// rescaled, padded network input; `channels`: network input channels.
// `what` names the image in the message ("image 512x512"). The estimate
// counts the float copies of the image, the rescaled input, the blended flows
// and the dynamics' buffers. Throws Error(out_of_memory).
void check_working_set(double pixels, double scaled, int channels, const Device& device, const std::string& what);

// Runs `body`, turning what still runs out of memory on the way (other
// processes, fragmentation) into Error(out_of_memory) naming `what`, instead
// of a crash.
template <class Body>
auto with_memory_errors(const Device& device, const std::string& what, Body&& body) -> decltype(body()) {
  const auto oom = [&](const std::string& where) {
    return Error(Errc::out_of_memory, "ran out of " + where + " memory segmenting " + what +
                                          "; free some, crop or tile the image, or segment at a larger --diameter");
  };
  try {
    return body();
  } catch (const c10::OutOfMemoryError&) {
    throw oom(device.to_string());
  } catch (const std::bad_alloc&) {
    throw oom("host");
  } catch (const c10::Error& e) {
    // LibTorch's CPU allocator reports failure as a plain c10::Error.
    if (std::string_view(e.what()).find("can't allocate memory") != std::string_view::npos) throw oom("host");
    throw;
  }
}

}  // namespace cpipc::model::detail
