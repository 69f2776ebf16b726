#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

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
    info.size_multiple = j.value("size_multiple", 8);
    info.cellpose_version = j.value("cellpose_version", std::string{});
    if (const auto it = j.find("size_model"); it != j.end() && !it->is_null()) {
      SizeModel sm;
      sm.A = it->at("A").get<std::vector<double>>();
      sm.smean = it->at("smean").get<std::vector<double>>();
      sm.ymean = it->at("ymean").get<double>();
      sm.diam_mean = it->value("diam_mean", info.diam_mean);
      info.size_model = std::move(sm);
    }
  } catch (const nlohmann::json::exception& e) {
    bad(std::string("a field has the wrong type or is missing (") + e.what() + ")");
  }
  if (info.architecture.empty()) bad("no \"architecture\"");
  if (info.input_channels < 1 || info.input_channels > 16) bad("\"input_channels\" must be 1..16");
  if (!(info.diam_mean > 0.0)) bad("\"diam_mean\" must be > 0");
  if (!(info.diam_labels > 0.0)) bad("\"diam_labels\" must be > 0");
  if (const auto& sm = info.size_model) {
    const auto finite = [](double v) { return std::isfinite(v); };
    if (sm->A.empty() || sm->A.size() > 4096 || sm->A.size() != sm->smean.size()) {
      bad("\"size_model\" needs \"A\" and \"smean\" of the style's length");
    }
    if (!std::all_of(sm->A.begin(), sm->A.end(), finite) || !std::all_of(sm->smean.begin(), sm->smean.end(), finite) ||
        !std::isfinite(sm->ymean) || !(sm->diam_mean > 0.0) || !std::isfinite(sm->diam_mean)) {
      bad("\"size_model\" holds a non-finite value or a \"diam_mean\" <= 0");
    }
  }
  if (info.tile < 16 || info.tile % 16 != 0 || info.tile > 4096) bad("\"tile\" must be a multiple of 16 in 16..4096");
  if (info.size_multiple < 1 || info.size_multiple > info.tile || info.tile % info.size_multiple != 0) {
    bad("\"size_multiple\" must divide \"tile\"");
  }
  return info;
}

bool ModelInfo::uses_cellpose3_channels() const noexcept { return input_channels == 2 && !cellpose4_eval(); }

bool ModelInfo::cellpose4_eval() const noexcept { return channel_convention.rfind("cellpose4", 0) == 0; }

}  // namespace cpipc::model
