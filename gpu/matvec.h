// L0: the quantized matrix-vector product for decode and small batches. One warp per weight row:
// the lanes walk the row's 32-weight chunks (quantized formats) or its elements (float formats),
// dequantize in registers and multiply with up to kMatvecBatch float activation rows at once, so
// each weight byte is read once per kMatvecBatch activation rows. Activations stay in float
// (unlike the CPU, which quantizes them to Q8_0/Q8_K); the CPU reference therefore differs by
// the activation rounding, which the tests bound.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "gpu/device_memory.h"
#include "gpu/weight_format.h"

namespace icam::gpu {

inline constexpr int kMatvecBatch = 8;

// y[b * ldy + r] = sum_k W[r][k] * x[b * w.cols + k] for b < batch, r < w.rows; batches larger
// than kMatvecBatch run in groups of it. x and y are device memory and must not overlap.
Status matvec(const DeviceWeight& w, const float* x, int64_t batch, float* y, int64_t ldy,
              StreamHandle stream);

}  // namespace icam::gpu
