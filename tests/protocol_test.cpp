// The protocol's messages on their own: what a client may send, what a
// reply may hold, and the frame metadata that must always fit its slot.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cpipc/ipc/format.hpp"
#include "cpipc/service/protocol.hpp"

namespace cpipc::service {
namespace {

using nlohmann::json;

std::string bad_message(const json& j, std::string* id = nullptr) {
  try {
    (void)decode_client_message(j);
  } catch (const BadMessage& e) {
    if (id) *id = e.id();
    return e.what();
  }
  return "";
}

TEST(Protocol, EveryClientMessageRoundTrips) {
  SubmitRequest r;
  r.id = "a";
  r.image = "/data/x.tif";
  r.diameter = 30;
  r.channels = std::array<int, 2>{2, 3};
  r.niter = 100;
  r.timeout_s = 2.5;
  const ClientMessage back = decode_client_message(r.to_json());
  const auto& s = std::get<SubmitRequest>(back);
  EXPECT_EQ(s.to_json(), r.to_json());
  EXPECT_EQ(std::get<CancelRequest>(decode_client_message(to_json(CancelRequest{"c"}))).id, "c");
  EXPECT_EQ(std::get<ReleaseRequest>(decode_client_message(to_json(ReleaseRequest{"r"}))).id, "r");
  EXPECT_TRUE(std::holds_alternative<Ping>(decode_client_message(to_json(Ping{}))));
}

TEST(Protocol, EveryProducerMessageRoundTrips) {
  Result r;
  r.id = "a";
  r.segment = "cells";
  r.slot = 3;
  r.seq = 8;
  r.frame_id = 4;
  r.shape = {1024, 512};
  r.dtype = "uint16";
  r.objects = 412;
  r.diameter = 30;
  r.diameter_estimated = true;
  r.timings = Timings{0.1, 0.2, 0.3, 0.6};
  r.request_s = 0.7;
  const json j = to_json(r);
  EXPECT_EQ(j["timings_s"]["total"], 0.6);
  EXPECT_EQ(j["diameter_estimated"], true);
  EXPECT_FALSE(j["timings_s"].contains("segment")) << "one spelling of the total";
  EXPECT_EQ(to_json(decode_producer_message(j)), j);
  for (const ProducerMessage& m :
       {ProducerMessage{Hello{}}, ProducerMessage{Accepted{"a", 2}},
        ProducerMessage{ProgressEvent{"a", "network", 1, 4}}, ProducerMessage{error_reply("a", codes::cancelled, "x")},
        ProducerMessage{Pong{}}, ProducerMessage{Bye{}}}) {
    EXPECT_EQ(to_json(decode_producer_message(to_json(m))), to_json(m));
  }
}

TEST(Protocol, BadMessagesSayWhatIsWrongAndEchoOnlyAShortId) {
  std::string id;
  EXPECT_NE(bad_message(json{{"type", "launch"}, {"id", "x"}}, &id).find("unknown message type"), std::string::npos);
  EXPECT_EQ(id, "x");
  const std::string huge(600000, 'h');
  EXPECT_LT(bad_message(json{{"type", huge}}, &id).size(), 200u);
  EXPECT_LT(bad_message(json{{"type", "cancel"}, {"id", huge}}, &id).size(), 200u);
  EXPECT_EQ(id, "");
  EXPECT_NE(bad_message(json{{"type", "submit"}, {"id", "a"}, {"image", "/x"}, {huge, 1}}, &id).find("unknown field"),
            std::string::npos);
  EXPECT_EQ(id, "a");
  EXPECT_NE(bad_message(json{{"type", "submit"}, {"id", "a"}, {"image", "/x"}, {"channels", {1099511627776LL, 0}}})
                .find("channels"),
            std::string::npos);
  EXPECT_NE(bad_message(json{{"type", "submit"}, {"id", "a"}, {"image", "/x"}, {"channels", {-1, 0}}}).find("channels"),
            std::string::npos);
  EXPECT_NE(bad_message(json{{"type", "submit"}, {"id", "a"}, {"image", "/x"}, {"channels", {65, 0}}}).find("channels"),
            std::string::npos);
  EXPECT_NE(bad_message(json{{"type", "submit"}, {"id", "a"}, {"image", "/x"}, {"niter", 1e300}}).find("niter"),
            std::string::npos);
  EXPECT_NE(bad_message(json{{"type", "submit"}, {"id", "a"}}).find("exactly one"), std::string::npos);
  EXPECT_NE(bad_message(json::array({1, 2})).find("object"), std::string::npos);
}

// Cellpose's per-image options (cpipc segment --no-norm, --norm-percentile,
// --invert, --exclude-on-edges) travel as typed fields and are checked.
TEST(Protocol, CellposeNormalisationAndEdgeOptionsRoundTripAndAreChecked) {
  SubmitRequest r;
  r.id = "a";
  r.image = "/data/x.tif";
  r.norm_percentile = std::array<float, 2>{5.0f, 95.0f};
  r.invert = true;
  r.exclude_on_edges = true;
  const json j = r.to_json();
  EXPECT_EQ(j["norm_percentile"], json({5.0, 95.0}));
  EXPECT_EQ(j["exclude_on_edges"], true);
  EXPECT_FALSE(j.contains("normalize")) << "unset fields are left out";
  const auto back = std::get<SubmitRequest>(decode_client_message(j));
  EXPECT_EQ(back.to_json(), j);
  EXPECT_TRUE(back.norm_percentile == r.norm_percentile);
  EXPECT_TRUE(back.invert == true);

  const json base{{"type", "submit"}, {"id", "a"}, {"image", "/x"}};
  const auto with = [&](const char* key, const json& v) {
    json m = base;
    m[key] = v;
    return bad_message(m);
  };
  EXPECT_EQ(with("normalize", false), "");
  EXPECT_NE(with("normalize", 1).find("true or false"), std::string::npos);
  EXPECT_NE(with("exclude_on_edges", "yes").find("true or false"), std::string::npos);
  EXPECT_NE(with("norm_percentile", {95, 5}).find("0 <= low < high <= 100"), std::string::npos);
  EXPECT_NE(with("norm_percentile", {1, 101}).find("norm_percentile"), std::string::npos);
  EXPECT_NE(with("norm_percentile", {1}).find("norm_percentile"), std::string::npos);
  json both = base;
  both["normalize"] = false;
  both["norm_percentile"] = {1, 99};
  EXPECT_NE(bad_message(both).find("contradict"), std::string::npos);
}

TEST(Protocol, ThreeDOptionsRoundTripAndAreChecked) {
  SubmitRequest r;
  r.id = "v";
  r.image = "/data/stack.tif";
  r.do_3d = true;
  r.anisotropy = 2.5;
  r.flow3d_smooth = std::array<double, 3>{2.0, 1.0, 1.0};
  const json j = r.to_json();
  EXPECT_EQ(j["do_3d"], true);
  EXPECT_EQ(j["flow3d_smooth"], json({2.0, 1.0, 1.0}));
  EXPECT_FALSE(j.contains("stitch_threshold"));
  const auto back = std::get<SubmitRequest>(decode_client_message(j));
  EXPECT_EQ(back.to_json(), j);

  const json base{{"type", "submit"}, {"id", "v"}, {"image", "/x"}};
  const auto with = [&](std::initializer_list<std::pair<const char*, json>> fields) {
    json m = base;
    for (const auto& [k, v] : fields) m[k] = v;
    return bad_message(m);
  };
  EXPECT_EQ(with({{"stitch_threshold", 0.5}}), "");
  EXPECT_EQ(with({{"do_3d", true}, {"stitch_threshold", 0}}), "");
  EXPECT_NE(with({{"do_3d", true}, {"stitch_threshold", 0.5}}).find("exclude each other"), std::string::npos);
  EXPECT_NE(with({{"stitch_threshold", 1.5}}).find("IoU"), std::string::npos);
  EXPECT_NE(with({{"anisotropy", 0}}).find("anisotropy"), std::string::npos);
  EXPECT_NE(with({{"flow3d_smooth", {1, 1}}}).find("[z, y, x]"), std::string::npos);
  EXPECT_NE(with({{"flow3d_smooth", {1, -1, 1}}}).find("[z, y, x]"), std::string::npos);
  EXPECT_NE(with({{"do_3d", "yes"}}).find("true or false"), std::string::npos);
}

TEST(Protocol, AnErrorReplyAlwaysFitsAFrame) {
  const ErrorReply e = error_reply(std::string(600000, 'x'), codes::bad_request, std::string(2000000, 'm'));
  EXPECT_EQ(e.id, "");
  EXPECT_NO_THROW((void)frame_message(to_json(e)));
  EXPECT_LT(frame_message(to_json(e)).size(), 8192u);
}

TEST(Protocol, TheDecoderSurvivesBadJsonAndLosesFramingOnlyOnAnOversizeLength) {
  MessageDecoder d;
  const auto frame = [](const std::string& body) {
    std::string f(4, '\0');
    for (int i = 0; i < 4; ++i) f[i] = static_cast<char>((body.size() >> (8 * i)) & 0xff);
    return f + body;
  };
  const std::string bytes = frame("{not json") + frame("\"\xff\xfe\"") + frame(R"({"type":"ping"})");
  d.feed(bytes.data(), bytes.size());
  EXPECT_THROW((void)d.next(), BadMessage);
  EXPECT_THROW((void)d.next(), BadMessage);  // not UTF-8
  const auto m = d.next();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "ping");
  EXPECT_FALSE(d.next());
  const std::string oversize("\xff\xff\xff\x7f", 4);
  d.feed(oversize.data(), oversize.size());
  EXPECT_THROW((void)d.next(), FramingLost);
}

TEST(Protocol, FrameMetadataAlwaysFitsItsSlotAndKeepsThePathsEnd) {
  const std::size_t limit = ipc::format::kMetaBytes;
  const std::string short_meta = frame_meta_json("a", "/data/x.tif", limit);
  EXPECT_EQ(json::parse(short_meta), (json{{"id", "a"}, {"source", "/data/x.tif"}, {"diameter_estimated", false}}));
  EXPECT_EQ(json::parse(frame_meta_json("a", "/data/x.tif", limit, true))["diameter_estimated"], true);
  EXPECT_EQ(json::parse(frame_meta_json("a", "/data/x.tif", limit, false, "ZYX"))["axes"], "ZYX");
  const std::string path = "/" + std::string(300, 'd') + "/plate1.tif";
  for (const std::string& id :
       {std::string("a"), std::string(128, 'i'), std::string(128, '\x01'), std::string(60, '\0') + "\xc3\xa9"}) {
    const std::string m = frame_meta_json(id, path, limit, false, "ZYX");
    ASSERT_LE(m.size(), limit) << id.size();
    const json j = json::parse(m);
    EXPECT_EQ(j["elided"], true);
    EXPECT_EQ(j["axes"], "ZYX");
    EXPECT_EQ(j["diameter_estimated"], false);
    EXPECT_TRUE(j["source"].get<std::string>().ends_with("plate1.tif")) << m;
  }
  // Multi-byte characters are never cut in half.
  std::string utf8;
  for (int i = 0; i < 200; ++i) utf8 += "\xc3\xa9";
  EXPECT_TRUE(json::accept(frame_meta_json("a", utf8, limit)));
}

}  // namespace
}  // namespace cpipc::service
