#include "cpipc/service/client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "cpipc/error.hpp"
#include "unix_socket.hpp"

namespace cpipc::service {

Errc errc_of_code(const std::string& code) noexcept {
  if (code == codes::bad_request || code == codes::bad_image || code == codes::bad_params) {
    return Errc::invalid_argument;
  }
  if (code == codes::cancelled) return Errc::cancelled;
  if (code == codes::timed_out) return Errc::timed_out;
  if (code == codes::out_of_memory) return Errc::out_of_memory;
  if (code == codes::shutting_down) return Errc::producer_gone;
  if (code == codes::forbidden) return Errc::invalid_argument;
  if (code == codes::overloaded) return Errc::overloaded;
  return Errc::system;
}

Client Client::connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  Client c;
  c.fd_ = detail::connect_to(socket_path);
  std::optional<nlohmann::json> hello = receive_message(c.fd_.get(), timeout);
  if (!hello) throw Error(Errc::timed_out, "the producer on '" + socket_path + "' did not say hello");
  const ProducerMessage m = decode_producer_message(*hello);
  if (const auto* e = std::get_if<ErrorReply>(&m)) throw Error(errc_of_code(e->code), e->code + ": " + e->message);
  const auto* h = std::get_if<Hello>(&m);
  if (!h || h->version != kProtocolVersion) {
    throw Error(Errc::invalid_argument,
                "'" + socket_path + "' does not speak cpipc protocol " + std::to_string(kProtocolVersion) +
                    (h ? " (it speaks " + std::to_string(h->version) + "; use the cpipc that matches it)" : ""));
  }
  c.hello_ = *h;
  return c;
}

void Client::submit(const SubmitRequest& request) { send_message(fd_.get(), request.to_json()); }
void Client::cancel(const std::string& id) { send_message(fd_.get(), to_json(CancelRequest{id})); }
void Client::release(const std::string& id) { send_message(fd_.get(), to_json(ReleaseRequest{id})); }

std::optional<nlohmann::json> Client::next(std::chrono::milliseconds timeout) {
  try {
    return receive_message(fd_.get(), timeout);
  } catch (const Error& e) {
    if (e.code() == Errc::producer_gone) {
      throw Error(Errc::producer_gone, "the producer closed the connection (it stopped or died)");
    }
    throw;
  }
}

ipc::TensorDesc Client::masks_desc(const Result& result) {
  const std::optional<ipc::DType> dtype = ipc::parse_dtype(result.dtype);
  if (!dtype) throw Error(Errc::invalid_argument, "the result names dtype '" + result.dtype + "'");
  return ipc::TensorDesc::contiguous(*dtype, result.shape);
}

io::Array Client::read_masks(const Result& result) {
  io::Array masks;
  masks.desc = masks_desc(result);
  masks.data.resize(masks.desc.nbytes());
  read_masks(result, masks.data);
  return masks;
}

void Client::read_masks(const Result& result, std::span<std::byte> out) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto& reader = readers_[result.segment];
    if (!reader) reader = std::make_unique<ipc::SegmentReader>(ipc::SegmentReader::attach(result.segment));
    // The producer re-creates its segment when the shape changes (or when
    // its name was unlinked): a cached reader of the old one finds a
    // different layout or a stale slot; attach again.
    const auto& d = reader->desc();
    const bool same_shape = d.ndim == result.shape.size() &&
                            std::equal(result.shape.begin(), result.shape.end(), d.shape.begin()) &&
                            ipc::to_string(d.dtype) == result.dtype;
    if (same_shape && reader->copy_frame(result.slot, result.seq, out)) return;
    reader.reset();
  }
  throw Error(Errc::producer_gone, "the result of request \"" + result.id +
                                       "\" was overwritten before it was read (read results promptly, or run the "
                                       "producer with more --slots)");
}

SegmentResult Client::segment(const SubmitRequest& request, const std::function<void(const nlohmann::json&)>& on_event,
                              std::chrono::milliseconds timeout) {
  submit(request);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw Error(Errc::timed_out, "no result for \"" + request.id + "\" in time");
    std::optional<nlohmann::json> m = next(left);
    if (!m) continue;
    if (m->value("id", "") != request.id) continue;  // another request's message
    if (on_event) on_event(*m);
    const ProducerMessage message = decode_producer_message(*m);
    if (const auto* e = std::get_if<ErrorReply>(&message)) {
      throw Error(errc_of_code(e->code), e->code + ": " + e->message);
    }
    if (const auto* r = std::get_if<Result>(&message)) {
      SegmentResult out{*r, read_masks(*r)};
      release(request.id);
      return out;
    }
  }
}

}  // namespace cpipc::service
