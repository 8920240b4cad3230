// A model's identity: the digest that says whose keys and values a KV page holds. Two engines may
// exchange a page only when their identities are equal, so the identity covers everything that
// decides a page's contents for given token ids:
//   - the architecture and every hyper-parameter of ModelConfig (layers, widths, heads, context,
//     norms' epsilon, RoPE bases, style and scale, activation, attention and embedding scales,
//     sliding window and which layers use it, QK-norm, post-norms, attention biases);
//   - the tensor data layout: for each tensor of the GGUF file in file order, its name, element
//     type, dimensions, size in bytes and offset in the data section;
//   - a sample of the weights themselves: a digest of three 4 KiB windows of every tensor's data
//     (its start, its middle and its end; the whole tensor when it is smaller than that).
// The sample keeps identifying a 250 MB model at a few milliseconds, without reading every weight
// back in after the backend has repacked them. A fine-tune or a requantization changes the bytes
// of every window, so it changes the identity; a file edited only outside the sampled windows
// would not, which is the one case the identity does not cover. Tokenizer metadata is not
// covered: a page is keyed by token ids, whose keys and values do not depend on the vocabulary's
// text. The page's shape (tokens per page, element type) is checked separately by the page store.
#pragma once

#include <string>

#include "drivers/llm/engine/model.h"
#include "drivers/llm/engine/model_config.h"
#include "drivers/llm/gguf/gguf.h"
#include "memory/digest.h"

namespace icam::memory {

struct ModelIdentity {
  Digest digest{};

  bool operator==(const ModelIdentity&) const = default;
  std::string hex() const { return to_hex(digest); }
};

ModelIdentity model_identity(const llm::GgufFile& file, const llm::ModelConfig& config);
inline ModelIdentity model_identity(const llm::Model& model) {
  return model_identity(model.file(), model.config());
}

// The hyper-parameters only. Enough to key pages that never leave one KV pool (every page of a
// pool was computed by the one backend, with one set of weights, that owns it); pages that leave
// it (the page store) need model_identity().
ModelIdentity config_identity(const llm::ModelConfig& config);

}  // namespace icam::memory
