// A summary of a GGUF model for people and tools: identity, hyper-parameters, tokenizer and how
// the weights are quantized. describe_model reads only what GgufFile already validated; the JSON
// form has stable snake_case keys (listed at model_info_json) for scripts and the daemon API.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "drivers/llm/gguf/ggml_type.h"
#include "drivers/llm/gguf/gguf.h"

namespace icam::llm {

// One "<architecture>.*" metadata entry.
struct ModelHyperParameter {
  std::string key;       // without the architecture prefix, e.g. "attention.head_count"
  std::string label;     // a readable name ("attention heads"), empty when icam knows none
  nlohmann::json value;  // a number, string or bool; an array is summarized as
                         // {"element_type": "i32", "length": 18, "head": [first few elements]}
};

// The tensors of one element type.
struct TensorTypeUsage {
  GgmlType type = GgmlType::F32;
  uint64_t tensors = 0;
  uint64_t elements = 0;
  uint64_t bytes = 0;
};

// Strings taken from the file are valid UTF-8 here (invalid bytes become U+FFFD).
struct ModelInfo {
  std::string path;
  uint64_t file_size = 0;
  uint32_t gguf_version = 0;
  uint64_t alignment = 0;
  uint64_t data_offset = 0;
  uint64_t metadata_count = 0;
  std::string name;                                  // general.name; empty when absent
  std::string architecture;                          // general.architecture
  std::vector<ModelHyperParameter> hyperparameters;  // in file order

  std::string tokenizer_model;  // tokenizer.ggml.model; empty when absent
  std::string tokenizer_pre;    // tokenizer.ggml.pre; empty when absent
  uint64_t vocab_size = 0;      // entries in tokenizer.ggml.tokens; 0 when absent
  std::optional<int64_t> bos_id;
  std::optional<int64_t> eos_id;
  bool has_chat_template = false;  // tokenizer.chat_template is present

  std::vector<TensorTypeUsage> tensor_types;  // one per type present, most bytes first
  uint64_t tensor_count = 0;
  uint64_t total_parameters = 0;  // elements of all tensors
  uint64_t total_tensor_bytes = 0;
};

// Errors: general.architecture absent (not_found) or empty, or a well-known key (tokenizer.*,
// general.name) of the wrong type (corrupt); messages name the file and the key.
Result<ModelInfo> describe_model(const GgufFile& file);

nlohmann::json model_info_json(const ModelInfo& info);

// A table for terminals: one "label  value" line per fact, sizes in MiB with exact bytes.
std::string model_info_text(const ModelInfo& info);

// Text as valid UTF-8: each byte that is not part of a well-formed sequence becomes U+FFFD.
std::string sanitize_utf8(std::string_view text);

}  // namespace icam::llm
