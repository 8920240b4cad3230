#include "drivers/llm/engine/model.h"

namespace icam::llm {

Result<std::unique_ptr<Model>> Model::load(const std::string& path) {
  std::unique_ptr<Model> model(new Model());
  model->file_ = ICAM_TRY(GgufFile::open(path));
  const GgufFile& f = *model->file_;
  model->config_ = ICAM_TRY(read_model_config(f));
  model->weights_ = ICAM_TRY(bind_weights(f, model->config_));
  model->tokenizer_ = ICAM_TRY(Tokenizer::from_gguf(f));
  if (model->tokenizer_->vocab_size() != model->config_.n_vocab)
    return make_error(Errc::corrupt, path, ": tokenizer has ", model->tokenizer_->vocab_size(),
                      " tokens but the embedding has ", model->config_.n_vocab, " rows");
  model->chat_family_ = ICAM_TRY(detect_chat_family(f));

  // Every tensor except the token embedding is read once per step; of the embedding only the
  // rows of the step's tokens are, unless it doubles as the output projection.
  uint64_t bytes = 0;
  const void* embedding = model->weights_.token_embedding.data;
  const bool tied = model->weights_.output.data == embedding;
  for (const GgufTensor& t : f.tensors()) {
    if (t.data == embedding && !tied) continue;
    bytes += t.n_bytes;
  }
  model->weight_bytes_per_token_ = bytes;
  return model;
}

}  // namespace icam::llm
