// Writes the protocol fuzzer's seed corpus: every message type a client
// sends, valid and subtly not, in the fuzzer's "one body" mode (byte 0 odd).
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  const std::vector<std::string> bodies = {
      R"({"type":"submit","id":"a","image":"/data/plate1.tif","diameter":30})",
      R"({"type":"submit","id":"b","input":"cells-in","channels":[2,3],"niter":100,"timeout_s":2.5})",
      R"({"type":"submit","id":"c","image":"x.png","flow_threshold":0.4,"cellprob_threshold":-1,"min_size":15,)"
      R"("max_size_fraction":0.4})",
      R"({"type":"submit","id":"d","image":"x.png","channels":[1099511627776,0]})",
      R"({"type":"submit","id":"e","image":"x.png","diameter":-3,"colour":"red"})",
      R"({"type":"cancel","id":"a"})",
      R"({"type":"release","id":"a"})",
      R"({"type":"ping"})",
      R"({"type":"launch","id":"\u0001\u00e9"})",
      R"([1,2,{"type":"ping"}])",
      R"({"type":"submit","id":"","image":""})",
  };
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    std::ofstream(dir / ("seed" + std::to_string(i)), std::ios::binary) << '\x01' << bodies[i];
  }
  // A stream of two framed messages, split mid-prefix (mode byte even).
  std::string stream = std::string("\x00\x06", 2);
  for (const std::string& b : {bodies[0], bodies[5]}) {
    for (int k = 0; k < 4; ++k) stream += static_cast<char>((b.size() >> (8 * k)) & 0xff);
    stream += b;
  }
  std::ofstream(dir / "stream", std::ios::binary) << stream;
  return 0;
}
