// L0: dequantizing rows of a device weight to floats on the device. The prefill path uses it to
// expand a tile of a quantized matrix before a tensor-core product; the embedding lookup uses
// the same device functions (gpu/dequantize.cuh).
#pragma once

#include <cstdint>

#include "common/result.h"
#include "gpu/device_memory.h"
#include "gpu/weight_format.h"

namespace icam::gpu {

// out[(r - row0) * w.cols + k] = W[r][k] for r in [row0, row0 + n_rows). Quantized formats need
// cols to be whole blocks (checked: Errc::invalid_argument).
Status dequantize_rows(const DeviceWeight& w, int64_t row0, int64_t n_rows, float* out,
                       StreamHandle stream);

// out[i * w.cols + k] = W[tokens[i]][k] * scale for i < n: the token embedding lookup. `tokens`
// is in device memory and must hold valid row indices (the engine validates them on the host).
Status embed_rows(const DeviceWeight& w, const int32_t* tokens, int64_t n, float scale, float* out,
                  StreamHandle stream);

}  // namespace icam::gpu
