#include <nlohmann/json.hpp>

#include "cpipc/error.hpp"
#include "cpipc/model/model.hpp"

namespace cpipc::model {

ModelInfo ModelInfo::parse(const std::string& text, const std::string& source) {
  const auto bad = [&](const std::string& why) {
    throw Error(Errc::invalid_argument,
                "bad cpipc.json in '" + source + "': " + why + " (re-export the model with tools/export/export.py)");
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    bad(std::string("not JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad("expected a JSON object");
  ModelInfo info;
  info.json = text;
  try {
    info.architecture = j.value("architecture", std::string{});
    info.input_channels = j.value("input_channels", 2);
    info.channel_convention = j.value("channel_convention", std::string{});
    info.diam_mean = j.value("diam_mean", 30.0);
    info.diam_labels = j.value("diam_labels", info.diam_mean);
    info.tile = j.value("tile", 224);
    info.cellpose_version = j.value("cellpose_version", std::string{});
  } catch (const nlohmann::json::exception& e) {
    bad(std::string("a field has the wrong type (") + e.what() + ")");
  }
  if (info.architecture.empty()) bad("no \"architecture\"");
  if (info.input_channels < 1 || info.input_channels > 16) bad("\"input_channels\" must be 1..16");
  if (!(info.diam_mean > 0.0)) bad("\"diam_mean\" must be > 0");
  if (!(info.diam_labels > 0.0)) bad("\"diam_labels\" must be > 0");
  if (info.tile < 16 || info.tile % 16 != 0 || info.tile > 4096) bad("\"tile\" must be a multiple of 16 in 16..4096");
  return info;
}

bool ModelInfo::uses_cellpose3_channels() const noexcept {
  return input_channels == 2 && channel_convention.rfind("cellpose4", 0) != 0;
}

}  // namespace cpipc::model
