// Loads the image-codec plugin on first use (see codecs_api.hpp for why).
#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <string_view>

#include "codecs_api.hpp"
#include "cpipc/error.hpp"
#include "cpipc/util/child_process.hpp"
#include "image.hpp"

namespace cpipc::io::detail {

namespace {

struct Loaded {
  const CodecApi* api = nullptr;
  std::string why;  // when api is null
  std::string fix;
};

const Loaded& plugin() {
  static const Loaded loaded = [] {
    Loaded l;
#ifndef CPIPC_CODECS_BUILD_PATH
    l.why = "this cpipc was built without OpenCV";
    l.fix = "rebuild it with OpenCV (libopencv-dev, -DCPIPC_WITH_OPENCV=ON) or convert the file to PNG, TIFF or .npy";
    return l;
#else
    // CPIPC_CODECS=none: behave as a build without OpenCV (what the GPU
    // machines are), e.g. to check the fallbacks on a machine that has it.
    const char* env = std::getenv("CPIPC_CODECS");
    if (env && std::string_view(env) == "none") {
      l.why = "disabled by CPIPC_CODECS=none";
      l.fix = "unset CPIPC_CODECS, or convert the file to PNG, TIFF or .npy";
      return l;
    }
    // Next to the executable (install), then where the build put it.
    std::vector<std::string> candidates;
    if (env) candidates.emplace_back(env);
    try {
      std::string exe = util::self_executable();
      candidates.push_back(exe.substr(0, exe.rfind('/') + 1) + "libcpipc_codecs.so");
    } catch (const Error&) {
    }
    candidates.emplace_back(CPIPC_CODECS_BUILD_PATH);
    for (const std::string& path : candidates) {
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        if (l.why.empty()) l.why = ::dlerror();
        continue;
      }
      using Entry = const CodecApi* (*)();
      auto entry = reinterpret_cast<Entry>(::dlsym(handle, kCodecEntryPoint));
      if (entry && entry()->version == kCodecApiVersion) {
        l.api = entry();  // stays loaded for the life of the process
        return l;
      }
      l.why = path + " is not a compatible cpipc codec plugin";
    }
    l.fix =
        "put this build's libcpipc_codecs.so next to the cpipc binary or name it in CPIPC_CODECS, or convert "
        "the file to PNG, TIFF or .npy";
    return l;
#endif
  }();
  return loaded;
}

// `what`: "cannot read 'x.jpg'", ...
[[noreturn]] void unavailable(const std::string& what) {
  throw Error(Errc::invalid_argument, what + ": JPEG and BMP need the OpenCV codec plugin, which is unavailable (" +
                                          plugin().why + "); " + plugin().fix);
}

}  // namespace

Array read_image(const std::string& path, const ImageInfo& info) {
  const CodecApi* api = plugin().api;
  if (!api) unavailable("cannot read '" + path + "'");
  // Refused before decoding when it does not fit: OpenCV decodes the page
  // and cpipc copies it once more.
  std::uint64_t bytes = info.bytes();
  check_decoded_size(path, std::max(bytes, bytes * 2));
  Array out;
  std::string error;
  if (const int code = api->read(path.c_str(), &out, &error); code != 0) throw Error(error_code(code), error);
  return out;
}

bool have_image_codecs() noexcept { return plugin().api != nullptr; }

}  // namespace cpipc::io::detail
