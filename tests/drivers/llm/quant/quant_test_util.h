// Shared helpers for the quant tests: seeded random data and whole-matrix quantization.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "drivers/llm/gguf/ggml_type.h"

namespace icam::llm::test {

// The weight formats matmul supports, in a fixed order.
const std::vector<GgmlType>& computable_types();

// A name for test output and gtest parameter names ("q4_K").
std::string type_name(GgmlType t);

// n normally distributed floats with the given standard deviation, reproducible from the seed.
std::vector<float> random_floats(size_t n, uint32_t seed, float sigma = 1.0f);

// rows x cols floats quantized row by row with quantize_row.
std::vector<uint8_t> quantize_matrix(GgmlType t, const std::vector<float>& values, int64_t rows,
                                     int64_t cols);

// n elements of random blocks: random bytes everywhere (every code, scale and bit pattern), with
// the fp16 scales replaced by finite values of moderate size so that sums stay meaningful.
std::vector<uint8_t> random_blocks(GgmlType t, int64_t n, uint32_t seed);

// The element count of a block, and its size in bytes.
int64_t block_elems(GgmlType t);
size_t row_bytes(GgmlType t, int64_t n);

}  // namespace icam::llm::test

namespace icam::llm {
// Lets gtest print type parameters by name ("q4_K") instead of as bytes.
void PrintTo(GgmlType t, std::ostream* out);
}  // namespace icam::llm
