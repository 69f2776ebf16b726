// libFuzzer target: the bytes a client sends to `cpipc serve`. The decoder
// may refuse them only with BadMessage (answered, connection kept) or
// FramingLost (answered, connection closed); whatever it accepts must give
// replies that always fit a frame and frame metadata that fits its slot.
// Byte 0 picks the mode: odd, the rest is one message body (framed here, so
// the fuzzer spends its time on JSON); even, the rest is a raw byte stream
// split in two reads at a point taken from byte 1.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "cpipc/ipc/format.hpp"
#include "cpipc/service/protocol.hpp"

namespace {

using namespace cpipc::service;

// What the producer would send back; must never throw.
void answer(const ProducerMessage& m) {
  if (frame_message(to_json(m)).size() > 4 + kMaxMessageBytes) __builtin_trap();
}

void take(const nlohmann::json& message) {
  ClientMessage m;
  try {
    m = decode_client_message(message);
  } catch (const BadMessage& e) {
    answer(error_reply(e.id(), codes::bad_request, e.what()));
    return;
  }
  if (const auto* r = std::get_if<SubmitRequest>(&m)) {
    // A submit survives its own round trip unchanged.
    const auto again = std::get<SubmitRequest>(decode_client_message(r->to_json()));
    if (again.to_json() != r->to_json()) __builtin_trap();
    answer(Accepted{r->id, 0});
    answer(error_reply(r->id, codes::bad_request, "id \"" + r->id + "\" is already in use"));
    const std::string meta =
        frame_meta_json(r->id, r->image.empty() ? "segment:" + r->input : r->image, cpipc::ipc::format::kMetaBytes);
    if (meta.size() > cpipc::ipc::format::kMetaBytes) __builtin_trap();
    (void)nlohmann::json::parse(meta);  // throws (and so fails) if it is not JSON
  } else if (const auto* c = std::get_if<CancelRequest>(&m)) {
    answer(error_reply(c->id, codes::bad_request, "no open request \"" + c->id + "\" to cancel"));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const char* bytes = reinterpret_cast<const char*>(data);
  MessageDecoder decoder;
  if (data[0] & 1) {
    const std::string body(bytes + 1, size - 1);
    std::string frame(4, '\0');
    for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>((body.size() >> (8 * i)) & 0xff);
    frame += body;
    decoder.feed(frame.data(), frame.size());
  } else {
    const std::size_t split = std::min<std::size_t>(data[1], size - 2);
    decoder.feed(bytes + 2, split);
    decoder.feed(bytes + 2 + split, size - 2 - split);
  }
  for (int i = 0; i < 64; ++i) {
    std::optional<nlohmann::json> message;
    try {
      message = decoder.next();
    } catch (const FramingLost& e) {
      answer(error_reply("", codes::bad_request, e.what()));
      return 0;
    } catch (const BadMessage& e) {
      answer(error_reply(e.id(), codes::bad_request, e.what()));
      continue;
    }
    if (!message) return 0;
    take(*message);
  }
  return 0;
}
