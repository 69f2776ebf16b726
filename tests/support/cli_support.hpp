// What the command-line tests share: a `cpipc publish` process and the skip
// for builds without image codecs.
#pragma once

#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include "cpipc/io/array_file.hpp"
#include "cpipc/util/child_process.hpp"
#include "support/test_support.hpp"

namespace cpipc::test {

// The process of `cpipc publish FILE NAME`, up and published once
// constructed; stopped with SIGTERM (the clean way) when it goes.
class Publisher {
 public:
  Publisher(const std::string& file, const std::string& name) : process_({cpipc_binary(), "publish", file, name}) {
    const auto line = process_.read_line(std::chrono::seconds(10));
    if (!line || !line->starts_with("published")) {
      throw std::runtime_error("cpipc publish did not start: " + line.value_or("no output"));
    }
  }
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;
  ~Publisher() { (void)stop(); }

  std::optional<int> stop() {
    process_.signal(SIGTERM);
    return process_.wait(std::chrono::seconds(10));
  }
  util::ChildProcess& process() { return process_; }

 private:
  util::ChildProcess process_;
};

}  // namespace cpipc::test

#define SKIP_WITHOUT_IMAGE_CODECS()                                              \
  if (!::cpipc::io::image_codecs_available()) {                                  \
    GTEST_SKIP() << "this cpipc was built without OpenCV: no PNG or TIFF files"; \
  }
