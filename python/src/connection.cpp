// Connection (a service::Client) for cpipc.Client: the socket, the protocol's
// checks (peer credentials, hello, message sizes) and reading a result's
// masks out of the producer's segment stay in C++; requests and replies
// cross as JSON text, and cpipc/client.py routes them to futures.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "bindings.hpp"
#include "cpipc/error.hpp"
#include "cpipc/service/client.hpp"
#include "cpipc/service/protocol.hpp"
#include "frame_dict.hpp"

namespace cpipc::python {

namespace {

using std::chrono::milliseconds;

// As in segment.cpp: waits are cut into slices so that Ctrl-C stops them.
constexpr milliseconds kWaitSlice{100};

nlohmann::json parse(const std::string& text, const char* what) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw Error(Errc::invalid_argument, std::string(what) + " is not a JSON object");
  return j;
}

class Connection {
 public:
  Connection(const std::string& socket_path, double timeout_s) {
    const milliseconds timeout(static_cast<std::int64_t>(std::max(0.0, timeout_s) * 1000.0));
    nb::gil_scoped_release unlocked;
    client_ = std::make_shared<service::Client>(service::Client::connect(socket_path, timeout));
  }

  [[nodiscard]] std::string hello() { return service::to_json(service::ProducerMessage{get()->hello()}).dump(); }

  // Validates a submit message as the producer would (so that a bad field
  // fails here, at the call that made it) and sends it.
  void submit(const std::string& request_json) {
    const service::SubmitRequest request = service::SubmitRequest::from_json(parse(request_json, "the request"));
    const std::shared_ptr<service::Client> c = get();
    nb::gil_scoped_release unlocked;
    std::lock_guard lock(send_);
    c->submit(request);
  }
  void cancel(const std::string& id) {
    const std::shared_ptr<service::Client> c = get();
    nb::gil_scoped_release unlocked;
    std::lock_guard lock(send_);
    c->cancel(id);
  }
  void release(const std::string& id) {
    const std::shared_ptr<service::Client> c = get();
    nb::gil_scoped_release unlocked;
    std::lock_guard lock(send_);
    c->release(id);
  }

  // The next producer message as JSON text, or None after `timeout_s`.
  // One thread at a time (cpipc/client.py's pump). Raises ProducerGone.
  nb::object next(double timeout_s) {
    const std::shared_ptr<service::Client> c = get();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::max(0.0, timeout_s));
    for (;;) {
      const auto left = std::chrono::ceil<milliseconds>(deadline - std::chrono::steady_clock::now());
      std::optional<nlohmann::json> m;
      {
        nb::gil_scoped_release unlocked;
        m = c->next(std::clamp(left, milliseconds(0), kWaitSlice));
      }
      if (m) return nb::str(m->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
      if (left <= kWaitSlice) return nb::none();
    }
  }

  // The masks a result message names, copied out of the producer's segment
  // (GIL released): (uint8 array, dtype, shape). Raises ProducerGone when
  // the frame was overwritten before it was read.
  nb::tuple read_masks(const std::string& result_json) {
    const service::ProducerMessage m = service::decode_producer_message(parse(result_json, "the result"));
    const auto* result = std::get_if<service::Result>(&m);
    if (!result) throw Error(Errc::invalid_argument, "read_masks takes a result message");
    const std::shared_ptr<service::Client> c = get();
    const ipc::TensorDesc desc = service::Client::masks_desc(*result);
    NewBytes out = new_bytes(desc.nbytes());
    {
      nb::gil_scoped_release unlocked;
      c->read_masks(*result, out.bytes);
    }
    nb::list shape;
    for (std::uint32_t i = 0; i < desc.ndim; ++i) shape.append(desc.shape[i]);
    return nb::make_tuple(out.array, ipc::to_string(desc.dtype), nb::tuple(shape));
  }

  void close() noexcept { client_.reset(); }
  [[nodiscard]] bool closed() const noexcept { return !client_; }

 private:
  // A copy per call: close() (with the GIL held) may drop the member while
  // another thread sends or reads with the GIL released.
  [[nodiscard]] std::shared_ptr<service::Client> get() const {
    if (!client_) throw Error(Errc::invalid_argument, "the client was closed");
    return client_;
  }

  std::shared_ptr<service::Client> client_;
  std::mutex send_;  // messages from several threads must not interleave on the socket
};

}  // namespace

void bind_connection(nb::module_& m) {
  nb::class_<Connection>(m, "Connection", "A connection to `cpipc serve` (cpipc::service::Client).")
      .def(nb::init<const std::string&, double>(), nb::arg("socket"), nb::arg("timeout") = 10.0,
           "Connects and reads the producer's hello. Raises NotFound (nothing listens), BadInput (the socket or "
           "the producer is another user's, or speaks another protocol), TimedOut.")
      .def_prop_ro("closed", &Connection::closed)
      .def("hello", &Connection::hello, "The producer's hello message, as JSON text.")
      .def("submit", &Connection::submit, nb::arg("request"),
           "Sends a submit message (JSON text), validated first (BadInput). GIL released.")
      .def("cancel", &Connection::cancel, nb::arg("id"), "Asks the producer to cancel request `id`.")
      .def("release", &Connection::release, nb::arg("id"), "Tells the producer the result of `id` was read.")
      .def("next", &Connection::next, nb::arg("timeout"),
           "The next producer message as JSON text, or None after `timeout` seconds. GIL released. "
           "Raises ProducerGone when the producer closed the connection.")
      .def("read_masks", &Connection::read_masks, nb::arg("result"),
           "(uint8 array, dtype, shape) of the masks a result message (JSON text) names. GIL released.")
      .def("close", &Connection::close, "Closes the connection (the producer drops its open requests).");
  m.def("default_socket_path", &service::default_socket_path, nb::arg("name"),
        "Where `cpipc serve --name NAME` listens by default.");
}

}  // namespace cpipc::python
