#include "tests/drivers/llm/quant/quant_test_util.h"

#include <cstring>
#include <random>

#include "drivers/llm/quant/quant.h"

namespace icam::llm::test {

const std::vector<GgmlType>& computable_types() {
  static const std::vector<GgmlType> types = {
      GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q5_0,
      GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
  };
  return types;
}

std::string type_name(GgmlType t) {
  return std::string(ggml_type_name(t));
}

std::vector<float> random_floats(size_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> out(n);
  for (float& v : out) v = normal(rng);
  return out;
}

int64_t block_elems(GgmlType t) {
  return ggml_type_info(t).block_elems;
}

size_t row_bytes(GgmlType t, int64_t n) {
  return static_cast<size_t>(ggml_row_bytes(t, static_cast<uint64_t>(n)));
}

std::vector<uint8_t> quantize_matrix(GgmlType t, const std::vector<float>& values, int64_t rows,
                                     int64_t cols) {
  const size_t stride = row_bytes(t, cols);
  std::vector<uint8_t> out(stride * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(t, values.data() + r * cols, out.data() + static_cast<size_t>(r) * stride, cols);
  }
  return out;
}

std::vector<uint8_t> random_blocks(GgmlType t, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(0.001f, 0.1f);
  const auto put_half = [&](uint8_t* p) {
    const uint16_t h = f32_to_fp16(scale(rng));
    std::memcpy(p, &h, sizeof h);
  };
  if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) {
    const std::vector<float> values = random_floats(static_cast<size_t>(n), seed);
    std::vector<uint8_t> out(row_bytes(t, n));
    quantize_row(t, values.data(), out.data(), n);
    return out;
  }
  std::vector<uint8_t> out(row_bytes(t, n));
  for (uint8_t& byte : out) byte = static_cast<uint8_t>(rng());
  const size_t block_bytes = ggml_type_info(t).block_bytes;
  for (size_t offset = 0; offset < out.size(); offset += block_bytes) {
    uint8_t* block = out.data() + offset;
    switch (t) {
      case GgmlType::Q4_0:
      case GgmlType::Q5_0:
      case GgmlType::Q8_0:
        put_half(block);
        break;
      case GgmlType::Q4_K:
      case GgmlType::Q5_K:
        put_half(block);      // d
        put_half(block + 2);  // dmin
        break;
      case GgmlType::Q6_K:
        put_half(block + 208);
        break;
      default:
        break;
    }
  }
  return out;
}

}  // namespace icam::llm::test

namespace icam::llm {
void PrintTo(GgmlType t, std::ostream* out) {
  *out << ggml_type_name(t);
}
}  // namespace icam::llm
