#include "tests/drivers/llm/engine/tiny_model.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "drivers/llm/quant/quant.h"

namespace icam::llm::testing {

uint64_t TinyRandom::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double TinyRandom::uniform() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

float TinyRandom::uniform(float lo, float hi) {
  return lo + static_cast<float>(uniform()) * (hi - lo);
}

int32_t TinyRandom::below(int32_t n) {
  return static_cast<int32_t>(next() % static_cast<uint64_t>(n));
}

std::vector<int32_t> TinyRandom::tokens(int n, int32_t vocab) {
  std::vector<int32_t> out(n);
  for (int32_t& t : out) t = below(vocab);
  return out;
}

TinySpec tiny_spec(std::string_view arch, GgmlType weight_type) {
  // K-quant blocks are 256 weights wide: every matrix's input dimension (d_model, the attention
  // width n_heads * head_dim and d_ffn) must be a multiple of 256.
  const bool k_quant = weight_type == GgmlType::Q4_K || weight_type == GgmlType::Q5_K ||
                       weight_type == GgmlType::Q6_K;
  TinySpec s;
  s.arch = std::string(arch);
  s.weight_type = weight_type;
  s.d_model = k_quant ? 256 : 64;
  s.d_ffn = k_quant ? 256 : 128;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = s.d_model / s.n_heads;
  if (arch == "llama") {
    // Untied output, default RoPE base.
    s.n_layers = 2;
    s.tied_output = false;
  } else if (arch == "qwen2") {
    // Four query heads per key/value head, and narrow heads.
    s.n_layers = 2;
    s.n_heads = 8;
    s.head_dim = s.d_model / s.n_heads;
    s.rope_base = 1000000.0f;
    s.tied_output = true;
  } else if (arch == "qwen3") {
    // Qwen3 heads are wider than d_model / n_heads (key_length in the metadata); not with the
    // K-quants, whose quantization would then cost most of the test's time.
    s.n_layers = 3;
    s.head_dim = k_quant ? 64 : 32;
    s.rope_base = 1000000.0f;
    s.tied_output = false;
  } else if (arch == "gemma3") {
    // Six layers so that both kinds exist: layers 0-4 slide over a window, layer 5 is global.
    // The window is much shorter than the test sequences, and the global layer uses its own
    // RoPE base with linear scaling, as the larger Gemma 3 models do.
    s.n_layers = 6;
    s.head_dim = k_quant ? 64 : 32;
    s.sliding_window = 8;
    s.rope_base = 1000000.0f;
    s.rope_linear_factor = 8.0f;
    s.tied_output = true;
  }
  return s;
}

TinyTensor* TinyModel::find(std::string_view name) {
  for (TinyTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void TinyModel::remove(std::string_view name) {
  std::erase_if(tensors, [&](const TinyTensor& t) { return t.name == name; });
}

namespace {

// Weights are uniform with standard deviation 1/sqrt(cols), so every matrix product maps O(1)
// inputs to O(1) outputs and activations stay in a range where relative errors mean something.
TinyTensor random_matrix(TinyRandom& rng, std::string name, GgmlType type, int rows, int cols) {
  TinyTensor t{
      std::move(name), type, {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)}, {}};
  const float a = std::sqrt(3.0f / static_cast<float>(cols));
  t.values.resize(static_cast<size_t>(rows) * cols);
  for (float& v : t.values) v = rng.uniform(-a, a);
  return t;
}

// Norm weights near 1 (Gemma's files store 1 + w already), different per element so that a
// norm applied with the wrong weight, or not at all, changes the result.
TinyTensor random_norm(TinyRandom& rng, std::string name, int n) {
  TinyTensor t{std::move(name), GgmlType::F32, {static_cast<uint64_t>(n)}, {}};
  t.values.resize(n);
  for (float& v : t.values) v = rng.uniform(0.7f, 1.3f);
  return t;
}

TinyTensor random_bias(TinyRandom& rng, std::string name, int n) {
  TinyTensor t{std::move(name), GgmlType::F32, {static_cast<uint64_t>(n)}, {}};
  t.values.resize(n);
  for (float& v : t.values) v = rng.uniform(-0.5f, 0.5f);
  return t;
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

// A small SentencePiece vocabulary: the specials, all 256 bytes, then pieces made of printable
// ASCII so that most generated text is visible.
Vocab tiny_vocab() {
  constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6;
  Vocab v;
  auto add = [&](std::string text, float score, int32_t type) {
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, kUnknown);
  add("<s>", 0.0f, kControl);
  add("</s>", 0.0f, kControl);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name, 0.0f, kByte);
  }
  const std::string space = "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary
  const char* pieces[] = {"",    "the", "a",  "is", "of", "and", "to",  "in",  "it",  "on", "e",
                          "t",   "o",   "n",  "s",  "r",  "h",   "l",   "er",  "an",  "re", "at",
                          "ing", "ed",  "ou", "he", "hi", "cat", "dog", "sat", "mat", "x",  "y",
                          "z",   "!",   ".",  ",",  "?",  "ab",  "cd",  "ef"};
  float score = -1.0f;
  for (const char* p : pieces) {
    // Pieces alternate between word starts and word parts.
    const bool word = v.tokens.size() % 2 == 0 || std::strlen(p) == 0;
    add(word ? space + p : std::string(p), score, kNormal);
    score -= 1.0f;
  }
  return v;
}

std::vector<uint8_t> encode(const TinyTensor& t) {
  if (!t.raw.empty()) return t.raw;
  const uint64_t cols = t.dims.empty() ? 0 : t.dims[0];
  const uint64_t rows = cols == 0 ? 0 : t.values.size() / cols;
  std::vector<uint8_t> bytes(rows * ggml_row_bytes(t.type, cols));
  if (t.type == GgmlType::F32) {
    std::memcpy(bytes.data(), t.values.data(), bytes.size());
    return bytes;
  }
  const uint64_t row_bytes = ggml_row_bytes(t.type, cols);
  for (uint64_t r = 0; r < rows; ++r)
    quantize_row(t.type, t.values.data() + r * cols, bytes.data() + r * row_bytes,
                 static_cast<int64_t>(cols));
  return bytes;
}

}  // namespace

TinyModel make_tiny_model(const TinySpec& s) {
  TinyModel m;
  m.spec = s;
  TinyRandom rng(s.seed);
  const int q_dim = s.n_heads * s.head_dim;
  const int kv_dim = s.n_kv_heads * s.head_dim;
  const bool gemma = s.arch == "gemma3";
  const bool qk_norm = gemma || s.arch == "qwen3";
  auto& t = m.tensors;

  t.push_back(random_matrix(rng, "token_embd.weight", s.weight_type, kTinyVocab, s.d_model));
  t.push_back(random_norm(rng, "output_norm.weight", s.d_model));
  if (!s.tied_output)
    t.push_back(random_matrix(rng, "output.weight", s.weight_type, kTinyVocab, s.d_model));
  if (!s.rope_freq_factors.empty())
    t.push_back({"rope_freqs.weight",
                 GgmlType::F32,
                 {s.rope_freq_factors.size()},
                 s.rope_freq_factors,
                 {}});
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    t.push_back(random_norm(rng, p + "attn_norm.weight", s.d_model));
    t.push_back(random_matrix(rng, p + "attn_q.weight", s.weight_type, q_dim, s.d_model));
    t.push_back(random_matrix(rng, p + "attn_k.weight", s.weight_type, kv_dim, s.d_model));
    t.push_back(random_matrix(rng, p + "attn_v.weight", s.weight_type, kv_dim, s.d_model));
    t.push_back(random_matrix(rng, p + "attn_output.weight", s.weight_type, s.d_model, q_dim));
    if (s.arch == "qwen2") {
      t.push_back(random_bias(rng, p + "attn_q.bias", q_dim));
      t.push_back(random_bias(rng, p + "attn_k.bias", kv_dim));
      t.push_back(random_bias(rng, p + "attn_v.bias", kv_dim));
    }
    if (qk_norm) {
      t.push_back(random_norm(rng, p + "attn_q_norm.weight", s.head_dim));
      t.push_back(random_norm(rng, p + "attn_k_norm.weight", s.head_dim));
    }
    if (gemma) t.push_back(random_norm(rng, p + "post_attention_norm.weight", s.d_model));
    t.push_back(random_norm(rng, p + "ffn_norm.weight", s.d_model));
    t.push_back(random_matrix(rng, p + "ffn_gate.weight", s.weight_type, s.d_ffn, s.d_model));
    t.push_back(random_matrix(rng, p + "ffn_up.weight", s.weight_type, s.d_ffn, s.d_model));
    t.push_back(random_matrix(rng, p + "ffn_down.weight", s.weight_type, s.d_model, s.d_ffn));
    if (gemma) t.push_back(random_norm(rng, p + "post_ffw_norm.weight", s.d_model));
  }
  return m;
}

Status write_tiny_model(const TinyModel& m, const std::string& path, const MetadataEdit& edit) {
  const TinySpec& s = m.spec;
  GgufWriter w;
  const std::string a = s.arch + ".";
  w.set_string("general.architecture", s.arch);
  w.set_string("general.name", "tiny-" + s.arch);
  w.set_u32(a + "block_count", static_cast<uint32_t>(s.n_layers));
  w.set_u32(a + "context_length", static_cast<uint32_t>(s.context_length));
  w.set_u32(a + "embedding_length", static_cast<uint32_t>(s.d_model));
  w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(s.d_ffn));
  w.set_u32(a + "attention.head_count", static_cast<uint32_t>(s.n_heads));
  w.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(s.n_kv_heads));
  if (s.head_dim * s.n_heads != s.d_model) {
    w.set_u32(a + "attention.key_length", static_cast<uint32_t>(s.head_dim));
    w.set_u32(a + "attention.value_length", static_cast<uint32_t>(s.head_dim));
  }
  w.set_f32(a + "attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set_f32(a + "rope.freq_base", s.rope_base);
  if (s.rope_linear_factor > 0) {
    w.set_string(a + "rope.scaling.type", "linear");
    w.set_f32(a + "rope.scaling.factor", s.rope_linear_factor);
  }
  if (s.sliding_window > 0)
    w.set_u32(a + "attention.sliding_window", static_cast<uint32_t>(s.sliding_window));

  const Vocab v = tiny_vocab();
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  w.set_f32_array("tokenizer.ggml.scores", v.scores);
  w.set_i32_array("tokenizer.ggml.token_type", v.types);
  w.set_u32("tokenizer.ggml.unknown_token_id", kTinyUnk);
  w.set_u32("tokenizer.ggml.bos_token_id", kTinyBos);
  w.set_u32("tokenizer.ggml.eos_token_id", kTinyEos);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  // Model::load needs a chat format; a llama without Llama 3's header tokens has it only from
  // its template's markers.
  w.set_string("tokenizer.chat_template",
               s.arch == "gemma3" ? "{{ '<start_of_turn>' }}" : "{{ '<|im_start|>' }}");
  if (edit) edit(w);

  for (const TinyTensor& t : m.tensors) ICAM_TRY(w.add_tensor(t.name, t.type, t.dims, encode(t)));
  return w.write_file(path);
}

std::string temp_model_path(std::string_view stem) {
  static std::atomic<int> counter{0};
  const std::string name = "icam_engine_test_" + std::to_string(getpid()) + "_" +
                           std::to_string(counter++) + "_" + std::string(stem) + ".gguf";
  return (std::filesystem::temp_directory_path() / name).string();
}

namespace {

std::string spec_key(const TinySpec& s) {
  std::string key =
      str_cat(s.arch, '/', ggml_type_name(s.weight_type), '/', s.n_layers, '/', s.d_model, '/',
              s.d_ffn, '/', s.n_heads, '/', s.n_kv_heads, '/', s.head_dim, '/', s.context_length,
              '/', s.rms_eps, '/', s.rope_base, '/', s.rope_linear_factor, '/', s.sliding_window,
              '/', s.tied_output, '/', s.seed);
  for (float f : s.rope_freq_factors) key += str_cat('/', f);
  return key;
}

// Files written by tiny_model_file, removed when the process ends.
struct FileCache {
  std::mutex mutex;
  std::map<std::string, std::string> paths;  // spec key -> file
  ~FileCache() {
    std::error_code ignored;
    for (const auto& [key, path] : paths) std::filesystem::remove(path, ignored);
  }
};

}  // namespace

const std::string& tiny_model_file(const TinySpec& spec) {
  static FileCache cache;
  std::lock_guard lock(cache.mutex);
  const std::string key = spec_key(spec);
  auto it = cache.paths.find(key);
  if (it != cache.paths.end()) return it->second;
  const std::string path = temp_model_path(spec.arch);
  Status written = write_tiny_model(make_tiny_model(spec), path);
  if (!written.ok()) {
    // A writer that cannot write is a broken test environment, not a finding about the engine.
    std::fprintf(stderr, "cannot write %s: %s\n", path.c_str(), written.error().message().c_str());
    std::abort();
  }
  return cache.paths.emplace(key, path).first->second;
}

Result<std::unique_ptr<Model>> load_tiny_model(const TinyModel& m, const MetadataEdit& edit) {
  const std::string path = temp_model_path(m.spec.arch);
  Status written = write_tiny_model(m, path, edit);
  if (!written.ok()) return std::move(written).error();
  auto model = Model::load(path);
  std::error_code ignored;
  std::filesystem::remove(path, ignored);
  return model;
}

}  // namespace icam::llm::testing
