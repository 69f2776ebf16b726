// Cellpose's dynamics on the GPU: the same steps, in the same order, as the
// CPU backend (dynamics.hpp), with the masks computed and kept in device
// memory. Available when cpipc is built with CUDA; available() says whether
// this process can use a device.
#pragma once

#include <cstdint>
#include <string>

#include "cpipc/cuda/stream_view.hpp"
#include "cpipc/dynamics/dynamics.hpp"

namespace cpipc::dynamics::gpu {

// Device flows: three device pointers to height x width float32 planes.
struct DeviceFlows {
  const float* dy = nullptr;
  const float* dx = nullptr;
  const float* cellprob = nullptr;
  int height = 0;
  int width = 0;
};

// Device labels owned by the caller: `labels` must hold height x width
// uint32 on the device. Returns the object count. `stream` is a
// cudaStream_t (0 = the default stream); the result is ready when the call
// returns. Throws Error(invalid_argument) for bad input, Error(system) for
// CUDA failures (naming the call).
std::uint32_t masks_from_flows(const DeviceFlows& flows, std::uint32_t* labels, const Params& params = {},
                               cuda::StreamView stream = {});

// Host in, host out, through the device: for tests, `cpipc masks --device
// cuda` and callers without device buffers of their own.
[[nodiscard]] Labels masks_from_flows_via_device(const Flows& flows, const Params& params = {});

// Device flows of a [Z, Y, X] stack: four device pointers to depth x height
// x width float32 volumes (dZ, dY, dX, cellprob).
struct DeviceFlows3D {
  const float *dz = nullptr, *dy = nullptr, *dx = nullptr, *cellprob = nullptr;
  int depth = 0, height = 0, width = 0;
};

// masks_from_flows_3d (dynamics.hpp) on the device, the same masks as the
// CPU backend: `labels` must hold depth x height x width uint32 on the
// device. Returns the object count; params.flow_threshold is ignored (no QC
// in 3-D, as Cellpose). Stream and errors as masks_from_flows.
std::uint32_t masks_from_flows_3d(const DeviceFlows3D& flows, std::uint32_t* labels, const Params& params = {},
                                  cuda::StreamView stream = {});

// Host in, host out, through the device.
[[nodiscard]] Labels3D masks_from_flows_3d_via_device(const Flows3D& flows, const Params& params = {});

// True if a CUDA device can be used; `why` says why not.
[[nodiscard]] bool available(std::string* why = nullptr) noexcept;

}  // namespace cpipc::dynamics::gpu
