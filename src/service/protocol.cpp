// The protocol's messages: one encoder and one decoder per message type.
#include "cpipc/service/protocol.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace cpipc::service {

namespace {

using nlohmann::json;

// Quotes at most 64 bytes of what a client sent, so replies stay small.
std::string quoted(const std::string& s) { return "\"" + (s.size() > 64 ? s.substr(0, 64) + "..." : s) + "\""; }

bool valid_id(const json& j) {
  return j.is_string() && !j.get_ref<const std::string&>().empty() &&
         j.get_ref<const std::string&>().size() <= kMaxIdBytes;
}

// The message's id when it is one a reply may echo, else "".
std::string usable_id(const json& m) {
  const auto it = m.find("id");
  return it != m.end() && valid_id(*it) ? it->get<std::string>() : std::string();
}

template <class T>
std::optional<T> optional_number(const json& j, const char* key, const std::string& id) {
  const auto bad = [&](const char* what) { throw BadMessage(std::string("\"") + key + "\" must be " + what, id); };
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) bad("a number");
  const double v = it->get<double>();
  if (!std::isfinite(v)) bad("finite");
  if constexpr (std::is_integral_v<T>) {
    if (v != std::floor(v) || std::abs(v) > 1e9) bad("an integer");
  } else if (std::abs(v) > 1e30) {
    bad("a reasonable number");
  }
  return static_cast<T>(v);
}

std::optional<bool> optional_bool(const json& j, const char* key, const std::string& id) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw BadMessage(std::string("\"") + key + "\" must be true or false", id);
  return it->get<bool>();
}

// A channel number 0..64; JSON integers of any size are checked before any
// narrowing (2**40 must not become 0).
bool channel_number(const json& c) {
  if (c.is_number_unsigned()) return c.get<std::uint64_t>() <= 64;
  if (c.is_number_integer()) return c.get<std::int64_t>() >= 0 && c.get<std::int64_t>() <= 64;
  return false;
}

std::string string_id(const json& m, const char* type) {
  const auto it = m.find("id");
  if (it == m.end() || !valid_id(*it)) {
    throw BadMessage(std::string(type) + " needs an \"id\": a string of 1..128 bytes", "");
  }
  return it->get<std::string>();
}

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

// --- client -> producer ------------------------------------------------------

json SubmitRequest::to_json() const {
  json j{{"type", "submit"}, {"id", id}};
  if (!image.empty()) j["image"] = image;
  if (!input.empty()) j["input"] = input;
  if (diameter) j["diameter"] = *diameter;
  if (channels) j["channels"] = *channels;
  if (channel_axis) j["channel_axis"] = *channel_axis;
  if (z_axis) j["z_axis"] = *z_axis;
  if (flow_threshold) j["flow_threshold"] = *flow_threshold;
  if (cellprob_threshold) j["cellprob_threshold"] = *cellprob_threshold;
  if (min_size) j["min_size"] = *min_size;
  if (max_size_fraction) j["max_size_fraction"] = *max_size_fraction;
  if (niter) j["niter"] = *niter;
  if (normalize) j["normalize"] = *normalize;
  if (norm_percentile) j["norm_percentile"] = *norm_percentile;
  if (invert) j["invert"] = *invert;
  if (exclude_on_edges) j["exclude_on_edges"] = *exclude_on_edges;
  if (resample) j["resample"] = *resample;
  if (augment) j["augment"] = *augment;
  if (do_3d) j["do_3d"] = *do_3d;
  if (stitch_threshold) j["stitch_threshold"] = *stitch_threshold;
  if (anisotropy) j["anisotropy"] = *anisotropy;
  if (flow3d_smooth) j["flow3d_smooth"] = *flow3d_smooth;
  if (timeout_s) j["timeout_s"] = *timeout_s;
  return j;
}

SubmitRequest SubmitRequest::from_json(const json& j) {
  static constexpr const char* known[] = {"type",           "id",
                                          "image",          "input",
                                          "diameter",       "channels",
                                          "flow_threshold", "cellprob_threshold",
                                          "min_size",       "max_size_fraction",
                                          "niter",          "timeout_s",
                                          "channel_axis",   "z_axis",
                                          "normalize",      "norm_percentile",
                                          "invert",         "exclude_on_edges",
                                          "resample",       "augment",
                                          "do_3d",          "stitch_threshold",
                                          "anisotropy",     "flow3d_smooth"};
  const std::string id = usable_id(j);
  const auto bad = [&](const std::string& why) { throw BadMessage(why, id); };
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) == std::end(known)) {
      bad("unknown field " + quoted(key) + " in submit");
    }
  }
  if (id.empty()) bad("submit needs an \"id\": a string of 1..128 bytes");
  SubmitRequest r;
  r.id = id;
  if (j.contains("image")) {
    if (!j["image"].is_string()) bad("\"image\" must be a path");
    r.image = j["image"];
  }
  if (j.contains("input")) {
    if (!j["input"].is_string()) bad("\"input\" must be a segment name");
    r.input = j["input"];
  }
  if (r.image.empty() == r.input.empty())
    bad("submit needs exactly one of \"image\" (a path) or \"input\" (a segment)");
  if (r.image.size() > 4096) bad("\"image\" is longer than 4096 bytes");
  r.diameter = optional_number<double>(j, "diameter", id);
  if (r.diameter && *r.diameter < 0) bad("\"diameter\" must be >= 0 (0 = estimate)");
  if (j.contains("channels") && !j["channels"].is_null()) {
    const auto& c = j["channels"];
    if (!c.is_array() || c.size() != 2 || !channel_number(c[0]) || !channel_number(c[1])) {
      bad("\"channels\" must be [seg, nuc]: two 1-based channel numbers up to 64, 0 = gray / none");
    }
    r.channels = std::array<int, 2>{c[0].get<int>(), c[1].get<int>()};
  }
  r.channel_axis = optional_number<int>(j, "channel_axis", id);
  r.z_axis = optional_number<int>(j, "z_axis", id);
  for (const auto& [axis, key] : {std::pair{r.channel_axis, "channel_axis"}, std::pair{r.z_axis, "z_axis"}}) {
    if (axis && (*axis < -5 || *axis > 4)) bad(std::string("\"") + key + "\" must be an axis index in -5..4");
  }
  r.flow_threshold = optional_number<float>(j, "flow_threshold", id);
  if (r.flow_threshold && *r.flow_threshold < 0) bad("\"flow_threshold\" must be >= 0 (0 = off)");
  r.cellprob_threshold = optional_number<float>(j, "cellprob_threshold", id);
  r.min_size = optional_number<int>(j, "min_size", id);
  r.max_size_fraction = optional_number<float>(j, "max_size_fraction", id);
  if (r.max_size_fraction && !(*r.max_size_fraction > 0)) bad("\"max_size_fraction\" must be > 0");
  r.niter = optional_number<int>(j, "niter", id);
  if (r.niter && (*r.niter < 0 || *r.niter > 100000)) bad("\"niter\" must be in 0..100000 (0 = automatic)");
  r.normalize = optional_bool(j, "normalize", id);
  r.invert = optional_bool(j, "invert", id);
  r.exclude_on_edges = optional_bool(j, "exclude_on_edges", id);
  r.resample = optional_bool(j, "resample", id);
  r.augment = optional_bool(j, "augment", id);
  if (j.contains("norm_percentile") && !j["norm_percentile"].is_null()) {
    const auto& p = j["norm_percentile"];
    const auto percent = [](const json& v) { return v.is_number() && v.get<double>() >= 0 && v.get<double>() <= 100; };
    if (!p.is_array() || p.size() != 2 || !percent(p[0]) || !percent(p[1]) ||
        !(p[0].get<double>() < p[1].get<double>())) {
      bad("\"norm_percentile\" must be [low, high]: percentiles with 0 <= low < high <= 100");
    }
    r.norm_percentile = std::array<float, 2>{p[0].get<float>(), p[1].get<float>()};
    if (r.normalize == false) bad("\"norm_percentile\" and \"normalize\": false contradict each other");
  }
  r.do_3d = optional_bool(j, "do_3d", id);
  r.stitch_threshold = optional_number<float>(j, "stitch_threshold", id);
  if (r.stitch_threshold && !(*r.stitch_threshold >= 0 && *r.stitch_threshold <= 1)) {
    bad("\"stitch_threshold\" must be an IoU in [0, 1] (0 = off)");
  }
  if (r.do_3d == true && r.stitch_threshold && *r.stitch_threshold > 0) {
    bad("\"do_3d\" and \"stitch_threshold\" exclude each other; give one");
  }
  r.anisotropy = optional_number<double>(j, "anisotropy", id);
  if (r.anisotropy && !(*r.anisotropy > 0 && *r.anisotropy <= 1000)) bad("\"anisotropy\" must be in (0, 1000]");
  if (j.contains("flow3d_smooth") && !j["flow3d_smooth"].is_null()) {
    const auto& v = j["flow3d_smooth"];
    const auto sigma = [](const json& x) { return x.is_number() && x.get<double>() >= 0 && x.get<double>() <= 100; };
    if (!v.is_array() || v.size() != 3 || !sigma(v[0]) || !sigma(v[1]) || !sigma(v[2])) {
      bad("\"flow3d_smooth\" must be [z, y, x]: three Gaussian sigmas in [0, 100]");
    }
    r.flow3d_smooth = std::array<double, 3>{v[0].get<double>(), v[1].get<double>(), v[2].get<double>()};
  }
  r.timeout_s = optional_number<double>(j, "timeout_s", id);
  if (r.timeout_s && !(*r.timeout_s > 0)) bad("\"timeout_s\" must be > 0");
  return r;
}

ClientMessage decode_client_message(const json& j) {
  if (!j.is_object()) throw BadMessage("a message must be a JSON object", "");
  const auto t = j.find("type");
  if (t == j.end() || !t->is_string()) throw BadMessage("a message needs a \"type\" string", usable_id(j));
  const std::string& type = t->get_ref<const std::string&>();
  if (type == "submit") return SubmitRequest::from_json(j);
  if (type == "cancel") return CancelRequest{string_id(j, "cancel")};
  if (type == "release") return ReleaseRequest{string_id(j, "release")};
  if (type == "ping") return Ping{};
  throw BadMessage("unknown message type " + quoted(type), usable_id(j));
}

json to_json(const ClientMessage& m) {
  return std::visit(Overloaded{[](const SubmitRequest& r) { return r.to_json(); },
                               [](const CancelRequest& r) {
                                 return json{{"type", "cancel"}, {"id", r.id}};
                               },
                               [](const ReleaseRequest& r) {
                                 return json{{"type", "release"}, {"id", r.id}};
                               },
                               [](const Ping&) {
                                 return json{{"type", "ping"}};
                               }},
                    m);
}

// --- producer -> client ------------------------------------------------------

json to_json(const Timings& t) {
  return json{
      {"preprocess", t.preprocess_s}, {"network", t.network_s}, {"dynamics", t.dynamics_s}, {"total", t.total_s}};
}

ErrorReply error_reply(std::string id, const char* code, std::string message) {
  if (id.size() > kMaxIdBytes) id.clear();
  if (message.size() > 4096) message = message.substr(0, 4096) + "...";
  return ErrorReply{code, std::move(message), std::move(id)};
}

json to_json(const ProducerMessage& m) {
  return std::visit(Overloaded{[](const Hello& h) {
                                 return json{{"type", "hello"},
                                             {"version", h.version},
                                             {"stream", h.stream},
                                             {"model", h.model},
                                             {"architecture", h.architecture},
                                             {"device", h.device},
                                             {"device_views", h.device_views},
                                             {"pid", h.pid}};
                               },
                               [](const Accepted& a) {
                                 return json{{"type", "accepted"}, {"id", a.id}, {"ahead", a.ahead}};
                               },
                               [](const ProgressEvent& p) {
                                 return json{{"type", "progress"},
                                             {"id", p.id},
                                             {"stage", p.stage},
                                             {"tiles_done", p.tiles_done},
                                             {"tiles_total", p.tiles_total}};
                               },
                               [](const Result& r) {
                                 json t = to_json(r.timings);
                                 t["request"] = r.request_s;
                                 return json{{"type", "result"},
                                             {"id", r.id},
                                             {"segment", r.segment},
                                             {"device_view", r.device_view},
                                             {"slot", r.slot},
                                             {"seq", r.seq},
                                             {"frame_id", r.frame_id},
                                             {"shape", r.shape},
                                             {"axes", r.axes},
                                             {"dtype", r.dtype},
                                             {"objects", r.objects},
                                             {"diameter", r.diameter},
                                             {"diameter_estimated", r.diameter_estimated},
                                             {"tiles", r.tiles},
                                             {"timings_s", t}};
                               },
                               [](const ErrorReply& e) {
                                 json j{{"type", "error"}, {"code", e.code}, {"message", e.message}};
                                 if (!e.id.empty()) j["id"] = e.id;
                                 return j;
                               },
                               [](const Pong&) {
                                 return json{{"type", "pong"}};
                               },
                               [](const Bye&) {
                                 return json{{"type", "bye"}};
                               }},
                    m);
}

ProducerMessage decode_producer_message(const json& j) {
  const std::string type = j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"] : "";
  try {
    if (type == "hello") {
      return Hello{j.at("version").get<int>(),     j.at("stream").get<std::string>(),
                   j.value("model", ""),           j.value("architecture", ""),
                   j.value("device", ""),          j.value("device_views", false),
                   j.value("pid", std::int64_t{0})};
    }
    if (type == "accepted") return Accepted{j.at("id").get<std::string>(), j.at("ahead").get<std::uint64_t>()};
    if (type == "progress") {
      return ProgressEvent{j.at("id").get<std::string>(), j.at("stage").get<std::string>(),
                           j.at("tiles_done").get<int>(), j.at("tiles_total").get<int>()};
    }
    if (type == "result") {
      Result r;
      r.id = j.at("id").get<std::string>();
      r.segment = j.at("segment").get<std::string>();
      r.device_view = j.value("device_view", false);
      r.slot = j.at("slot").get<std::uint32_t>();
      r.seq = j.at("seq").get<std::uint64_t>();
      r.frame_id = j.at("frame_id").get<std::uint64_t>();
      r.shape = j.at("shape").get<std::vector<std::int64_t>>();
      if (r.shape.size() < 2 || r.shape.size() > 3) {
        throw Error(Errc::invalid_argument, "the producer sent a result whose \"shape\" has neither 2 nor 3 extents");
      }
      r.axes = j.value("axes", r.shape.size() == 3 ? "ZYX" : "YX");
      r.dtype = j.at("dtype").get<std::string>();
      r.objects = j.at("objects").get<std::uint32_t>();
      r.diameter = j.at("diameter").get<double>();
      r.diameter_estimated = j.value("diameter_estimated", false);
      r.tiles = j.value("tiles", 0);
      const json& t = j.at("timings_s");
      r.timings = Timings{t.at("preprocess").get<double>(), t.at("network").get<double>(),
                          t.at("dynamics").get<double>(), t.at("total").get<double>()};
      r.request_s = t.at("request").get<double>();
      return r;
    }
    if (type == "error") {
      return ErrorReply{j.at("code").get<std::string>(), j.at("message").get<std::string>(), j.value("id", "")};
    }
    if (type == "pong") return Pong{};
    if (type == "bye") return Bye{};
  } catch (const json::exception& e) {
    throw Error(Errc::invalid_argument, "the producer sent a malformed \"" + type + "\" message (" + e.what() + ")");
  }
  throw Error(Errc::invalid_argument, "the producer sent a message of unknown type " + quoted(type));
}

std::string frame_meta_json(const std::string& id, const std::string& source, std::size_t max_bytes,
                            bool diameter_estimated, const std::string& axes) {
  const auto dump = [&axes](json j) {
    if (!axes.empty()) j["axes"] = axes;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  std::string text = dump(json{{"id", id}, {"source", source}, {"diameter_estimated", diameter_estimated}});
  if (text.size() <= max_bytes) return text;
  // Cut whole UTF-8 characters: never start on a continuation byte.
  const auto tail = [](const std::string& s, std::size_t n) {
    std::size_t from = s.size() - std::min(n, s.size());
    while (from < s.size() && (static_cast<unsigned char>(s[from]) & 0xC0) == 0x80) ++from;
    return s.substr(from);
  };
  const auto head = [](const std::string& s, std::size_t n) {
    std::size_t to = std::min(n, s.size());
    while (to > 0 && to < s.size() && (static_cast<unsigned char>(s[to]) & 0xC0) == 0x80) --to;
    return s.substr(0, to);
  };
  std::string kept_source = source;
  std::string kept_id = id;
  for (;;) {
    text = dump(json{{"id", kept_id},
                     {"source", kept_source.size() < source.size() ? "..." + kept_source : kept_source},
                     {"diameter_estimated", diameter_estimated},
                     {"elided", true}});
    if (text.size() <= max_bytes) return text;
    const std::size_t excess = text.size() - max_bytes;
    // The path's end (its file name) outlasts the id's tail, which
    // outlasts the rest of the path.
    constexpr std::size_t kPathEnd = 96;
    if (kept_source.size() > kPathEnd) {
      kept_source = tail(kept_source, std::max(kPathEnd, kept_source.size() - std::min(excess, kept_source.size())));
    } else if (!kept_id.empty()) {
      kept_id = head(kept_id, kept_id.size() > excess ? kept_id.size() - excess : 0);
    } else if (!kept_source.empty()) {
      kept_source = tail(kept_source, kept_source.size() > excess ? kept_source.size() - excess : 0);
    } else {
      return "{}";
    }
  }
}

}  // namespace cpipc::service
