// A loaded model: the mapped GGUF file, its configuration, its bound weights and its tokenizer.
// Loading validates everything (format, architecture, every tensor's presence, shape and type)
// so that a model that loads can run.
//
// Thread-safety: immutable after load; backends and tokenizer calls may share it.
#pragma once

#include <memory>
#include <string>

#include "drivers/llm/engine/model_config.h"
#include "drivers/llm/engine/weights.h"
#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/tokenizer/chat_template.h"
#include "drivers/llm/tokenizer/tokenizer.h"

namespace icam::llm {

class Model {
 public:
  static Result<std::unique_ptr<Model>> load(const std::string& path);

  const GgufFile& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  ChatFamily chat_family() const { return chat_family_; }
  // Bytes of weights read per decoded token (every tensor the forward pass streams).
  uint64_t weight_bytes_per_token() const { return weight_bytes_per_token_; }

 private:
  Model() = default;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ChatFamily chat_family_ = ChatFamily::chatml;
  uint64_t weight_bytes_per_token_ = 0;
};

}  // namespace icam::llm
