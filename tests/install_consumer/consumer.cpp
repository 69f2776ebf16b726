// Publishes a frame and reads it back through the installed headers and
// libraries; prints "ok" and exits 0.
#include <unistd.h>

#include <cpipc/ipc/reader.hpp>
#include <cpipc/ipc/writer.hpp>
#include <cpipc/post/stats.hpp>
#include <cstdio>
#include <string>
#include <vector>

int main() {
  using namespace cpipc::ipc;
  const std::int64_t shape[2] = {4, 4};
  const std::string name = "install-consumer-" + std::to_string(::getpid());
  SegmentWriter writer = SegmentWriter::create(name, TensorDesc::contiguous(kUInt16, shape));
  writer.publish(std::vector<std::byte>(32, std::byte{1}));
  std::vector<std::byte> copy;
  const auto info = SegmentReader::attach(name).copy_latest(copy);
  const bool ok = info && info->frame_id == 1 && copy.size() == 32 && copy[31] == std::byte{1};
  std::printf("%s\n", ok ? "ok" : "wrong frame");
  return ok ? 0 : 1;
}
