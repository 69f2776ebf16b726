#include "worker.hpp"

#include <ATen/ops/from_blob.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "cpipc/cuda/labels.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/io/labels.hpp"
#include "cpipc/ipc/reader.hpp"
#include "cpipc/model/planes.hpp"
#include "cpipc/model/volume.hpp"

namespace cpipc::service::detail {

namespace {

// The protocol code for a library error met while serving a request.
const char* code_of(const Error& e, bool reading_input) {
  switch (e.code()) {
    case Errc::cancelled:
      return codes::cancelled;
    case Errc::timed_out:
      return codes::timed_out;
    case Errc::out_of_memory:
      return codes::out_of_memory;
    case Errc::invalid_argument:
    case Errc::not_found:
    case Errc::corrupt:
    case Errc::producer_gone:
      return reading_input ? codes::bad_image : codes::bad_params;
    default:
      return reading_input ? codes::bad_image : codes::model_failure;
  }
}

// What the segmenter can take: [H, W] or [H, W, C], and z-stacks of those
// (segmented plane by plane), of integers up to 32 bits or floats. Checked
// here so that the client hears bad_image.
io::Image checked(io::Image image, const std::string& what) {
  const auto& d = image.array.desc;
  const bool stack = image.axes.front() == 'Z';
  const bool channels = image.axes.back() == 'C';
  const bool dims = (!channels || d.shape[d.ndim - 1] <= 64) && d.numel() > 0;
  const bool type =
      (d.dtype.code == ipc::DTypeCode::float_ && d.dtype.bits <= 64) ||
      ((d.dtype.code == ipc::DTypeCode::uint || d.dtype.code == ipc::DTypeCode::int_) && d.dtype.bits <= 32);
  if (!dims || !type) {
    throw Error(Errc::invalid_argument, what + " is " + d.to_string() + " (" + image.axes +
                                            (stack ? ", a z-stack" : "") +
                                            "); images are [Z,] H, W [, C <= 64] of integers up to 32 bits or floats");
  }
  return image;
}

io::AxisOptions axis_options(const SubmitRequest& r) {
  io::AxisOptions o;
  o.channel_axis = r.channel_axis;
  o.z_axis = r.z_axis;
  return o;
}

io::Image read_input_now(const SubmitRequest& r) {
  if (!r.image.empty()) {
    // read_image_file opens regular files only (io::RegularFile): a FIFO or
    // a device is refused at once instead of blocking this thread.
    io::ImageFile file = io::read_image_file(r.image, axis_options(r));
    if (file.frames.size() != 1) {
      throw Error(Errc::invalid_argument, "'" + r.image + "' has " + std::to_string(file.frames.size()) +
                                              " time points (" + file.stored_axes + "); submit one per request");
    }
    return checked(std::move(file.frames[0]), "'" + r.image + "'");
  }
  const ipc::SegmentReader reader = ipc::SegmentReader::attach(r.input);
  io::StoredImage stored;
  stored.dtype = reader.desc().dtype;
  stored.shape.assign(reader.desc().shape.begin(), reader.desc().shape.begin() + reader.desc().ndim);
  stored.axes.assign(stored.shape.size(), 'Q');  // a segment names no axes: Cellpose's guess, or the request's
  if (!reader.copy_latest(stored.data)) {
    throw Error(Errc::invalid_argument, "input segment '" + r.input + "' has no frame yet; publish one first");
  }
  const std::string what = "input segment '" + r.input + "'";
  io::ImageFile file = io::arrange_axes(std::move(stored), axis_options(r), "segment:" + r.input);
  return checked(std::move(file.frames[0]), what);
}

// Reads the input on a thread of its own, so that a slow or stuck file
// system costs this request only: the worker gives up when the request is
// cancelled or its timeout passes. A read that never returns keeps its own
// thread, and nothing else.
io::Image read_input(const Job& job) {
  struct Shared {
    std::mutex mutex;
    std::condition_variable done;
    bool finished = false;
    io::Image image;
    std::exception_ptr error;
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, request = job.request] {
    io::Image image;
    std::exception_ptr error;
    try {
      image = read_input_now(request);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(shared->mutex);
    shared->image = std::move(image);
    shared->error = error;
    shared->finished = true;
    shared->done.notify_all();
  }).detach();
  std::unique_lock lock(shared->mutex);
  while (!shared->done.wait_for(lock, std::chrono::milliseconds(20), [&] { return shared->finished; })) {
    check_cancelled(job);
  }
  if (shared->error) std::rethrow_exception(shared->error);
  return std::move(shared->image);
}

}  // namespace

void check_cancelled(const Job& job) {
  switch (job.cancelled.load()) {
    case CancelReason::none:
      break;
    case CancelReason::shutdown:
      throw Error(Errc::cancelled, "the producer is shutting down");
    default:
      throw Error(Errc::cancelled, "cancelled by the client");
  }
  if (Clock::now() > job.deadline) throw Error(Errc::timed_out, "the request's timeout_s passed");
}

Worker::Worker(model::Segmenter segmenter, const ServerOptions& options)
    : segmenter_(std::move(segmenter)),
      options_(options),
      stream_(options.stream, ipc::SegmentOptions{.slots = options.slots}) {
  const model::Device d = segmenter_.model().device();
  if (d.cuda) {
    try {
      device_stream_.emplace(options.stream, options.slots, d.index);
    } catch (const Error& e) {
      std::fprintf(stderr, "cpipc serve: no device views (%s); publishing host views only\n", e.what());
    }
  }
}

Hello Worker::hello() const {
  Hello h;
  h.stream = options_.stream;
  h.model = segmenter_.model().source();
  h.architecture = segmenter_.model().info().architecture;
  h.device = segmenter_.model().device().to_string();
  h.device_views = device_stream_.has_value();
  h.pid = ::getpid();
  return h;
}

const ipc::SegmentWriter* Worker::segment() { return device_stream_ ? device_stream_->segment() : stream_.segment(); }

model::SegmentOptions Worker::options_for(Job& job, const Post& post) const {
  const SubmitRequest& r = job.request;
  model::SegmentOptions o = options_.defaults;
  // No diameter, here or from `cpipc serve --diameter`: estimated (0), as Cellpose.eval(diameter=0).
  o.diameter = r.diameter ? *r.diameter : o.diameter.value_or(0.0);
  if (r.channels) o.channels = {model::ChannelSpec::Kind::cellpose3, (*r.channels)[0], (*r.channels)[1]};
  if (r.flow_threshold) o.dynamics.flow_threshold = *r.flow_threshold;
  if (r.cellprob_threshold) o.dynamics.cellprob_threshold = *r.cellprob_threshold;
  if (r.min_size) o.dynamics.min_size = *r.min_size;
  if (r.max_size_fraction) o.dynamics.max_size_fraction = *r.max_size_fraction;
  if (r.niter) o.dynamics.niter = *r.niter;
  if (r.normalize) o.normalization.enabled = *r.normalize;
  if (r.norm_percentile) {
    o.normalization.lower = (*r.norm_percentile)[0];
    o.normalization.upper = (*r.norm_percentile)[1];
  }
  if (r.invert) o.normalization.invert = *r.invert;
  if (r.exclude_on_edges) o.exclude_on_edges = *r.exclude_on_edges;
  if (r.resample) o.resample = *r.resample;
  if (r.augment) o.augment = *r.augment;
  o.labels_on_device = device_stream_.has_value();
  o.progress = [&job, &post](const model::Progress& p) {
    check_cancelled(job);
    post(job.connection, ProgressEvent{job.request.id, model::to_string(p.stage), p.tiles_done, p.tiles_total});
  };
  return o;
}

// Publishes device labels straight into the slot's device buffer (and its
// host mirror by DMA): they never visit this process's memory.
ipc::FrameInfo Worker::publish_from_device(const model::Segmentation& s, const ipc::TensorDesc& desc,
                                           const ipc::FrameMeta& meta, std::span<const std::uint64_t> keep) {
  cuda::DeviceFrame frame = device_stream_->begin(desc, keep);
  cuda::write_labels(s.device_labels.data_ptr<std::int32_t>(), frame.device_data(),
                     static_cast<std::size_t>(desc.numel()), desc.dtype.bits, frame.stream());
  return frame.publish(meta);
}

ProducerMessage Worker::run(Job& job, const Post& post, const WaitForRoom& wait_for_room) {
  const auto t0 = Clock::now();
  const SubmitRequest& r = job.request;
  const auto fail = [&](const char* code, const std::string& message) -> ProducerMessage {
    return error_reply(r.id, code, message);
  };
  io::Image image;
  try {
    check_cancelled(job);
    image = read_input(job);
  } catch (const Error& e) {
    return fail(job.cancelled.load() == CancelReason::shutdown ? codes::shutting_down : code_of(e, true), e.what());
  } catch (const std::bad_alloc&) {
    return fail(codes::out_of_memory, "the producer ran out of memory reading this image; send a smaller one");
  } catch (const std::exception& e) {
    return fail(codes::bad_image, e.what());
  }
  const bool stack = image.axes.front() == 'Z';
  const bool in_3d = r.do_3d.value_or(false) || r.stitch_threshold.value_or(0.0f) > 0.0f;
  if (in_3d && !stack) {
    return fail(codes::bad_image, std::string(r.do_3d.value_or(false) ? "do_3d" : "stitch_threshold") +
                                      " needs a z-stack, and the image is " + image.axes +
                                      "; send a [Z, Y, X] stack (a TIFF with Z, or z_axis)");
  }

  model::Segmentation s;
  // A z-stack's labels, on the host: [Z, H, W], and how many objects.
  struct StackLabels {
    std::vector<std::uint32_t> labels;
    std::int64_t planes = 0, height = 0, width = 0;
    std::uint64_t objects = 0;
    bool fits_uint16 = true;
  };
  std::optional<StackLabels> planes;
  try {
    if (stack && in_3d) {
      model::VolumeOptions v;
      v.base = options_for(job, post);
      v.do_3d = r.do_3d.value_or(false);
      v.stitch_threshold = r.stitch_threshold.value_or(0.0f);
      v.anisotropy = r.anisotropy.value_or(1.0);
      v.flow3d_smooth = r.flow3d_smooth.value_or(std::array<double, 3>{0.0, 0.0, 0.0});
      model::VolumeSegmentation vs = model::segment_volume(segmenter_, image.array, v);
      planes = StackLabels{std::move(vs.labels), vs.depth, vs.height, vs.width, vs.count, vs.fits_uint16()};
      s.diameter = vs.diameter;
      s.tiles = vs.tiles;
      s.timings = vs.timings;
    } else if (stack) {  // plane by plane, each plane's labels from 1, as Cellpose without do_3D or stitching
      model::PlaneSegmentation ps = model::segment_planes(segmenter_, image.array, options_for(job, post));
      planes = StackLabels{std::move(ps.labels), ps.planes, ps.height, ps.width, ps.objects(), ps.fits_uint16()};
      s.diameter = ps.first.diameter;
      s.diameter_estimated = ps.first.diameter_estimated;
      s.tiles = ps.first.tiles;
      s.timings = ps.first.timings;
    } else {
      s = segmenter_.segment(image.array, options_for(job, post));
    }
  } catch (const Error& e) {
    const bool stop = job.cancelled.load() == CancelReason::shutdown && e.code() == Errc::cancelled;
    return fail(stop ? codes::shutting_down : code_of(e, false), e.what());
  } catch (const std::bad_alloc&) {
    return fail(codes::out_of_memory, "the producer ran out of memory segmenting this image; send a smaller one");
  } catch (const std::exception& e) {
    return fail(codes::model_failure, e.what());
  }
  image = {};  // the input is not needed while waiting to publish

  // uint16 below 65 536 masks, as Cellpose saves them; uint32 from there.
  // Host labels are narrowed once, here; device labels on the device.
  std::optional<io::Array> host;
  ipc::TensorDesc desc;
  std::vector<std::int64_t> shape;
  std::uint64_t objects = 0;
  if (planes) {
    shape = {planes->planes, planes->height, planes->width};
    objects = planes->objects;
    if (device_stream_) {
      // The stack's labels go to the device once, for its device view.
      desc = ipc::TensorDesc::contiguous(planes->fits_uint16 ? ipc::kUInt16 : ipc::kUInt32, shape);
      const model::Device d = segmenter_.model().device();
      s.device_labels = at::from_blob(planes->labels.data(), {static_cast<std::int64_t>(planes->labels.size())},
                                      at::TensorOptions().dtype(at::kInt))
                            .to(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d.index)));
    } else {
      host = io::narrow_labels(planes->labels, planes->planes * planes->height, planes->width);
      host->desc = ipc::TensorDesc::contiguous(host->desc.dtype, shape);
      desc = host->desc;
    }
    planes->labels = {};
  } else {
    shape = {s.masks.height, s.masks.width};
    objects = s.masks.count;
    if (device_stream_ && s.device_labels.defined()) {
      desc = ipc::TensorDesc::contiguous(s.masks.fits_uint16() ? ipc::kUInt16 : ipc::kUInt32, shape);
    } else {
      host = io::narrow_labels(s.masks.data, s.masks.height, s.masks.width);
      desc = host->desc;
      s.masks.data = {};
    }
  }
  const ipc::SegmentWriter* current = segment();
  const std::vector<std::uint64_t> keep = wait_for_room(current == nullptr || !current->desc().same_layout(desc), job);
  if (job.is_cancelled()) {
    return fail(
        job.cancelled.load() == CancelReason::shutdown ? codes::shutting_down : codes::cancelled,
        job.cancelled.load() == CancelReason::shutdown ? "the producer is shutting down" : "cancelled by the client");
  }
  const std::string source = r.image.empty() ? "segment:" + r.input : r.image;
  const ipc::FrameMeta meta{
      static_cast<std::uint32_t>(std::min<std::uint64_t>(objects, UINT32_MAX)), static_cast<float>(s.diameter),
      frame_meta_json(r.id, source, ipc::format::kMetaBytes, s.diameter_estimated, shape.size() == 3 ? "ZYX" : "YX")};
  ipc::FrameInfo info;
  try {
    info = host ? stream_.publish(desc, host->data, meta, keep) : publish_from_device(s, desc, meta, keep);
  } catch (const Error& e) {
    return fail(e.code() == Errc::out_of_memory ? codes::out_of_memory : codes::internal,
                std::string("publishing the masks failed: ") + e.what());
  }
  Result result;
  result.id = r.id;
  result.segment = options_.stream;
  result.device_view = info.device_valid;
  result.slot = info.slot;
  result.seq = info.seq;
  result.frame_id = info.frame_id;
  result.shape = shape;
  result.axes = stack ? "ZYX" : "YX";
  result.dtype = ipc::to_string(desc.dtype);
  result.objects = static_cast<std::uint32_t>(std::min<std::uint64_t>(objects, UINT32_MAX));
  result.diameter = s.diameter;
  result.diameter_estimated = s.diameter_estimated;
  result.tiles = s.tiles;
  result.timings = Timings{s.timings.preprocess_s, s.timings.network_s, s.timings.dynamics_s, s.timings.total_s};
  result.request_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

}  // namespace cpipc::service::detail
