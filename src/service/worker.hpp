// The producer's one worker: runs a request with the loaded model and
// publishes its masks. Everything about a request that takes time is here;
// the transport and the scheduler never wait on it.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "cpipc/cuda/device_stream.hpp"
#include "cpipc/ipc/writer.hpp"
#include "cpipc/model/segmenter.hpp"
#include "cpipc/service/protocol.hpp"
#include "cpipc/service/scheduler.hpp"
#include "cpipc/service/server.hpp"

namespace cpipc::service::detail {

class Worker {
 public:
  // Sends a message about a running request (progress) to its client.
  using Post = std::function<void(std::uint64_t connection, ProducerMessage message)>;
  // Blocks until one more result can be published without taking a
  // promised slot (`replaces`: the segment must be re-created for it);
  // returns the frames to keep.
  using WaitForRoom = std::function<std::vector<std::uint64_t>(bool replaces, const Job& job)>;

  Worker(model::Segmenter segmenter, const ServerOptions& options);

  [[nodiscard]] Hello hello() const;

  // Reads the request's image, segments it and publishes the masks. Returns
  // its final message: a Result, or an ErrorReply with the protocol's code.
  // Never throws.
  [[nodiscard]] ProducerMessage run(Job& job, const Post& post, const WaitForRoom& wait_for_room);

 private:
  [[nodiscard]] model::SegmentOptions options_for(Job& job, const Post& post) const;
  [[nodiscard]] ipc::FrameInfo publish_from_device(const model::Segmentation& s, const ipc::TensorDesc& desc,
                                                   const ipc::FrameMeta& meta, std::span<const std::uint64_t> keep);
  [[nodiscard]] const ipc::SegmentWriter* segment();

  model::Segmenter segmenter_;
  const ServerOptions& options_;
  // Results go to `stream_`, or with a CUDA model to `device_stream_`
  // (device views through CUDA IPC plus the host mirror).
  ipc::Stream stream_;
  std::optional<cuda::DeviceStream> device_stream_;
};

// Throws Error(cancelled) or Error(timed_out) if `job` should stop now.
void check_cancelled(const Job& job);

}  // namespace cpipc::service::detail
