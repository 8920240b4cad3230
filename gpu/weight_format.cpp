#include "gpu/weight_format.h"

namespace icam::gpu {

bool weight_format_supported(uint32_t id) {
  switch (static_cast<WeightFormat>(id)) {
    case WeightFormat::F32:
    case WeightFormat::F16:
    case WeightFormat::BF16:
    case WeightFormat::Q4_0:
    case WeightFormat::Q5_0:
    case WeightFormat::Q8_0:
    case WeightFormat::Q4_K:
    case WeightFormat::Q5_K:
    case WeightFormat::Q6_K:
      return true;
  }
  return false;
}

int weight_block_elems(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32:
    case WeightFormat::F16:
    case WeightFormat::BF16:
      return 1;
    case WeightFormat::Q4_0:
    case WeightFormat::Q5_0:
    case WeightFormat::Q8_0:
      return 32;
    case WeightFormat::Q4_K:
    case WeightFormat::Q5_K:
    case WeightFormat::Q6_K:
      return 256;
  }
  return 1;
}

int weight_block_bytes(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32:
      return 4;
    case WeightFormat::F16:
      return 2;
    case WeightFormat::BF16:
      return 2;
    case WeightFormat::Q4_0:
      return 18;
    case WeightFormat::Q5_0:
      return 22;
    case WeightFormat::Q8_0:
      return 34;
    case WeightFormat::Q4_K:
      return 144;
    case WeightFormat::Q5_K:
      return 176;
    case WeightFormat::Q6_K:
      return 210;
  }
  return 4;
}

uint64_t weight_row_bytes(WeightFormat f, int64_t cols) {
  return static_cast<uint64_t>(cols / weight_block_elems(f)) * weight_block_bytes(f);
}

}  // namespace icam::gpu
