// Loads the image-codec plugin on first use (see codecs_api.hpp for why).
#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <string_view>

#include "codecs_api.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/util/child_process.hpp"
#include "image.hpp"
#include "png_stored.hpp"
#include "tiff_baseline.hpp"

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
    l.fix = "rebuild it with OpenCV (libopencv-dev, -DCPIPC_WITH_OPENCV=ON) or convert the file to .npy";
    return l;
#else
    // CPIPC_CODECS=none: behave as a build without OpenCV (what the GPU
    // machines are), e.g. to check the fallbacks on a machine that has it.
    const char* env = std::getenv("CPIPC_CODECS");
    if (env && std::string_view(env) == "none") {
      l.why = "disabled by CPIPC_CODECS=none";
      l.fix = "unset CPIPC_CODECS, or convert the file to .npy";
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
    l.fix = "put this build's libcpipc_codecs.so next to the cpipc binary or name it in CPIPC_CODECS, or use .npy";
    return l;
#endif
  }();
  return loaded;
}

// `what`: "cannot read 'x.png'", ...
[[noreturn]] void unavailable(const std::string& what) {
  throw Error(Errc::invalid_argument, what + ": image codecs are unavailable (" + plugin().why + "); " + plugin().fix);
}

bool is_tiff(const std::string& path) {
  const std::string ext = extension_of(path);
  return ext == ".tif" || ext == ".tiff";
}

// A TIFF the plugin could not decode (OpenCV 4 reads no uint32, which
// Cellpose and write_uint32_tiff make) is tried with the baseline reader;
// when that fails too, the plugin's error is the one that counts.
template <class Result>
Result plugin_or_baseline(const std::string& path, int code, const std::string& error,
                          Result (*baseline)(const std::string&)) {
  if (is_tiff(path)) {
    try {
      return baseline(path);
    } catch (const Error&) {
    }
  }
  throw Error(error_code(code), error);
}

Array first_baseline_page(const std::string& path) { return read_baseline_tiff(path, 1).front(); }
std::vector<Array> all_baseline_pages(const std::string& path) { return read_baseline_tiff(path); }

// OpenCV 4 decodes at most 4 channels per pixel and calls a TIFF of more
// (multi-channel microscopy, samples as ExtraSamples) corrupt: those go to
// the baseline reader, which reads any number.
bool beyond_opencv(const ImageInfo& info) {
  return info.format == "TIFF" &&
         std::any_of(info.pages.begin(), info.pages.end(), [](const ImagePage& p) { return p.channels > 4; });
}

// Refuses, before anything is decoded, an image whose pages do not fit in
// memory; through OpenCV each page is decoded and then copied once more.
void check_memory(const std::string& path, const std::vector<ImagePage>& pages, bool copied) {
  std::uint64_t total = 0;
  std::uint64_t largest = 0;
  for (const ImagePage& p : pages) {
    total = std::max(total, total + p.bytes());  // saturating
    largest = std::max(largest, p.bytes());
  }
  check_decoded_size(path, copied ? std::max(total, total + largest) : total);
}

ImageInfo probe_as_image(const std::string& path) {
  ImageInfo info = probe_image(path);
  if (info.format == "NPY") {
    throw Error(Errc::invalid_argument,
                "cannot read '" + path + "': not an image file (it has no PNG, TIFF, JPEG or BMP signature)");
  }
  return info;
}

}  // namespace

Array read_image(const std::string& path) {
  const ImageInfo info = probe_as_image(path);
  const CodecApi* api = beyond_opencv(info) ? nullptr : plugin().api;
  check_memory(path, {info.pages.begin(), info.pages.begin() + std::min<std::size_t>(info.pages.size(), 1)},
               api != nullptr);
  if (!api && info.format == "TIFF") return first_baseline_page(path);
  if (!api) unavailable("cannot read '" + path + "'");
  Array out;
  std::string error;
  if (const int code = api->read(path.c_str(), &out, &error); code != 0) {
    return plugin_or_baseline(path, code, error, &first_baseline_page);
  }
  return out;
}

void write_image(const std::string& path, const ipc::HostView& view, const std::string& ext) {
  const CodecApi* api = plugin().api;
  if (!api && ext == ".png") return write_png_stored(path, view);  // uncompressed, but a PNG
  if (!api) unavailable("cannot write '" + path + "'");
  std::string error;
  std::vector<unsigned char> bytes;
  if (const int code = api->encode(path.c_str(), &view, ext.c_str(), &bytes, &error); code != 0) {
    throw Error(error_code(code), error);
  }
  OutputFile out(path);
  out.write(bytes.data(), bytes.size());
  out.close();
}

std::vector<Array> read_image_frames(const std::string& path, const ImageInfo& info) {
  const CodecApi* api = beyond_opencv(info) ? nullptr : plugin().api;
  check_memory(path, info.pages, api != nullptr);
  if (!api && info.format == "TIFF") return all_baseline_pages(path);
  if (!api) unavailable("cannot read '" + path + "'");
  std::vector<Array> out;
  std::string error;
  if (const int code = api->read_frames(path.c_str(), &out, &error); code != 0) {
    return plugin_or_baseline(path, code, error, &all_baseline_pages);
  }
  return out;
}

bool have_image_codecs() noexcept { return plugin().api != nullptr; }

}  // namespace cpipc::io::detail
