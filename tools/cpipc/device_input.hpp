// `cpipc stats|outlines --device cuda` on a segment that exports device
// views: the label frame is read where the producer wrote it, through CUDA
// IPC, instead of from the host mirror and uploaded again (which is what
// happens when the segment is host-only, lives on another GPU, or this
// process cannot open its handles).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/error.hpp"
#include "cpipc/ipc/reader.hpp"
#include "post_input.hpp"

namespace cpipc::cli {

// A leased device view of a label frame; `frame` has the shape, dtype and
// frame id (no labels: they stay on the device). Members in this order so
// that the lease ends before the reader closes the handles.
struct DeviceLabelFrame {
  std::shared_ptr<const ipc::SegmentReader> segment;
  std::unique_ptr<cuda::DeviceReader> reader;
  std::optional<cuda::DeviceLease> lease;
  LabelFrame frame;

  [[nodiscard]] const void* labels() const { return lease->data(); }
};

// The frame `o` asks for as a device view on CUDA device `ordinal`, or
// nullopt when there is none to be had (then read_label_frame, which also
// says what is wrong with a missing or finished segment).
inline std::optional<DeviceLabelFrame> device_label_frame(const std::string& name, const FrameOptions& o, int ordinal) {
  DeviceLabelFrame d;
  d.segment = std::make_shared<const ipc::SegmentReader>(ipc::SegmentReader::attach(name));
  const ipc::TensorDesc& desc = d.segment->desc();
  if (d.segment->layout().export_kind != ipc::format::ExportKind::cuda_ipc || desc.ndim != 2 || !desc.is_contiguous() ||
      (desc.dtype != ipc::kUInt16 && desc.dtype != ipc::kUInt32)) {
    return std::nullopt;
  }
  try {
    d.reader = std::make_unique<cuda::DeviceReader>(d.segment);
  } catch (const Error& e) {
    if (e.code() == Errc::not_found || e.code() == Errc::invalid_argument) return std::nullopt;
    throw;
  }
  if (d.reader->device() != ordinal) return std::nullopt;  // asked for another GPU: upload there
  if (o.frame == "next") {
    const auto latest = d.segment->status().latest;
    d.segment->wait_next(latest ? latest->frame_id : 0, std::chrono::milliseconds(o.wait_ms < 0 ? 10000 : o.wait_ms));
  } else if (o.wait_ms > 0 && !d.segment->status().latest) {
    d.segment->wait_next(0, std::chrono::milliseconds(o.wait_ms));
  }
  try {
    d.lease = d.reader->lease_latest(nullptr);
  } catch (const Error& e) {
    // The device memory went with its producer; the host mirror stays while
    // the segment does, and read_label_frame reads it.
    if (e.code() == Errc::producer_gone) return std::nullopt;
    throw;
  }
  if (!d.lease) return std::nullopt;
  d.frame.height = static_cast<int>(desc.shape[0]);
  d.frame.width = static_cast<int>(desc.shape[1]);
  d.frame.frame_id = d.lease->info().frame_id;
  d.frame.desc = desc;
  return d;
}

}  // namespace cpipc::cli
