// The service benchmark's cpipc side (benchmarks/service_bench.py runs it).
//
//   bench_service clients --socket S --image IMG --clients C --requests R [--diameter D]
//       C client threads, each with its own connection (cpipc::service::Client)
//       and its own SegmentReader, connect first, then start together and
//       submit R requests one after the other. Per request: submit -> result
//       message -> masks copied out of the result segment (copy_frame, a
//       private copy) -> release. Prints one JSON object: wall time from the
//       start to the last copy, and every request's timestamps
//       (CLOCK_MONOTONIC ns: submitted, result message read, masks copied, and
//       the frame's publish_monotonic_ns from the segment).
//
//   bench_service consumer --name N
//       A separate consumer process: waits on segment N (SegmentReader::
//       wait_next), and for every new frame takes a zero-copy lease and reads
//       the frame's first byte. Prints one JSON line per frame as it goes:
//       publish_ns (FrameInfo.publish_monotonic_ns), woke_ns (wait_next
//       returned), first_byte_ns (the byte read). Follows the segment when the
//       producer re-creates it for another shape (the first frame after that
//       is marked "reattached": its time includes noticing the re-creation
//       and attaching again, not only a wake-up); ends on SIGTERM/SIGINT or
//       when the producer ends.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpipc/error.hpp"
#include "cpipc/ipc/process.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/service/client.hpp"

namespace {

using cpipc::Errc;
using cpipc::Error;
using cpipc::ipc::monotonic_ns;
using cpipc::ipc::SegmentReader;
using nlohmann::json;

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_service clients --socket S --image IMG --clients C --requests R [--diameter D]\n"
               "       bench_service consumer --name N\n");
  std::exit(2);
}

struct Args {
  std::string mode, socket, image, name;
  int clients = 1, requests = 1;
  double diameter = 30.0;
};

Args parse(int argc, char** argv) {
  if (argc < 2) usage();
  Args a;
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) usage();
    const std::string v = argv[++i];
    if (k == "--socket") a.socket = v;
    else if (k == "--image") a.image = v;
    else if (k == "--name") a.name = v;
    else if (k == "--clients") a.clients = std::stoi(v);
    else if (k == "--requests") a.requests = std::stoi(v);
    else if (k == "--diameter") a.diameter = std::stod(v);
    else usage();
  }
  return a;
}

struct Record {
  int client = 0, index = 0;
  std::uint64_t submit_ns = 0, result_ns = 0, copied_ns = 0, publish_ns = 0;
  std::uint64_t checksum = 0;
  json result;
};

// Copies frame (slot, seq) out of the result segment, attaching (again when
// the producer re-created it for another shape). Returns its FrameInfo.
cpipc::ipc::FrameInfo copy_result(std::unique_ptr<SegmentReader>& reader, const json& result,
                                  std::vector<std::byte>& out) {
  const std::string name = result.at("segment");
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!reader || reader->name() != name) reader = std::make_unique<SegmentReader>(SegmentReader::attach(name));
    const auto& d = reader->desc();
    const auto& shape = result.at("shape");
    if (d.ndim == 2 && d.shape[0] == shape[0].get<std::int64_t>() && d.shape[1] == shape[1].get<std::int64_t>()) {
      if (auto info = reader->copy_frame(result.at("slot").get<std::uint32_t>(), result.at("seq").get<std::uint64_t>(),
                                         out)) {
        return *info;
      }
    }
    reader.reset();
  }
  throw Error(Errc::producer_gone, "result frame overwritten before it was read");
}

int run_clients(const Args& a) {
  if (a.socket.empty() || a.image.empty() || a.clients < 1 || a.requests < 1) usage();
  std::vector<cpipc::service::Client> conns;
  for (int c = 0; c < a.clients; ++c) conns.push_back(cpipc::service::Client::connect(a.socket));
  std::vector<std::vector<Record>> records(a.clients);
  std::vector<std::string> errors(a.clients);
  std::latch ready(a.clients + 1);
  std::atomic<std::uint64_t> start_ns{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < a.clients; ++c) {
    threads.emplace_back([&, c] {
      auto& client = conns[c];
      std::unique_ptr<SegmentReader> reader;
      std::vector<std::byte> masks;
      ready.arrive_and_wait();
      try {
        for (int i = 0; i < a.requests; ++i) {
          Record r;
          r.client = c;
          r.index = i;
          cpipc::service::SubmitRequest req;
          req.id = "c" + std::to_string(c) + "-" + std::to_string(i);
          req.image = a.image;
          req.diameter = a.diameter;
          r.submit_ns = monotonic_ns();
          client.submit(req);
          for (;;) {
            auto m = client.next(std::chrono::hours(1));
            if (!m || m->value("id", "") != req.id) continue;
            const std::string type = m->value("type", "");
            if (type == "error") throw Error(Errc::system, m->value("code", "") + ": " + m->value("message", ""));
            if (type != "result") continue;
            r.result_ns = monotonic_ns();
            const auto info = copy_result(reader, *m, masks);
            r.copied_ns = monotonic_ns();
            client.release(req.id);
            r.publish_ns = info.publish_monotonic_ns;
            r.result = std::move(*m);
            break;
          }
          std::uint64_t sum = 0;  // after the timing: the masks must be the same every time
          for (std::size_t k = 0; k + 8 <= masks.size(); k += 8) {
            std::uint64_t w;
            std::memcpy(&w, masks.data() + k, 8);
            sum = sum * 31 + w;
          }
          r.checksum = sum;
          records[c].push_back(std::move(r));
        }
      } catch (const std::exception& e) {
        errors[c] = e.what();
      }
    });
  }
  start_ns = monotonic_ns();
  ready.arrive_and_wait();
  for (auto& t : threads) t.join();
  std::uint64_t end_ns = start_ns;
  json out{{"clients", a.clients}, {"requests_per_client", a.requests}, {"image", a.image},
           {"start_ns", start_ns.load()}, {"requests", json::array()}, {"errors", json::array()}};
  for (int c = 0; c < a.clients; ++c) {
    if (!errors[c].empty()) out["errors"].push_back(errors[c]);
    for (const auto& r : records[c]) {
      end_ns = std::max(end_ns, r.copied_ns);
      out["requests"].push_back({{"client", r.client},
                                 {"index", r.index},
                                 {"submit_ns", r.submit_ns},
                                 {"result_ns", r.result_ns},
                                 {"copied_ns", r.copied_ns},
                                 {"publish_ns", r.publish_ns},
                                 {"checksum", std::to_string(r.checksum)},
                                 {"objects", r.result.value("objects", -1)},
                                 {"timings_s", r.result.value("timings_s", json::object())}});
    }
  }
  out["end_ns"] = end_ns;
  out["wall_s"] = static_cast<double>(end_ns - start_ns) * 1e-9;
  std::printf("%s\n", out.dump().c_str());
  return out["errors"].empty() ? 0 : 1;
}

volatile std::sig_atomic_t stop = 0;

SegmentReader attach_waiting(const std::string& name) {
  for (;;) {
    try {
      return SegmentReader::attach(name);
    } catch (const Error& e) {
      if (e.code() != Errc::not_found || stop) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int run_consumer(const Args& a) {
  if (a.name.empty()) usage();
  struct sigaction sa{};
  sa.sa_handler = [](int) { stop = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  SegmentReader reader = attach_waiting(a.name);
  std::uint64_t after = 0;
  bool reattached = false;  // the next frame is the first of a segment re-created for another shape
  std::printf("{\"ready\": true}\n");
  std::fflush(stdout);
  while (!stop) {
    cpipc::ipc::FrameInfo f;
    try {
      f = reader.wait_next(after, std::chrono::milliseconds(200));
    } catch (const Error& e) {
      if (e.code() == Errc::timed_out) continue;
      if (e.code() != Errc::producer_gone) throw;
      if (std::string(e.what()).find("re-created") == std::string::npos) break;  // the producer ended
      reader = attach_waiting(a.name);
      after = 0;
      reattached = true;
      continue;
    }
    const std::uint64_t woke = monotonic_ns();
    after = f.frame_id;
    auto lease = reader.lease_latest();
    if (!lease || lease->info().frame_id != f.frame_id) continue;  // a newer one came already: not timed
    const volatile std::byte first = lease->view().data[0];
    const std::uint64_t first_byte = monotonic_ns();
    (void)first;
    const bool valid = lease->valid();
    std::printf("{\"frame_id\": %llu, \"publish_ns\": %llu, \"woke_ns\": %llu, \"first_byte_ns\": %llu, "
                "\"valid\": %s, \"reattached\": %s, \"bytes\": %zu}\n",
                static_cast<unsigned long long>(f.frame_id), static_cast<unsigned long long>(f.publish_monotonic_ns),
                static_cast<unsigned long long>(woke), static_cast<unsigned long long>(first_byte),
                valid ? "true" : "false", reattached ? "true" : "false", reader.desc().nbytes());
    std::fflush(stdout);
    reattached = false;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (a.mode == "clients") return run_clients(a);
    if (a.mode == "consumer") return run_consumer(a);
    usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_service: %s\n", e.what());
    return 1;
  }
}
