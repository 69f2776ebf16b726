// cpipc segment: images to Cellpose masks with a network (LibTorch), one
// device end to end; writes Cellpose's conventional outputs.
#include <torch/cuda.h>
#include <nlohmann/json.hpp>

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "axis_options.hpp"
#include "cellpose_aliases.hpp"
#include "cellpose_file_options.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/io/labels.hpp"
#include "cpipc/io/outputs.hpp"
#include "cpipc/io/tiff.hpp"
#include "cpipc/model/planes.hpp"
#include "cpipc/model/segmenter.hpp"
#include "cpipc/model/volume.hpp"
#include "cpipc/service/protocol.hpp"
#include "folder_inputs.hpp"
#include "image_options.hpp"
#include "number_checks.hpp"
#include "progress.hpp"
#include "torch_commands.hpp"
#include "volume_flags.hpp"

namespace cpipc::cli {

namespace {

namespace fs = std::filesystem;

struct SegmentArgs {
  std::vector<std::string> images;
  std::string model;               // empty: the embedded default
  std::optional<double> diameter;  // none: the model's diam_labels; 0: estimated
  std::string channels = "0,0";
  std::string device = "auto";
  std::string precision = "fp32";
  std::string output_dir;  // empty: beside each image
  io::AxisOptions axes;
  model::SegmentOptions options;
  bool outlines = true;
  bool save_flows = false;
  bool save_png = false;
  io::CellposeFiles files = [] {  // what else to write, as Cellpose's CLI: _seg.npy unless --no-npy
    io::CellposeFiles f;
    f.seg_npy = true;
    return f;
  }();
  bool json = false;
  // Cellpose's CLI: a folder's images, its flags, its normalisation options.
  FolderQuery folder;
  CellposeFlags cellpose;
  ImageFlags image;
  VolumeFlags volume;
  bool dry_run = false;
};

// What the Cellpose-style flags decide: their cpipc settings applied, the
// normalisation, --dir's images after those given one by one. Returns the
// folder's files cpipc cannot read. Throws Error.
std::vector<std::string> resolve_inputs(SegmentArgs& a) {
  apply_cellpose_flags(a.cellpose, a.channels, a.device);
  const ImageFlags& f = a.image;
  a.options.normalization.enabled = !f.no_norm;
  a.options.normalization.invert = f.invert;
  if (const auto p = f.percentiles()) {
    a.options.normalization.lower = (*p)[0];
    a.options.normalization.upper = (*p)[1];
  }
  a.options.exclude_on_edges = f.exclude_on_edges;
  a.options.resample = !f.no_resample;
  a.options.augment = f.augment;
  std::vector<std::string> unsupported;
  if (!a.folder.dir.empty()) {
    FolderImages f = folder_images(a.folder);
    a.images.insert(a.images.end(), f.images.begin(), f.images.end());
    unsupported = std::move(f.unsupported);
  }
  if (a.images.empty()) throw Error(Errc::invalid_argument, "nothing to segment: give IMAGE... or --dir FOLDER");
  return unsupported;
}

// --dry-run: the images and every setting, as segmenting would use them.
nlohmann::json settings_json(const SegmentArgs& a) {
  const model::SegmentOptions& o = a.options;
  const auto& n = o.normalization;
  nlohmann::json j{{"images", a.images},
                   {"model", a.model},
                   {"device", a.device},
                   {"precision", a.precision},
                   {"output_dir", a.output_dir},
                   {"channels", o.channels.to_string()},
                   {"flow_threshold", o.dynamics.flow_threshold},
                   {"cellprob_threshold", o.dynamics.cellprob_threshold},
                   {"min_size", o.dynamics.min_size},
                   {"max_size_fraction", o.dynamics.max_size_fraction},
                   {"niter", o.dynamics.niter},
                   {"tile_overlap", o.tile_overlap},
                   {"batch_size", o.batch_size},
                   {"normalize", n.enabled},
                   {"norm_percentile", {n.lower, n.upper}},
                   {"invert", n.invert},
                   {"exclude_on_edges", o.exclude_on_edges},
                   {"resample", o.resample},
                   {"augment", o.augment},
                   {"outlines", a.outlines},
                   {"save_flows", a.save_flows},
                   {"dir", a.folder.dir},
                   {"img_filter", a.folder.img_filter},
                   {"mask_filter", a.folder.mask_filter},
                   {"look_one_level_down", a.folder.look_one_level_down}};
  j["diameter"] = a.diameter ? nlohmann::json(*a.diameter) : nlohmann::json();  // null: the model's; 0: estimated
  j["channel_axis"] = a.axes.channel_axis ? nlohmann::json(*a.axes.channel_axis) : nlohmann::json();
  j["z_axis"] = a.axes.z_axis ? nlohmann::json(*a.axes.z_axis) : nlohmann::json();
  j["do_3d"] = a.volume.do_3d;
  j["stitch_threshold"] = a.volume.stitch_threshold;
  j["anisotropy"] = a.volume.anisotropy;
  j["flow3d_smooth"] = a.volume.smooth_sigmas();
  return j;
}

io::Array labels_array(const dynamics::Labels& labels) {
  io::Array out;
  const std::int64_t shape[2] = {labels.height, labels.width};
  out.desc = ipc::TensorDesc::contiguous(ipc::kUInt32, shape);
  out.data.resize(out.desc.nbytes());
  std::memcpy(out.data.data(), labels.data.data(), out.data.size());
  return out;
}

struct Written : io::SavedFiles {
  std::string flows;
};

// The image as --save-outlines draws it: float32, channels last.
struct SourcePixels {
  std::vector<float> pixels;
  int channels = 1;
};

// Cellpose's names: <stem>_cp_masks.png (.tif from 65 536 masks or with
// --save-tif), <stem>_cp_outlines.txt, <stem>_seg.npy, <stem>_rois.zip,
// <stem>_outlines_cp_masks.png, and <stem>_flows.npy on request.
Written save_outputs(const SegmentArgs& a, const fs::path& dir, const std::string& stem, const model::Segmentation& s,
                     const std::string& image_path, const SourcePixels& image) {
  const io::Array masks = labels_array(s.masks);
  io::CellposeFileInputs in;
  in.flows = s.flows.empty() ? nullptr : s.flows.data();
  in.image = image.pixels.empty() ? nullptr : image.pixels.data();
  in.image_channels = image.channels;
  in.image_path = image_path;
  in.diameter = s.diameter;
  if (a.options.channels.kind == model::ChannelSpec::Kind::cellpose3) {
    in.chan_choose = {a.options.channels.seg, a.options.channels.nuc};
  }
  Written w;
  static_cast<io::SavedFiles&>(w) =
      io::save_cellpose_files(dir.string(), stem, masks.view(), s.masks.count, a.files, in);
  if (a.save_flows) {
    io::Array flows;
    const std::int64_t shape[3] = {3, s.masks.height, s.masks.width};
    flows.desc = ipc::TensorDesc::contiguous(ipc::kFloat32, shape);
    flows.data.resize(flows.desc.nbytes());
    std::memcpy(flows.data.data(), s.flows.data(), flows.data.size());
    w.flows = (dir / (stem + "_flows.npy")).string();
    io::write_array(w.flows, flows.view());
  }
  return w;
}

// A z-stack's masks: one [Z, H, W] TIFF (uint16 while every plane's labels
// fit, as Cellpose saves), ImageJ-readable; Cellpose writes no outlines text
// for a stack either.
std::string save_stack_masks(const fs::path& dir, const std::string& stem, std::span<const std::uint32_t> labels,
                             std::int64_t planes, std::int64_t height, std::int64_t width) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(Errc::io, "cannot create output directory '" + dir.string() + "': " + ec.message());
  // uint16 while every label fits (a plane's labels start at 1), as Cellpose.
  io::Array masks = io::narrow_labels(labels, planes * height, width);
  const std::int64_t shape[3] = {planes, height, width};
  masks.desc = ipc::TensorDesc::contiguous(masks.desc.dtype, shape);
  const std::string path = (dir / (stem + "_cp_masks.tif")).string();
  io::write_tiff(path, masks.view(), "ZYX");
  return path;
}

// "<stem>" for a single-frame file, "<stem>_<k>" (zero-padded) for the pages
// of a stack.
std::string frame_stem(const std::string& path, std::size_t frame, std::size_t frames) {
  std::string stem = fs::path(path).stem().string();
  if (frames > 1) {
    std::string k = std::to_string(frame);
    k.insert(0, std::to_string(frames - 1).size() - k.size(), '0');
    stem += "_" + k;
  }
  return stem;
}

// --dir's last line: how the folder went.
void print_folder_summary(const SegmentArgs& a, int images, int failed, std::uint64_t objects, double seconds,
                          const std::vector<std::string>& unsupported) {
  if (a.json) {
    nlohmann::json j{{"dir", a.folder.dir}, {"images", images},   {"segmented", images - failed}, {"failed", failed},
                     {"objects", objects},  {"seconds", seconds}, {"unsupported", unsupported}};
    std::printf("%s\n",
                nlohmann::json{{"summary", j}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("%s: %d image(s), %d segmented (%llu objects), %d failed, in %.1f s\n", a.folder.dir.c_str(), images,
                images - failed, static_cast<unsigned long long>(objects), failed, seconds);
  }
  std::fflush(stdout);
}

void run_segment(SegmentArgs a) {
  const auto t_start = std::chrono::steady_clock::now();
  const std::vector<std::string> unsupported = resolve_inputs(a);
  a.options.channels = model::ChannelSpec::parse(a.channels);
  a.options.diameter = a.diameter;
  a.files.outlines_txt = a.outlines;
  a.files.png = a.save_png || !a.files.tif;  // Cellpose: --save_tif alone writes the TIFF alone
  a.options.keep_flows = a.save_flows || a.files.seg_npy;
  (void)a.volume.smooth_sigmas();  // a bad --flow3d-smooth fails before the model loads
  if (a.dry_run) {
    std::printf("%s\n", nlohmann::json{{"dry_run", settings_json(a)}}.dump().c_str());
    return;
  }
  if (!unsupported.empty() && !a.json) {
    std::fprintf(stderr,
                 "cpipc: note: skipping %zu file(s) in formats cpipc does not read (.flex, .dax, .nd2, .nrrd), "
                 "e.g. %s\n",
                 unsupported.size(), unsupported.front().c_str());
  }
  if (!a.output_dir.empty()) {
    std::error_code ec;
    fs::create_directories(a.output_dir, ec);
    if (ec) throw Error(Errc::io, "cannot create output directory '" + a.output_dir + "': " + ec.message());
  }

  const auto t_load = std::chrono::steady_clock::now();
  const model::Segmenter segmenter(load_model(a.model, a.device, a.precision));
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  // Chatter for people at a terminal; scripts and logs get results and errors only.
  if (!a.json && ::isatty(STDERR_FILENO) == 1) {
    std::fprintf(stderr, "model %s on %s (%s), loaded in %.2f s\n", segmenter.model().source().c_str(),
                 segmenter.model().device().to_string().c_str(), model::to_string(segmenter.model().precision()),
                 load_s);
  }

  if (a.diameter && *a.diameter <= 0.0 && !segmenter.model().info().size_model) {
    // As Cellpose's "could not estimate diameter" warning: the run goes on.
    std::fprintf(stderr,
                 "cpipc: warning: the model has no size model to estimate diameters; using its mean "
                 "training diameter %.2f px\n",
                 segmenter.model().info().diam_labels);
  }

  const int total = static_cast<int>(a.images.size());
  ProgressBar bar(total, !a.json);
  // Image i + 1 is read, and image i's outputs written and reported, while
  // image i is segmented: on a GPU, reading a PNG/TIFF and writing the masks
  // and outlines take about half as long as segmenting them. One read ahead
  // and one write behind at most; reports keep the images' order.
  std::mutex console;  // the bar, stdout, first_failure and the tallies, from two threads
  int first_failure = 0;
  std::set<std::string> failed;  // images with an error, for --dir's summary
  std::uint64_t objects = 0;
  int current = 0;  // the image being segmented, for the bar
  std::string current_name;
  a.options.progress = [&](const model::Progress& p) {  // the tiles of the current image
    if (p.stage != model::Progress::Stage::network || p.tiles_total == 0) return;
    const std::lock_guard lock(console);
    bar.update(current, current_name + (a.volume.any() ? "  planes " : "  tiles ") + std::to_string(p.tiles_done) +
                            "/" + std::to_string(p.tiles_total));
  };
  model::VolumeOptions volume;
  volume.base = a.options;
  volume.base.keep_flows = a.save_flows;  // no _seg.npy for a stack
  volume.do_3d = a.volume.do_3d;
  volume.stitch_threshold = a.volume.stitch_threshold;
  volume.anisotropy = a.volume.anisotropy;
  volume.flow3d_smooth = a.volume.smooth_sigmas();
  const auto report_failure = [&](const std::string& path, const Error& e) {  // with `console` held
    bar.clear();
    failed.insert(path);
    if (first_failure == 0) first_failure = exit_status(e.code());
    if (a.json) {
      std::printf("%s\n", nlohmann::json{{"image", path}, {"error", e.what()}}.dump().c_str());
      std::fflush(stdout);
    }
    std::fprintf(stderr, "cpipc: error: %s\n", e.what());
    bar.redraw();
  };
  // What every result line says of the run: the diameter and steps used, where, and how long.
  // (A Segmentation, or a VolumeSegmentation, whose diameter is never estimated.)
  const auto run_json = [&](const auto& s, bool diameter_estimated) {
    return nlohmann::json{{"diameter", s.diameter},
                          {"diameter_estimated", diameter_estimated},
                          {"rescale", s.rescale},
                          {"niter", s.niter},
                          {"tiles", s.tiles},
                          {"device", segmenter.model().device().to_string()},
                          {"precision", model::to_string(segmenter.model().precision())},
                          {"timings_s", service::to_json(service::Timings{s.timings.preprocess_s, s.timings.network_s,
                                                                          s.timings.dynamics_s, s.timings.total_s})}};
  };
  const auto write_and_report = [&](const std::string& path, std::size_t k, std::size_t frames, const std::string& axes,
                                    const model::Segmentation& s, const SourcePixels& image) {
    try {
      const fs::path dir = a.output_dir.empty() ? fs::path(path).parent_path() : fs::path(a.output_dir);
      const Written w = save_outputs(a, dir.empty() ? fs::path(".") : dir, frame_stem(path, k, frames), s, path, image);
      const std::lock_guard lock(console);
      bar.clear();
      objects += s.masks.count;
      if (a.json) {
        nlohmann::json j{{"image", path},
                         {"frame", k},
                         {"axes", axes},
                         {"objects", s.masks.count},
                         {"shape", {s.masks.height, s.masks.width}},
                         {"masks", w.masks()}};
        j.update(run_json(s, s.diameter_estimated));
        const std::pair<const char*, const std::string*> files[] = {
            {"masks_tif", &w.masks_tif},       {"outlines", &w.outlines_txt}, {"rois", &w.rois},
            {"outlines_png", &w.outlines_png}, {"seg_npy", &w.seg_npy},       {"flows", &w.flows}};
        for (const auto& [key, file] : files) {
          if (!file->empty() && *file != w.masks()) j[key] = *file;
        }
        std::printf("%s\n", j.dump().c_str());
      } else {
        const std::string page = frames > 1 ? " [" + std::to_string(k) + "]" : "";
        std::printf(
            "%s%s: %u objects in %d x %d at diameter %.2f px%s; network %.3f s, dynamics %.3f s, total %.3f s "
            "-> %s\n",
            path.c_str(), page.c_str(), s.masks.count, s.masks.height, s.masks.width, s.diameter,
            s.diameter_estimated ? " (estimated)" : "", s.timings.network_s, s.timings.dynamics_s, s.timings.total_s,
            w.masks().c_str());
      }
      std::fflush(stdout);
      bar.redraw();
    } catch (const Error& e) {
      const std::lock_guard lock(console);
      report_failure(path, e);
    }
  };
  const auto write_and_report_stack = [&](const std::string& path, std::size_t k, std::size_t frames,
                                          const std::string& axes, const model::PlaneSegmentation& s) {
    try {
      const fs::path dir = a.output_dir.empty() ? fs::path(path).parent_path() : fs::path(a.output_dir);
      const std::string masks = save_stack_masks(dir.empty() ? fs::path(".") : dir, frame_stem(path, k, frames),
                                                 s.labels, s.planes, s.height, s.width);
      const model::Segmentation& f = s.first;
      const std::lock_guard lock(console);
      bar.clear();
      objects += s.objects();
      if (a.json) {
        nlohmann::json j{{"image", path},
                         {"frame", k},
                         {"axes", axes},
                         {"planes", s.planes},
                         {"objects", s.objects()},
                         {"objects_per_plane", s.counts},
                         {"shape", {s.planes, s.height, s.width}},
                         {"masks", masks},
                         {"mode", "each plane in 2-D"}};
        j.update(run_json(f, f.diameter_estimated));
        std::printf("%s\n", j.dump().c_str());
      } else {
        const std::string page = frames > 1 ? " [" + std::to_string(k) + "]" : "";
        std::printf(
            "%s%s: z-stack of %lld planes (%s), each segmented in 2-D: %llu objects in %lld x %lld at diameter "
            "%.2f px%s; total %.3f s -> %s\n",
            path.c_str(), page.c_str(), static_cast<long long>(s.planes), axes.c_str(),
            static_cast<unsigned long long>(s.objects()), static_cast<long long>(s.height),
            static_cast<long long>(s.width), f.diameter, f.diameter_estimated ? " (estimated, first plane)" : "",
            f.timings.total_s, masks.c_str());
      }
      std::fflush(stdout);
      bar.redraw();
    } catch (const Error& e) {
      const std::lock_guard lock(console);
      report_failure(path, e);
    }
  };
  const auto write_and_report_volume = [&](const std::string& path, std::size_t k, std::size_t frames,
                                           const std::string& axes, const model::VolumeSegmentation& s) {
    try {
      const fs::path dir0 = a.output_dir.empty() ? fs::path(path).parent_path() : fs::path(a.output_dir);
      const fs::path dir = dir0.empty() ? fs::path(".") : dir0;
      const std::string stem = frame_stem(path, k, frames);
      const std::string masks = save_stack_masks(dir, stem, s.labels, s.depth, s.height, s.width);
      std::string flows;
      if (a.save_flows && !s.flows.empty()) {
        io::Array f;
        const std::int64_t planes = s.depth * s.height * s.width;  // 4 (do_3d: dZ too) or 3 fields
        const std::int64_t shape[4] = {static_cast<std::int64_t>(s.flows.size()) / planes, s.depth, s.height, s.width};
        f.desc = ipc::TensorDesc::contiguous(ipc::kFloat32, shape);
        f.data.resize(f.desc.nbytes());
        std::memcpy(f.data.data(), s.flows.data(), f.data.size());
        flows = (dir / (stem + "_flows.npy")).string();
        io::write_array(flows, f.view());
      }
      const char* mode = a.volume.do_3d ? "3-D" : "stitched";
      const std::lock_guard lock(console);
      bar.clear();
      objects += s.count;
      if (a.json) {
        nlohmann::json j{{"image", path},     {"frame", k},         {"axes", axes},
                         {"planes", s.depth}, {"objects", s.count}, {"shape", {s.depth, s.height, s.width}},
                         {"masks", masks},    {"mode", mode}};
        j.update(run_json(s, false));
        if (!flows.empty()) j["flows"] = flows;
        std::printf("%s\n", j.dump().c_str());
      } else {
        const std::string page = frames > 1 ? " [" + std::to_string(k) + "]" : "";
        std::printf(
            "%s%s: z-stack of %lld planes (%s), segmented %s: %u objects in %lld x %lld x %lld at diameter %.2f px; "
            "network %.3f s, dynamics %.3f s, total %.3f s -> %s\n",
            path.c_str(), page.c_str(), static_cast<long long>(s.depth), axes.c_str(),
            a.volume.do_3d ? "in 3-D" : "per plane and stitched", s.count, static_cast<long long>(s.depth),
            static_cast<long long>(s.height), static_cast<long long>(s.width), s.diameter, s.timings.network_s,
            s.timings.dynamics_s, s.timings.total_s, masks.c_str());
      }
      std::fflush(stdout);
      bar.redraw();
    } catch (const Error& e) {
      const std::lock_guard lock(console);
      report_failure(path, e);
    }
  };
  // Declared last: destroyed (waited for) first, before what they use.
  std::future<void> writing;
  const auto finish_writing = [&] {
    if (writing.valid()) writing.get();
  };
  const auto read_ahead = [&](int i) {
    return i < total
               ? std::async(std::launch::async, io::read_image_file, a.images[static_cast<std::size_t>(i)], a.axes)
               : std::future<io::ImageFile>{};
  };
  std::future<io::ImageFile> next = read_ahead(0);
  for (int i = 0; i < total; ++i) {
    const std::string& path = a.images[static_cast<std::size_t>(i)];
    {
      const std::lock_guard lock(console);
      current = i;
      current_name = fs::path(path).filename().string();
      bar.update(i, current_name);
    }
    try {
      const io::ImageFile file = next.get();
      next = read_ahead(i + 1);
      const std::size_t n = file.frames.size();
      for (std::size_t k = 0; k < n; ++k) {
        const io::Image& image = file.frames[k];
        if (image.axes.front() == 'Z' && a.volume.any()) {
          model::VolumeSegmentation s = model::segment_volume(segmenter, image.array, volume);
          finish_writing();
          writing =
              std::async(std::launch::async, [&write_and_report_volume, path, k, n, axes = image.axes,
                                              s = std::move(s)] { write_and_report_volume(path, k, n, axes, s); });
          continue;
        }
        if (a.volume.any()) {
          throw Error(Errc::invalid_argument, std::string(a.volume.do_3d ? "--do-3d" : "--stitch-threshold") +
                                                  " needs a z-stack, and '" + path + "' is " + image.axes +
                                                  "; give a [Z, Y, X] stack (a TIFF with Z, or --z-axis)");
        }
        if (image.axes.front() == 'Z') {  // without 3-D options: plane by plane, as Cellpose
          model::PlaneSegmentation s = model::segment_planes(segmenter, image.array, a.options);
          finish_writing();
          writing = std::async(std::launch::async, [&write_and_report_stack, path, k, n, axes = image.axes,
                                                    s = std::move(s)] { write_and_report_stack(path, k, n, axes, s); });
          continue;
        }
        model::Segmentation s = segmenter.segment(image.array, a.options);
        SourcePixels pixels;  // copied: the writer may outlive `file`
        if (a.files.outlines_png) {
          pixels.pixels = io::to_float32(image.array, "image '" + path + "'");
          pixels.channels = image.axes == "YXC" ? static_cast<int>(image.array.desc.shape[2]) : 1;
        }
        finish_writing();
        writing = std::async(std::launch::async,
                             [&write_and_report, path, k, n, axes = image.axes, s = std::move(s),
                              pixels = std::move(pixels)] { write_and_report(path, k, n, axes, s, pixels); });
      }
    } catch (const Error& e) {
      if (!next.valid()) next = read_ahead(i + 1);  // this image could not be read
      finish_writing();
      const std::lock_guard lock(console);
      report_failure(path, e);
    }
  }
  finish_writing();
  bar.update(total, "done");
  bar.clear();
  if (!a.folder.dir.empty()) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    print_folder_summary(a, total, static_cast<int>(failed.size()), objects, seconds, unsupported);
  }
  if (first_failure != 0) throw ExitStatus{first_failure};
}

}  // namespace

model::Device choose_device(const std::string& text) {
  if (text == "auto") return {torch::cuda::is_available(), 0};
  return model::Device::parse(text);
}

model::Model load_model(const std::string& path, const std::string& device_text, const std::string& precision_text) {
  const model::Device device = choose_device(device_text);
  const model::Precision precision = model::parse_precision(precision_text);
  std::error_code ec;
  if (!device.cuda && !path.empty() && fs::file_size(path, ec) >= (std::uintmax_t{256} << 20) && !ec) {
    // A large network on the CPU (CP-SAM: 1.2 GB) allocates and frees
    // activations of many MB per layer; glibc's sliding mmap threshold then
    // keeps them in the heap, fragmented: a 256x256 CP-SAM request peaked at
    // 6.5 GB against 2.3 GB with large blocks always mmapped (same speed).
    // Small networks pay for the page faults instead (CPnet 1.5x slower), so
    // only large ones get it.
    ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
  }
  model::Model net =
      path.empty() ? model::Model::load_bytes(model::default_model_bytes(), model::kDefaultModelName, device, precision)
                   : model::Model::load(path, device, precision);
  // On CUDA the first forward pays for the context and cuDNN's choices; on
  // the CPU the contract check at load already ran one (a CP-SAM forward
  // costs seconds there).
  if (device.cuda) net.warm_up();
  return net;
}

void register_segment(CLI::App& app) {
  auto a = std::make_shared<SegmentArgs>();
  CLI::App* cmd = app.add_subcommand("segment", "Segment images with a Cellpose network: masks, outlines, timings");
  cmd->add_option("images", a->images,
                  "Images: TIFF (OME and ImageJ axes; time points: one result each; a z-stack: one mask stack), PNG, "
                  "JPEG, .npy (or --dir)");
  cmd->add_option("--dir", a->folder.dir,
                  "Also every image in this folder, as Cellpose's --dir: .png .jpg .jpeg .tif .tiff, not the outputs "
                  "(names ending _masks, _flows, _outlines, _seg, ...), in natural order; a summary at the end");
  cmd->add_option("--img-filter,--img_filter", a->folder.img_filter,
                  "With --dir: only images whose name ends with this");
  cmd->add_option("--mask-filter,--mask_filter", a->folder.mask_filter,
                  "With --dir: also skip images whose name ends with this (_masks)");
  cmd->add_flag("--look-one-level-down,--look_one_level_down", a->folder.look_one_level_down,
                "With --dir: also the images in its subfolders (one level)");
  cmd->add_option("--model,--pretrained_model", a->model,
                  "TorchScript model exported by tools/export (default: the embedded network)");
  cmd->add_option("--diameter", a->diameter,
                  "Cell diameter in pixels (default: the model's mean training diameter); 0 estimates it with the "
                  "model's size model, as Cellpose 3")
      ->check(diameter_pixels());
  cmd->add_option("--channels", a->channels,
                  "SEG,NUC 1-based channels, 0,0 = grayscale (Cellpose 3 networks); 'first' = first channels");
  add_axis_options(*cmd, a->axes.channel_axis, a->axes.z_axis);
  cmd->add_option("--device", a->device, "auto (CUDA when there is one), cpu, cuda or cuda:N");
  cmd->add_option("--precision", a->precision, "fp32 (IEEE), or on CUDA tf32 (Cellpose's GPU default), bf16, fp16")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16", "fp16"}));
  cmd->add_option("-o,--output-dir,--savedir", a->output_dir, "Where outputs go (default: beside each image)");
  auto& p = a->options.dynamics;
  cmd->add_option("--flow-threshold,--flow_threshold", p.flow_threshold, "Flow-error QC threshold, 0 = off (0.4)")
      ->check(non_negative());
  cmd->add_option("--cellprob-threshold,--cellprob_threshold", p.cellprob_threshold,
                  "Foreground: cellprob above this (0.0)");
  cmd->add_option("--min-size,--min_size", p.min_size, "Remove masks smaller than this, pixels (15; <= 0 keeps all)");
  cmd->add_option("--max-size-fraction", p.max_size_fraction, "Remove masks over this fraction of the image (0.4)")
      ->check(positive());
  cmd->add_option("--niter", p.niter, "Flow-following steps (default 200 / rescale)")->check(non_negative());
  cmd->add_option("--tile-overlap", a->options.tile_overlap, "Tile overlap fraction (0.1)")
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--batch-size,--batch_size", a->options.batch_size,
                  "Tiles per forward on a GPU (8; a CPnet on the CPU runs one at a time)")
      ->check(CLI::Range(1, 1024));
  add_image_options(*cmd, a->image);
  add_volume_options(*cmd, a->volume);
  cmd->add_flag("!--no-outlines", a->outlines, "Do not write <stem>_cp_outlines.txt");
  cmd->add_flag("--save-flows", a->save_flows, "Also write <stem>_flows.npy (float32 [3, H, W]: dY, dX, cellprob)");
  add_cellpose_file_options(*cmd, a->files, a->save_png);
  cmd->add_flag("--json", a->json, "One JSON object per image on stdout (errors too), no progress bar");
  cmd->add_flag("--dry-run", a->dry_run, "Print the images and settings that would be used, as JSON; segment nothing");
  add_cellpose_flags(*cmd, a->cellpose, a->images);
  cmd->footer(
      "Cellpose's spellings are accepted too: --dir, --img_filter, --look_one_level_down, --mask_filter,\n"
      "--pretrained_model, --savedir, --flow_threshold, --cellprob_threshold, --min_size, --batch_size,\n"
      "--channel_axis, --z_axis, --do_3D, --stitch_threshold, --flow3D_smooth, --no_norm, --norm_percentile, "
      "--exclude_on_edges, --no_resample, --chan/--chan2 (for\n"
      "--channels), --use_gpu [--gpu_device N] (for --device cuda[:N]), --image_path, --save_png, --save_tif,\n"
      "--save_rois, --save_outlines, --no_npy; --save_txt and --verbose change nothing (cpipc writes the outlines\n"
      "text unless --no-outlines, and reports each image, anyway).\n"
      "README.md's segment section lists every Cellpose flag.");
  cmd->callback([a] { run_segment(*a); });
}

}  // namespace cpipc::cli
