// `cpipc serve` and its clients, as real processes: the producer is the real
// binary with the embedded network; clients are the client library in this
// process, raw sockets, and `cpipc submit` processes that get killed.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "cpipc/cuda/device.hpp"
#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/io/tiff.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/ipc/writer.hpp"
#include "cpipc/service/client.hpp"
#include "cpipc/util/child_process.hpp"
#include "support/cli_support.hpp"
#include "support/masks_png.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

const std::string kFixtures = CPIPC_SOURCE_DIR "/tests/data/model";

// A float32 image of tiles of a fixture, big enough to take seconds.
std::string large_image(const test::TempDir& dir) {
  const io::Array src = io::read_npy(kFixtures + "/float_multitile/image.npy");
  const std::vector<float> v = io::to_float32(src, "src");
  const std::int64_t h = src.desc.shape[0], w = src.desc.shape[1];
  io::Array big;
  const std::int64_t shape[2] = {4 * h, 4 * w};
  big.desc = ipc::TensorDesc::contiguous(ipc::kFloat32, shape);
  big.data.resize(big.desc.nbytes());
  auto* p = reinterpret_cast<float*>(big.data.data());
  for (std::int64_t y = 0; y < 4 * h; ++y) {
    for (std::int64_t x = 0; x < 4 * w; ++x) p[y * 4 * w + x] = v[(y % h) * w + (x % w)];
  }
  const std::string path = dir.file("large.npy");
  io::write_npy(path, big.view());
  return path;
}

// The producer process, serving once constructed; SIGTERM when it goes.
// `shell` runs first in a /bin/sh that then execs the producer (same pid).
class Producer {
 public:
  explicit Producer(const test::TempDir& dir, std::vector<std::string> extra = {}, const std::string& shell = "",
                    const std::string& stream = "")
      : stream_(stream.empty() ? test::unique_name("s") : stream), socket_(dir.file("serve.sock")) {
    std::vector<std::string> argv{test::cpipc_binary(), "serve", "--name", stream_, "--socket", socket_};
    // The CPU unless the test names a device (CLI11 takes --device once).
    if (std::find(extra.begin(), extra.end(), "--device") == extra.end()) argv.insert(argv.end(), {"--device", "cpu"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!shell.empty()) argv.insert(argv.begin(), {"/bin/sh", "-c", shell + " && exec \"$@\"", "sh"});
    process_.emplace(argv);
    const auto line = process_->read_line(60s);
    if (!line || !line->starts_with("serving on")) {
      throw std::runtime_error("cpipc serve did not start: " + line.value_or("no output"));
    }
  }
  ~Producer() {
    if (process_) {
      process_->signal(SIGTERM);
      (void)process_->wait(10s);
    }
  }
  const std::string& socket() const { return socket_; }
  const std::string& stream() const { return stream_; }
  util::ChildProcess& process() { return *process_; }

 private:
  std::string stream_;
  std::string socket_;
  std::optional<util::ChildProcess> process_;
};

service::SubmitRequest request(const std::string& id, const std::string& image) {
  service::SubmitRequest r;
  r.id = id;
  r.image = image;
  return r;
}

// The masks `cpipc segment` gives for the same image, read back. A request
// without a diameter is estimated, as `segment --diameter 0`.
std::vector<std::uint32_t> one_shot(const test::TempDir& dir, const std::string& image) {
  const std::string out = dir.file("oneshot-" + std::to_string(std::hash<std::string>{}(image)));
  const test::CommandResult r =
      test::run_cpipc({"segment", image, "-o", out, "--device", "cpu", "--diameter", "0", "--json"}, 120s);
  EXPECT_EQ(r.status, 0) << r.err;
  return test::read_masks_png(json::parse(r.out)["masks"].get<std::string>());
}

// A raw connection, for what the client library would never send.
class RawConnection {
 public:
  explicit RawConnection(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect");
    hello_ = *service::receive_message(fd_, 10s);
  }
  ~RawConnection() { ::close(fd_); }
  void send_raw(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  }
  void send_json_text(const std::string& text) {
    std::string frame(4, '\0');
    for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
    send_raw(frame + text);
  }
  json next() {
    auto m = service::receive_message(fd_, 30s);
    if (!m) throw std::runtime_error("no message in 30 s");
    return *m;
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  json hello_;
};

TEST(Service, EightConcurrentClientsEachGetTheOneShotMasks) {
  test::TempDir dir;
  const std::vector<std::string> images = {kFixtures + "/gray16_up/image.npy", kFixtures + "/rgb8/image.npy",
                                           kFixtures + "/float_multitile/image.npy", kFixtures + "/tiny16/image.npy"};
  std::vector<std::vector<std::uint32_t>> expected;
  for (const auto& image : images) expected.push_back(one_shot(dir, image));

  Producer producer(dir);
  std::vector<std::future<std::vector<std::uint32_t>>> results;
  for (int c = 0; c < 8; ++c) {
    results.push_back(std::async(std::launch::async, [&, c] {
      service::Client client = service::Client::connect(producer.socket());
      const service::SegmentResult r = client.segment(request("c" + std::to_string(c), images[c % 4]));
      EXPECT_EQ(r.result.segment, producer.stream());
      return io::to_labels(r.masks, "result");
    }));
  }
  for (int c = 0; c < 8; ++c) EXPECT_EQ(results[c].get(), expected[c % 4]) << "client " << c;
}

TEST(Service, AClientCanCancelALargeImageMidway) {
  test::TempDir dir;
  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  client.submit(request("big", large_image(dir)));
  json m;
  do {
    m = *client.next(60s);
  } while (!(m["type"] == "progress" && m["tiles_done"].get<int>() > 0));
  client.cancel("big");
  do {
    m = *client.next(60s);
  } while (m["type"] == "progress");
  EXPECT_EQ(m["type"], "error");
  EXPECT_EQ(m["code"], "cancelled");
  // The producer goes on serving.
  EXPECT_EQ(client.segment(request("small", kFixtures + "/tiny16/image.npy")).result.segment, producer.stream());
}

TEST(Service, ATimeoutFires) {
  test::TempDir dir;
  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  service::SubmitRequest r = request("slow", large_image(dir));
  r.timeout_s = 0.5;
  try {
    (void)client.segment(r);
    ADD_FAILURE() << "no timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::timed_out) << e.what();
    EXPECT_NE(std::string(e.what()).find("timed_out"), std::string::npos) << e.what();
  }
}

TEST(Service, AClientKilledMidRequestDoesNotStopTheOthers) {
  test::TempDir dir;
  Producer producer(dir);
  {
    util::ChildProcess submitter({test::cpipc_binary(), "submit", large_image(dir), "--socket", producer.socket()});
    std::this_thread::sleep_for(1500ms);
    submitter.kill();
  }
  service::Client client = service::Client::connect(producer.socket());
  const auto r = client.segment(request("after", kFixtures + "/tiny16/image.npy"), {}, 120s);
  EXPECT_EQ(r.result.segment, producer.stream());
}

TEST(Service, ClientsLearnWithinASecondThatTheProducerDied) {
  test::TempDir dir;
  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  (void)client.segment(request("first", kFixtures + "/tiny16/image.npy"));  // the result segment now exists
  client.submit(request("big", large_image(dir)));
  (void)client.next(30s);  // accepted
  producer.process().kill();
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (;;) (void)client.next(10s);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::producer_gone) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  // The dead producer's segment is garbage now; gc removes it.
  EXPECT_TRUE(test::shm_exists(producer.stream()));
  EXPECT_EQ(test::run_cpipc({"gc", producer.stream()}).status, 0);
  EXPECT_FALSE(test::shm_exists(producer.stream()));
  // A new producer takes over the stale socket.
  Producer again(dir);
  EXPECT_EQ(service::Client::connect(again.socket()).hello().version, service::kProtocolVersion);
}

TEST(Service, BadRequestsGetTypedErrorsAndTheConnectionLives) {
  test::TempDir dir;
  Producer producer(dir);
  RawConnection raw(producer.socket());
  raw.send_json_text("{not json");
  EXPECT_EQ(raw.next()["code"], "bad_request");
  raw.send_json_text("[1, 2]");
  EXPECT_EQ(raw.next()["code"], "bad_request");
  raw.send_json_text(R"({"type": "launch"})");
  EXPECT_EQ(raw.next()["code"], "bad_request");
  raw.send_json_text(R"({"type": "submit", "id": "a", "image": "/x.png", "colour": "red"})");
  json m = raw.next();
  EXPECT_EQ(m["code"], "bad_request");
  EXPECT_NE(m["message"].get<std::string>().find("unknown field \"colour\""), std::string::npos) << m;
  raw.send_json_text(R"({"type": "submit", "id": "b", "image": "/x.png", "diameter": -3})");
  EXPECT_EQ(raw.next()["code"], "bad_request");
  raw.send_json_text(R"({"type": "submit", "id": "c"})");
  EXPECT_EQ(raw.next()["code"], "bad_request");
  raw.send_json_text(R"({"type": "ping"})");
  EXPECT_EQ(raw.next()["type"], "pong");
}

TEST(Service, BadImagesAndInputSegmentsAreTheirClientsErrorOnly) {
  test::TempDir dir;
  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  const auto code_of = [&](const service::SubmitRequest& r) {
    try {
      (void)client.segment(r);
      return std::string("result");
    } catch (const Error& e) {
      const std::string what = e.what();
      return what.substr(0, what.find(':'));
    }
  };
  EXPECT_EQ(code_of(request("missing", dir.file("absent.png"))), "bad_image");
  std::ofstream(dir.file("text.png")) << "not an image\n";
  EXPECT_EQ(code_of(request("text", dir.file("text.png"))), "bad_image");

  // Input segments the client published itself: wrong dtype, wrong shape.
  const std::int64_t shape1[1] = {100};
  ipc::SegmentWriter line =
      ipc::SegmentWriter::create(test::unique_name("in1"), ipc::TensorDesc::contiguous(ipc::kFloat32, shape1));
  line.publish(std::vector<std::byte>(line.desc().nbytes()));
  service::SubmitRequest r1;
  r1.id = "line";
  r1.input = line.name();
  EXPECT_EQ(code_of(r1), "bad_image");
  const std::int64_t shape2[2] = {32, 32};
  ipc::SegmentWriter wide = ipc::SegmentWriter::create(
      test::unique_name("in64"), ipc::TensorDesc::contiguous({ipc::DTypeCode::uint, 64, 1}, shape2));
  wide.publish(std::vector<std::byte>(wide.desc().nbytes()));
  service::SubmitRequest r64;
  r64.id = "wide";
  r64.input = wide.name();
  EXPECT_EQ(code_of(r64), "bad_image");
  service::SubmitRequest none;
  none.id = "none";
  none.input = test::unique_name("absent");
  EXPECT_EQ(code_of(none), "bad_image");
  // A good input segment: the seed's two-way sharing.
  const io::Array img = io::read_npy(kFixtures + "/tiny16/image.npy");
  ipc::SegmentWriter good = ipc::SegmentWriter::create(test::unique_name("in"), img.desc);
  good.publish(img.data);
  service::SubmitRequest rg;
  rg.id = "good";
  rg.input = good.name();
  EXPECT_EQ(code_of(rg), "result");
}

// A z-stack (an ImageJ TIFF) is segmented plane by plane into one [Z, H, W]
// result, each plane the masks `cpipc segment` gives for it alone; naming
// the axes in the request overrides the file's.
TEST(Service, ARequestWithoutADiameterIsEstimatedAndSaysSo) {
  test::TempDir dir;
  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  const std::string image = CPIPC_SOURCE_DIR "/tests/data/size/small_cells/image.npy";
  const service::SegmentResult est = client.segment(request("none", image), {}, 120s);
  EXPECT_TRUE(est.result.diameter_estimated);
  const ipc::SegmentReader reader = ipc::SegmentReader::attach(producer.stream());
  std::vector<std::byte> bytes;
  const auto info = reader.copy_frame(est.result.slot, est.result.seq, bytes);
  ASSERT_TRUE(info);
  EXPECT_EQ(json::parse(info->meta.json)["diameter_estimated"], true) << info->meta.json;
  EXPECT_FLOAT_EQ(info->meta.diameter, static_cast<float>(est.result.diameter));
  client.release("none");
  service::SubmitRequest fixed = request("fixed", image);
  fixed.diameter = 20.0;
  const service::SegmentResult f = client.segment(fixed, {}, 120s);
  EXPECT_FALSE(f.result.diameter_estimated);
  EXPECT_EQ(f.result.diameter, 20.0);
}

TEST(Service, AZStackIsOneResultOfItsPlanes) {
  test::TempDir dir;
  const io::Array img = io::read_npy(kFixtures + "/tiny16/image.npy");
  const std::int64_t h = img.desc.shape[0], w = img.desc.shape[1];
  io::Array stack;
  const std::int64_t shape[3] = {3, h, w};
  stack.desc = ipc::TensorDesc::contiguous(img.desc.dtype, shape);
  for (int z = 0; z < 3; ++z) stack.data.insert(stack.data.end(), img.data.begin(), img.data.end());
  io::write_tiff(dir.file("stack.tif"), stack.view(), "ZYX");
  const std::vector<std::uint32_t> plane = one_shot(dir, kFixtures + "/tiny16/image.npy");

  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  const service::SegmentResult res = client.segment(request("stack", dir.file("stack.tif")));
  EXPECT_EQ(res.result.shape, (std::vector<std::int64_t>{3, h, w}));
  EXPECT_EQ(res.result.axes, "ZYX");
  ASSERT_EQ(res.masks.desc.ndim, 3u);
  const std::vector<std::uint32_t> got = io::to_labels(res.masks, "result");
  for (int z = 0; z < 3; ++z) {
    EXPECT_TRUE(std::equal(plane.begin(), plane.end(), got.begin() + z * h * w)) << "plane " << z;
  }
  // The same file with its first axis named as channels is one 2-D image.
  service::SubmitRequest as_channels = request("channels", dir.file("stack.tif"));
  as_channels.channel_axis = 0;
  const service::SegmentResult two_d = client.segment(as_channels);
  EXPECT_EQ(two_d.result.shape, (std::vector<std::int64_t>{h, w}));
  EXPECT_EQ(two_d.result.axes, "YX");
}

TEST(Service, AnOversizeMessageIsRefusedAndASilentClientHarmsNobody) {
  test::TempDir dir;
  Producer producer(dir);
  RawConnection silent(producer.socket());  // connects and never sends
  RawConnection half(producer.socket());
  half.send_raw(std::string("\x10\x00", 2));  // half a length prefix, then nothing
  {
    RawConnection big(producer.socket());
    big.send_raw(std::string("\xff\xff\xff\x7f", 4));
    const json m = big.next();
    EXPECT_EQ(m["code"], "bad_request");
    EXPECT_THROW((void)big.next(), Error);  // and the producer hangs up
  }
  service::Client client = service::Client::connect(producer.socket());
  EXPECT_EQ(client.segment(request("ok", kFixtures + "/tiny16/image.npy")).result.segment, producer.stream());
}

// Replies echo at most 128 bytes of what a client sent: no message, however
// large its id or type, can make a reply that does not fit a frame, and
// none ends the producer (it used to: std::terminate, socket and segment
// left behind).
TEST(Service, MessagesWithHugeFieldsCostOnlyAnError) {
  test::TempDir dir;
  Producer producer(dir);
  RawConnection raw(producer.socket());
  raw.send_json_text(json{{"type", "cancel"}, {"id", std::string(600000, 'x')}}.dump());
  EXPECT_EQ(raw.next()["code"], "bad_request");
  raw.send_json_text(json{{"type", std::string(1000000, 't')}}.dump());
  json m = raw.next();
  EXPECT_EQ(m["code"], "bad_request");
  EXPECT_LT(m.dump().size(), 1000u) << "the reply quotes what was sent at length";
  raw.send_json_text(json{{"type", "submit"}, {"id", std::string(600000, 'i')}, {"image", "/x.png"}}.dump());
  EXPECT_EQ(raw.next()["code"], "bad_request");
  raw.send_json_text(json{{"type", "submit"}, {"id", "p"}, {"image", std::string(900000, 'p')}}.dump());
  EXPECT_EQ(raw.next()["code"], "bad_request");
  // 2**40 is no channel 0.
  raw.send_json_text(R"({"type": "submit", "id": "c", "image": "/x.png", "channels": [1099511627776, 0]})");
  m = raw.next();
  EXPECT_EQ(m["code"], "bad_request");
  EXPECT_NE(m["message"].get<std::string>().find("channels"), std::string::npos) << m;
  raw.send_json_text(R"({"type": "ping"})");
  EXPECT_EQ(raw.next()["type"], "pong");
  service::Client client = service::Client::connect(producer.socket());
  EXPECT_EQ(client.segment(request("ok", kFixtures + "/tiny16/image.npy"), {}, 60s).result.segment, producer.stream());
}

// A FIFO (or a device, or a directory) as the image would block the worker
// in open() for ever: it is refused at once, and the next request runs.
TEST(Service, AFifoAsTheImageIsRefusedAndStallsNobody) {
  test::TempDir dir;
  const std::string fifo = dir.file("pipe.tif");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  const auto t0 = std::chrono::steady_clock::now();
  try {
    (void)client.segment(request("fifo", fifo), {}, 20s);
    ADD_FAILURE() << "a FIFO gave a result";
  } catch (const Error& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("bad_image:")) << e.what();
    EXPECT_NE(std::string(e.what()).find("FIFO"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(client.segment(request("ok", kFixtures + "/tiny16/image.npy"), {}, 60s).result.segment, producer.stream());
}

// An input segment whose producer stopped mid-write costs its own request
// only, within the reader's deadline (it used to spin the worker forever).
TEST(Service, AnInputSegmentStuckMidWriteEndsItsRequestOnly) {
  test::TempDir dir;
  const std::string name = test::unique_name("stuck");
  util::ChildProcess peer({test::segment_peer_binary(), "stall", name});
  const auto line = peer.read_line(10s);
  ASSERT_TRUE(line && line->starts_with("stalled")) << line.value_or("no output");
  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  service::SubmitRequest r;
  r.id = "stuck";
  r.input = name;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    (void)client.segment(r, {}, 30s);
    ADD_FAILURE() << "a segment stuck mid-write gave a result";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mid-write"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_EQ(client.segment(request("ok", kFixtures + "/tiny16/image.npy"), {}, 60s).result.segment, producer.stream());
  peer.signal(SIGTERM);
  EXPECT_EQ(peer.wait(10s), 0);
}

// The frame's metadata has a fixed size; a long path or id is cut to fit
// (and says so) instead of failing a finished segmentation.
TEST(Service, ALongPathAndIdStillGiveTheirResult) {
  test::TempDir dir;
  fs::path deep = dir.path();
  for (int i = 0; i < 4; ++i) deep /= std::string(60, static_cast<char>('a' + i));
  fs::create_directories(deep);
  const std::string image = (deep / "image.npy").string();
  fs::copy_file(kFixtures + "/tiny16/image.npy", image);
  ASSERT_GT(image.size(), 250u);
  Producer producer(dir);
  service::Client client = service::Client::connect(producer.socket());
  const std::string id = std::string(127, 'i') + "\x01";
  const service::SegmentResult r = client.segment(request(id, image), {}, 60s);
  EXPECT_EQ(r.result.id, id);
  const ipc::SegmentReader reader = ipc::SegmentReader::attach(producer.stream());
  std::vector<std::byte> bytes;
  const auto info = reader.copy_frame(r.result.slot, r.result.seq, bytes);
  ASSERT_TRUE(info);
  const json meta = json::parse(info->meta.json);
  EXPECT_EQ(meta["elided"], true) << meta;
  EXPECT_EQ(meta["diameter_estimated"], r.result.diameter_estimated) << meta;
  EXPECT_TRUE(meta["source"].get<std::string>().ends_with("dddd/image.npy")) << meta;
}

// A producer killed with SIGKILL leaves its segment behind; the next one on
// the same stream collects it and serves (it used to fail every request
// with "already exists" after printing "serving").
TEST(Service, AProducerRestartedAfterSigkillServesAtOnce) {
  test::TempDir dir;
  std::string stream;
  {
    Producer first(dir);
    stream = first.stream();
    service::Client client = service::Client::connect(first.socket());
    (void)client.segment(request("first", kFixtures + "/tiny16/image.npy"), {}, 60s);
    first.process().kill();
    (void)first.process().wait(10s);
  }
  ASSERT_TRUE(test::shm_exists(stream));
  Producer again(dir, {}, "", stream);
  service::Client client = service::Client::connect(again.socket());
  EXPECT_EQ(client.segment(request("again", kFixtures + "/tiny16/image.npy"), {}, 60s).result.segment, stream);
  // A second producer of a stream whose producer is alive is refused.
  const test::CommandResult r =
      test::run_cpipc({"serve", "--name", stream, "--socket", dir.file("second.sock"), "--device", "cpu"}, 120s);
  test::expect_failure(r, 1);
  EXPECT_NE(r.err.find("live producer"), std::string::npos) << r.err;
}

// Someone removes the producer's segment ('cpipc rm', or Python's resource
// tracker at its exit): the next result is published into a re-created
// segment of the same name, where its client reads it, and the producer
// says so on stderr.
TEST(Service, ASegmentRemovedBehindTheProducersBackIsReCreated) {
  test::TempDir dir;
  const std::string err = dir.file("serve.err");
  Producer producer(dir, {}, "exec 2>'" + err + "'");
  service::Client client = service::Client::connect(producer.socket());
  const std::string image = kFixtures + "/tiny16/image.npy";
  const service::SegmentResult first = client.segment(request("before", image), {}, 60s);

  const test::CommandResult rm = test::run_cpipc({"rm", producer.stream()}, 30s);
  ASSERT_EQ(rm.status, 0) << rm.err;
  ASSERT_FALSE(test::shm_exists(producer.stream()));

  const service::SegmentResult second = client.segment(request("after", image), {}, 60s);
  EXPECT_EQ(second.result.segment, producer.stream());
  EXPECT_EQ(io::to_labels(second.masks, "after"), io::to_labels(first.masks, "before"));
  EXPECT_TRUE(test::shm_exists(producer.stream()));
  std::ifstream said(err);
  const std::string text((std::istreambuf_iterator<char>(said)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("was unlinked by someone else; re-creating it"), std::string::npos) << text;
}

// The socket is its owner's alone (0600), and a process of another user
// that still reaches it (the modes loosened by hand) is turned away by its
// credentials.
TEST(Service, OnlyTheOwnerMayTalkToTheProducer) {
  test::TempDir dir;
  Producer producer(dir);
  struct stat st {};
  ASSERT_EQ(::stat(producer.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  if (::geteuid() != 0) GTEST_SKIP() << "changing user needs root";
  ASSERT_EQ(::chmod(dir.path().c_str(), 0711), 0);
  ASSERT_EQ(::chmod(producer.socket().c_str(), 0666), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, producer.socket().c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(11);
    try {
      const auto m = service::receive_message(fd, 10s);
      ::_exit(m && (*m)["type"] == "error" && (*m)["code"] == "forbidden" ? 0 : 12);
    } catch (...) {
      ::_exit(13);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setuid, 11 connect, 12 not refused, 13 no message";
  ::chmod(dir.path().c_str(), 0700);
}

// A result as a client saw it.
struct Seen {
  std::string id;
  std::uint64_t frame_id;
};

// One connection submits a large image and five small ones at once; another
// submits one small image while the large one runs. Served round robin, the
// second client's request runs after at most one more of the first's, not
// after all five.
TEST(Service, RequestsAreServedRoundRobinAcrossClients) {
  test::TempDir dir;
  Producer producer(dir);
  const std::string small = kFixtures + "/tiny16/image.npy";
  service::Client a = service::Client::connect(producer.socket());
  service::Client b = service::Client::connect(producer.socket());
  a.submit(request("large", large_image(dir)));
  for (int i = 0; i < 5; ++i) a.submit(request("a" + std::to_string(i), small));
  std::vector<Seen> a_results;
  // Reads a's messages until `until` holds, releasing each result (a is a
  // well-behaved client: it is not held back for holding results).
  const auto read_a = [&](const std::function<bool(const json&)>& until) {
    for (;;) {
      const json m = *a.next(60s);
      if (m["type"] == "error") throw std::runtime_error("a: " + m.dump());
      if (m["type"] == "result") {
        a_results.push_back({m["id"], m["frame_id"]});
        a.release(m["id"]);
      }
      if (until(m)) return;
    }
  };
  read_a([](const json& m) { return m["type"] == "progress" && m["id"] == "large" && m["tiles_done"] > 0; });
  b.submit(request("b", small));
  json accepted;
  do {
    accepted = *b.next(60s);
  } while (accepted["type"] != "accepted");
  EXPECT_EQ(accepted["ahead"], 2) << "the large request, then one of a's";
  json b_result;
  do {
    b_result = *b.next(120s);
  } while (b_result["type"] == "progress");
  ASSERT_EQ(b_result["type"], "result") << b_result;
  b.release("b");
  read_a([&](const json&) { return a_results.size() == 6; });
  ASSERT_EQ(a_results[0].id, "large");
  // large, a0, b, a1..a4: b's frame comes right after a0's.
  EXPECT_EQ(b_result["frame_id"].get<std::uint64_t>(), a_results[1].frame_id + 1);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a_results[1 + i].id, "a" + std::to_string(i));
}

// Submits `n` small requests on `c` and reads, without releasing any, until
// `want` results have arrived or `wait` has passed; returns how many came.
// The deadline only bounds a failing test: a loaded machine (ctest -j16
// beside LibTorch) may take seconds per request.
int results_without_release(service::Client& c, int n, int want, std::chrono::milliseconds wait) {
  int results = 0;
  for (int i = 0; i < n; ++i) c.submit(request("h" + std::to_string(i), kFixtures + "/tiny16/image.npy"));
  const auto end = std::chrono::steady_clock::now() + wait;
  while (results < want && std::chrono::steady_clock::now() < end) {
    const auto m =
        c.next(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()));
    if (m && (*m)["type"] == "result") ++results;
  }
  return results;
}

// A client that reads its results and never releases them holds at most
// slots / 2 of them; its other requests wait, and nobody else does.
TEST(Service, AClientThatNeverReleasesSlowsOnlyItself) {
  test::TempDir dir;
  Producer producer(dir, {"--slots", "4", "--release-wait-ms", "600000"});
  service::Client hoarder = service::Client::connect(producer.socket());
  EXPECT_EQ(results_without_release(hoarder, 4, 2, 60s), 2);
  service::Client other = service::Client::connect(producer.socket());
  for (int i = 0; i < 6; ++i) {
    const auto r = other.segment(request("o" + std::to_string(i), kFixtures + "/tiny16/image.npy"), {}, 60s);
    EXPECT_EQ(r.result.segment, producer.stream());
  }
  // Still two: the hoarder's third request waits for one of its releases.
  // Served round robin, it would have run before the other client's six.
  EXPECT_FALSE(hoarder.next(300ms).has_value());
  hoarder.release("h0");
  json m;
  do {
    m = *hoarder.next(60s);
  } while (m["type"] != "result");
  EXPECT_EQ(m["id"], "h2");
}

// --release-wait-ms bounds the promise: results nobody releases stop
// holding their slots, and the client's waiting requests run.
TEST(Service, UnreleasedResultsAreKeptOnlyForTheReleaseWait) {
  test::TempDir dir;
  Producer producer(dir, {"--slots", "4", "--release-wait-ms", "200"});
  service::Client hoarder = service::Client::connect(producer.socket());
  EXPECT_EQ(results_without_release(hoarder, 6, 6, 60s), 6);
}

// What a long-running producer holds, from /proc: open descriptors,
// threads and resident memory (KiB).
struct Holdings {
  std::size_t fds = 0;
  long threads = 0;
  long rss_kib = 0;
};

Holdings holdings(pid_t pid) {
  Holdings h;
  const std::string proc = "/proc/" + std::to_string(pid);
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(proc + "/fd")) ++h.fds;
  std::ifstream status(proc + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("Threads:")) h.threads = std::stol(line.substr(8));
    if (line.starts_with("VmRSS:")) h.rss_kib = std::stol(line.substr(6));
  }
  return h;
}

// One client's visit: a result read and released, a bad image, a
// cancelled request, then the connection dropped; and a raw connection
// that goes away mid-message.
void visit(const Producer& producer, const std::string& tag) {
  service::Client c = service::Client::connect(producer.socket());
  const auto r = c.segment(request(tag + "-ok", kFixtures + "/tiny16/image.npy"), {}, 60s);
  EXPECT_EQ(r.result.segment, producer.stream());
  try {
    (void)c.segment(request(tag + "-missing", "/no/such/image.tif"), {}, 60s);
    ADD_FAILURE() << "a missing image gave a result";
  } catch (const Error& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("bad_image:")) << e.what();
  }
  c.submit(request(tag + "-cancel", kFixtures + "/tiny16/image.npy"));
  c.cancel(tag + "-cancel");
  RawConnection raw(producer.socket());
  raw.send_raw(std::string("\x40\x00\x00\x00{\"type\":", 13));
}

// Run for months, a producer must give back what each client took: after
// many visits it holds the descriptors and threads it held after the first
// few, and its memory has not grown by more than allocator noise.
TEST(Service, ManyVisitsLeaveNoDescriptorsThreadsOrMemoryBehind) {
  test::TempDir dir;
  Producer producer(dir);
  const pid_t pid = producer.process().pid();
  // Warm-up long enough for the CPU network to reach its steady state: the
  // fused path compiles a shape on its 6th call (model.cpp), once, ~90 MB.
  for (int i = 0; i < 10; ++i) visit(producer, "warm" + std::to_string(i));
  // The producer notices closed connections on its own time: poll until
  // its holdings settle (a leak never does).
  const auto settled = [&](const Holdings& target) {
    Holdings now = holdings(pid);
    for (int i = 0; i < 100 && (now.fds != target.fds || now.threads != target.threads); ++i) {
      std::this_thread::sleep_for(50ms);
      now = holdings(pid);
    }
    return now;
  };
  std::this_thread::sleep_for(500ms);
  const Holdings before = holdings(pid);
  for (int i = 0; i < 40; ++i) visit(producer, "v" + std::to_string(i));
  const Holdings after = settled(before);
  EXPECT_EQ(after.fds, before.fds) << "open descriptors after 40 more visits";
  EXPECT_EQ(after.threads, before.threads) << "threads after 40 more visits";
  EXPECT_LT(after.rss_kib - before.rss_kib, 64 * 1024) << "resident KiB " << before.rss_kib << " -> " << after.rss_kib;
}

// An image that needs more memory than the producer may use (here a
// `ulimit -v`) is that request's out_of_memory error; the producer goes on.
TEST(Service, AnImageTooLargeForMemoryIsOutOfMemoryAndServingGoesOn) {
  test::TempDir dir;
  io::Array big;
  const std::int64_t shape[2] = {6000, 6000};
  big.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  big.data.assign(big.desc.nbytes(), std::byte{0});
  io::write_npy(dir.file("big.npy"), big.view());
  Producer producer(dir, {}, "ulimit -v " + std::to_string(test::torch_address_space_kib()));
  service::Client client = service::Client::connect(producer.socket());
  try {
    (void)client.segment(request("big", dir.file("big.npy")), {}, 60s);
    ADD_FAILURE() << "no out_of_memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::out_of_memory) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("out_of_memory: ", 0), 0u) << e.what();
  }
  EXPECT_EQ(client.segment(request("small", kFixtures + "/tiny16/image.npy"), {}, 60s).result.segment,
            producer.stream());
}

// The subcommands around a producer: `cpipc submit --save` writes the masks
// it read from the host view (equal to the one-shot `cpipc segment`), and
// `cpipc watch` prints one JSON line per published result, following the
// stream across a shape change, until the producer ends.
TEST(Service, SubmitSavesTheMasksAndWatchFollowsTheStream) {
  test::TempDir dir;
  const std::vector<std::string> stems = {"tiny", "gray"};
  const std::vector<std::string> fixtures = {"tiny16", "gray16_up"};
  std::vector<std::string> images;
  for (std::size_t i = 0; i < stems.size(); ++i) {
    images.push_back(dir.file(stems[i] + ".npy"));
    fs::copy_file(kFixtures + "/" + fixtures[i] + "/image.npy", images.back());
  }
  Producer producer(dir);
  util::ChildProcess watch({test::cpipc_binary(), "watch", producer.stream(), "--attach-timeout", "60"});

  std::vector<std::string> args = {"submit"};
  args.insert(args.end(), images.begin(), images.end());
  args.insert(args.end(), {"--socket", producer.socket(), "--save", dir.file("saved"), "--json"});
  const test::CommandResult r = test::run_cpipc(args, 120s);
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<json> results;
  for (std::string line; std::getline(lines, line);) results.push_back(json::parse(line));
  ASSERT_EQ(results.size(), 2u) << r.out;
  for (std::size_t i = 0; i < stems.size(); ++i) {
    const std::string saved = dir.file("saved/" + stems[i] + "_cp_masks.png");
    EXPECT_EQ(results[i]["saved"][0], saved);
    EXPECT_EQ(test::read_masks_png(saved), one_shot(dir, images[i])) << stems[i];
    EXPECT_TRUE(fs::exists(dir.file("saved/" + stems[i] + "_cp_outlines.txt")));
  }

  std::vector<json> frames;
  for (int i = 0; i < 2; ++i) {
    const auto line = watch.read_line(60s);
    ASSERT_TRUE(line) << "watch printed " << frames.size() << " lines";
    frames.push_back(json::parse(*line));
  }
  producer.process().signal(SIGTERM);
  EXPECT_EQ(watch.wait(10s), 0) << "watch ends with the producer";
  for (std::size_t i = 0; i < stems.size(); ++i) {
    EXPECT_EQ(frames[i]["segment"], producer.stream());
    EXPECT_EQ(frames[i]["shape"], results[i]["shape"]);
    EXPECT_EQ(frames[i]["objects"], results[i]["objects"]);
    EXPECT_EQ(frames[i]["meta"]["source"], images[i]);
  }
}

// On a GPU the masks never leave the device before publishing: the result's
// frame has a device view (CUDA IPC) equal to its host mirror.
TEST(Service, OnCudaEachResultHasADeviceViewEqualToItsHostMasks) {
  std::string why;
  if (cuda::device_count(&why) == 0) GTEST_SKIP() << "no GPU: " << why;
  test::TempDir dir;
  Producer producer(dir, {"--device", "cuda"});
  service::Client client = service::Client::connect(producer.socket());
  ASSERT_TRUE(client.hello().device_views);
  const std::string image = kFixtures + "/gray16_up/image.npy";
  client.submit(request("gpu", image));
  json m;
  do {
    m = *client.next(120s);
  } while (m["type"] != "result" && m["type"] != "error");
  ASSERT_EQ(m["type"], "result") << m;
  auto reader = std::make_shared<const ipc::SegmentReader>(ipc::SegmentReader::attach(producer.stream()));
  if (reader->layout().export_kind != ipc::format::ExportKind::cuda_ipc) {
    GTEST_SKIP() << "CUDA IPC is unavailable here (the producer said why on stderr)";
  }
  ASSERT_EQ(m["device_view"], true) << "the segment exports device views, but the result says none: " << m;
  const io::Array host = client.read_masks(std::get<service::Result>(service::decode_producer_message(m)));
  cuda::DeviceReader device(reader);
  const auto lease = device.lease_latest(nullptr);
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->info().frame_id, m["frame_id"].get<std::uint64_t>());
  EXPECT_EQ(lease->download(nullptr), host.data);
  EXPECT_GT(m["objects"].get<int>(), 0);
  client.release("gpu");
}

TEST(Service, StopSignalCancelsWorkTellsClientsAndRemovesEverything) {
  test::TempDir dir;
  auto producer = std::make_unique<Producer>(dir);
  const std::string socket = producer->socket();
  const std::string stream = producer->stream();
  service::Client client = service::Client::connect(socket);
  (void)client.segment(request("first", kFixtures + "/tiny16/image.npy"));
  client.submit(request("big", large_image(dir)));
  (void)client.next(30s);  // accepted
  producer->process().signal(SIGTERM);
  EXPECT_EQ(producer->process().wait(20s), 0);
  json m;
  try {
    do {
      m = *client.next(5s);
    } while (m["type"] == "progress");
  } catch (const Error&) {
  }
  EXPECT_EQ(m.value("code", ""), "shutting_down") << m;
  EXPECT_FALSE(fs::exists(socket));
  EXPECT_FALSE(test::shm_exists(stream));
}

// --lifeline: the producer holds the read end of a pipe whose write end is
// its parent's; when that end closes (the parent died, however it died), the
// producer stops as on SIGTERM: exit 0, socket and segment removed.
TEST(Service, AProducerWhoseLifelineHangsUpStopsAndRemovesEverything) {
  test::TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);  // only the read end reaches the producer
  auto producer = std::make_unique<Producer>(dir, std::vector<std::string>{"--lifeline", std::to_string(fds[0])});
  ::close(fds[0]);
  const std::string socket = producer->socket();
  const std::string stream = producer->stream();
  service::Client client = service::Client::connect(socket);
  (void)client.segment(request("first", kFixtures + "/tiny16/image.npy"));
  ASSERT_TRUE(test::shm_exists(stream));
  ASSERT_EQ(::write(fds[1], "x", 1), 1);  // bytes on the lifeline are not a hang-up
  (void)client.segment(request("second", kFixtures + "/tiny16/image.npy"));
  ::close(fds[1]);
  EXPECT_EQ(producer->process().wait(20s), 0);
  EXPECT_FALSE(fs::exists(socket));
  EXPECT_FALSE(test::shm_exists(stream));
}

TEST(Service, ALifelineThatIsNotAnOpenDescriptorIsRefused) {
  test::TempDir dir;
  const test::CommandResult r = test::run_cpipc({"serve", "--name", test::unique_name("s"), "--socket",
                                                 dir.file("l.sock"), "--device", "cpu", "--lifeline", "987"},
                                                120s);
  test::expect_failure(r, 2);
  EXPECT_NE(r.err.find("--lifeline 987 is not an open file descriptor"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cpipc
