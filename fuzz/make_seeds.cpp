// Writes valid segment objects (header + slot data) as the fuzzer's seed
// corpus: real segments created with SegmentWriter, copied out of /dev/shm.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/writer.hpp"

namespace ipc = cpipc::ipc;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::create_directories(argv[1]);
  struct Case {
    ipc::DType dtype;
    std::vector<std::int64_t> shape;
    std::uint32_t slots;
  };
  const Case cases[] = {{ipc::kUInt8, {2, 3}, 1},
                        {ipc::kUInt16, {4, 4}, 2},
                        {ipc::kFloat32, {1, 2, 2, 2}, 3},
                        {ipc::kUInt32, {0, 5}, 1},
                        {ipc::kInt32, {}, 8}};
  int n = 0;
  for (const Case& c : cases) {
    const std::string name = "fuzzseed-" + std::to_string(::getpid()) + "-" + std::to_string(n);
    {
      auto writer = ipc::SegmentWriter::create(name, ipc::TensorDesc::contiguous(c.dtype, c.shape), {.slots = c.slots});
      std::vector<std::byte> frame(writer.desc().nbytes(), std::byte{0x5a});
      ipc::FrameMeta meta{3, 17.5f, "{\"seed\":true}"};
      writer.publish(frame, meta);
      std::ifstream in(ipc::shm_file_path(name), std::ios::binary);
      std::ofstream out(std::string(argv[1]) + "/seed-" + std::to_string(n), std::ios::binary);
      out << in.rdbuf();
    }  // the writer unlinks its segment here
    ++n;
  }
  std::printf("wrote %d seeds to %s\n", n, argv[1]);
  return 0;
}
