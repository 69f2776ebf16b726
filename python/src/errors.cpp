// cpipc::Error reaches Python as the class of its code, defined in
// cpipc/errors.py (one hierarchy, documented and stubbed in one place), with
// the message the CLI prints after "cpipc: error: ".
#include <nanobind/nanobind.h>

#include <exception>

#include "bindings.hpp"
#include "cpipc/error.hpp"

namespace cpipc::python {

namespace {

// The same grouping as the CLI's exit statuses (cpipc::exit_status).
const char* class_name(Errc code) {
  switch (code) {
    case Errc::invalid_argument:
    case Errc::corrupt:
      return "BadInput";
    case Errc::not_found:
      return "NotFound";
    case Errc::producer_gone:
      return "ProducerGone";
    case Errc::timed_out:
      return "TimedOut";
    case Errc::cancelled:
      return "Cancelled";
    case Errc::out_of_memory:
      return "OutOfMemory";
    case Errc::overloaded:
      return "Overloaded";
    default:
      return "Error";
  }
}

}  // namespace

void register_errors() {
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      nb::object cls = nb::module_::import_("cpipc.errors").attr(class_name(e.code()));
      PyErr_SetString(cls.ptr(), e.what());
    }
  });
}

}  // namespace cpipc::python
