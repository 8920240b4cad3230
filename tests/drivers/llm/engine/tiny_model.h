// Tiny GGUF models with seeded random weights, for testing the engine against the naive reference
// in naive_forward.h. A model is first a list of float tensors (so a test can damage one before it
// is written: drop it, change its shape or its element type), then a GGUF file written with
// GgufWriter, quantizing each matrix to the spec's weight type.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/model.h"
#include "drivers/llm/gguf/ggml_type.h"
#include "drivers/llm/gguf/gguf_writer.h"

namespace icam::llm::testing {

// The vocabulary every tiny model carries: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>
// and a few SentencePiece pieces, 300 tokens in all.
inline constexpr int kTinyVocab = 300;
inline constexpr int32_t kTinyUnk = 0;
inline constexpr int32_t kTinyBos = 1;
inline constexpr int32_t kTinyEos = 2;
inline constexpr int32_t kTinyFirstByte = 3;         // <0x00>
inline constexpr int32_t kTinyFirstPiece = 3 + 256;  // first SentencePiece piece

struct TinySpec {
  std::string arch = "llama";            // gemma3, llama, qwen2, qwen3 (others: error tests)
  GgmlType weight_type = GgmlType::F32;  // every matrix, the token embedding included
  int n_layers = 2;
  int d_model = 64;
  int d_ffn = 128;
  int n_heads = 4;
  int n_kv_heads = 2;
  int head_dim = 16;  // written as key_length/value_length when it is not d_model / n_heads
  int context_length = 256;
  float rms_eps = 1e-6f;
  float rope_base = 10000.0f;    // global layers
  float rope_linear_factor = 0;  // > 0: rope.scaling.type linear with this factor
  int sliding_window = 0;        // gemma3 only
  bool tied_output = true;       // false: a separate output.weight
  // Llama 3.1-style RoPE frequency factors (rope_freqs.weight, head_dim / 2 of them, each
  // dividing its pair's frequency); empty for none.
  std::vector<float> rope_freq_factors;
  uint64_t seed = 1;
};

// The usual tiny shape of `arch` (see the .cpp for the choices). K-quants need rows of 256
// weights, so their models are wider.
TinySpec tiny_spec(std::string_view arch, GgmlType weight_type = GgmlType::F32);

struct TinyTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> dims;  // GGUF order: {cols, rows} for matrices
  std::vector<float> values;   // row-major, quantized to `type` when written
  std::vector<uint8_t> raw;    // when not empty, written as is instead (types icam cannot make)
};

struct TinyModel {
  TinySpec spec;
  std::vector<TinyTensor> tensors;

  TinyTensor* find(std::string_view name);
  void remove(std::string_view name);
};

TinyModel make_tiny_model(const TinySpec& spec);

// Writes the GGUF file. `edit` runs after the standard metadata is set and may replace or add
// keys (a repeated key replaces the earlier value).
using MetadataEdit = std::function<void(GgufWriter&)>;
Status write_tiny_model(const TinyModel& model, const std::string& path,
                        const MetadataEdit& edit = {});

// Writes the model to a fresh file in the temporary directory, loads it with Model::load and
// removes the file (the model keeps its mapping).
Result<std::unique_ptr<Model>> load_tiny_model(const TinyModel& model,
                                               const MetadataEdit& edit = {});

// The file of the undamaged model for `spec`, written on first use and reused until the process
// exits (then removed). Quantizing the K-quant models is most of a test's time, so every test that
// needs an engine for an unmodified spec shares one file.
const std::string& tiny_model_file(const TinySpec& spec);

// A fresh path in the temporary directory, unique within this process.
std::string temp_model_path(std::string_view stem);

// Deterministic pseudo-random numbers (splitmix64), the same on every platform and library.
class TinyRandom {
 public:
  explicit TinyRandom(uint64_t seed) : state_(seed) {}
  uint64_t next();
  double uniform();  // [0, 1)
  float uniform(float lo, float hi);
  int32_t below(int32_t n);  // [0, n)
  std::vector<int32_t> tokens(int n, int32_t vocab);

 private:
  uint64_t state_;
};

}  // namespace icam::llm::testing
