#include "cli_common.hpp"

#include <signal.h>
#include <time.h>

#include <cerrno>
#include <cstdio>

#include "cpipc/cuda/device.hpp"

namespace cpipc::cli {

namespace {
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_stop_signal(std::chrono::milliseconds timeout) {
  const sigset_t set = stop_signals();
  const auto ms = timeout.count();
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  const int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

const char* state_name(ipc::format::State state) {
  switch (state) {
    case ipc::format::State::creating:
      return "creating";
    case ipc::format::State::live:
      return "live";
    case ipc::format::State::closed:
      return "closed";
    case ipc::format::State::replaced:
      return "replaced";
  }
  return "unknown";
}

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string safe_string(const std::string& bytes, std::string* note) {
  try {
    (void)nlohmann::json(bytes).dump();  // throws on bytes that are not UTF-8
    return bytes;
  } catch (const nlohmann::json::exception&) {
  }
  std::string escaped;
  for (const unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      escaped += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      escaped += hex;
    }
  }
  if (note) *note = "the producer's metadata is not UTF-8; shown with bytes escaped as \\xNN";
  return escaped;
}

nlohmann::json meta_json(const std::string& bytes, std::string* note) {
  try {
    nlohmann::json j = nlohmann::json::parse(bytes);
    (void)j.dump();  // throws on bytes that are not UTF-8 inside its strings
    return j;
  } catch (const nlohmann::json::exception&) {
  }
  return safe_string(bytes, note);
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json status_json(const std::string& name, const ipc::SegmentStatus& s) {
  const auto& l = s.layout;
  nlohmann::json shape = nlohmann::json::array();
  nlohmann::json strides = nlohmann::json::array();
  for (std::uint32_t i = 0; i < l.desc.ndim; ++i) {
    shape.push_back(l.desc.shape[i]);
    strides.push_back(l.desc.strides[i]);
  }
  const char* kinds[] = {"none", "cuda_ipc", "vmm_fd"};
  nlohmann::json j = {
      {"name", name},
      {"dtype", ipc::to_string(l.desc.dtype)},
      {"shape", shape},
      {"strides", strides},
      {"frame_bytes", l.desc.nbytes()},
      {"total_bytes", l.total_bytes},
      {"slots", l.slot_count},
      {"abi", std::to_string(l.abi_major) + "." + std::to_string(l.abi_minor)},
      {"state", state_name(s.state)},
      {"producer_pid", l.producer.pid},
      {"producer_alive", s.producer_alive},
      {"frames_published", s.frames_published},
      {"active_leases", s.active_leases},
      {"lease_overrides", s.lease_overrides},
      {"export_kind", kinds[static_cast<std::uint32_t>(l.export_kind)]},
      {"device_ordinal", l.device_ordinal},
      {"device_uuid", l.export_kind == ipc::format::ExportKind::none ? "" : cuda::uuid_string(l.device_uuid)},
      {"created_unix_ns", l.created_realtime_ns},
  };
  if (s.latest) {
    j["latest"] = {{"frame_id", s.latest->frame_id},
                   {"slot", s.latest->slot},
                   {"publish_unix_ns", s.latest->publish_realtime_ns},
                   {"object_count", s.latest->meta.object_count},
                   {"diameter", s.latest->meta.diameter}};
    std::string note;
    j["latest"]["meta"] = safe_string(s.latest->meta.json, &note);
    if (!note.empty()) j["latest"]["meta_note"] = note;
  }
  if (s.stuck) j["stuck"] = true;
  return j;
}

void add_post_device_option(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device, "cpu, or cuda / cuda:N: compute on the GPU (the same result)")
      ->check([](const std::string& d) {
        const bool ok = d == "cpu" || d == "cuda" ||
                        (d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.size() < 9 &&
                         d.find_first_not_of("0123456789", 5) == std::string::npos);
        return ok ? std::string() : "expected cpu, cuda or cuda:N";
      });
}

int cuda_ordinal(const std::string& device) { return device == "cuda" ? 0 : std::stoi(device.substr(5)); }

}  // namespace cpipc::cli
