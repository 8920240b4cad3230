#include "tests/drivers/llm/gguf/gguf_test_util.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "drivers/llm/gguf/gguf_writer.h"

namespace icam::llm::testing {
namespace {

// The seeds are fixed inputs; a writer error here is a bug in the test itself.
void check(const Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "building a test model failed: %s\n", status.error().message().c_str());
    std::abort();
  }
}

std::vector<uint8_t> tensor_bytes(GgmlType type, const std::vector<uint64_t>& dims, uint8_t seed) {
  uint64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
  return pattern_bytes(ggml_row_bytes(type, dims[0]) * rows, seed);
}

void add(GgufWriter& writer, std::string name, GgmlType type, std::vector<uint64_t> dims,
         uint8_t seed) {
  std::vector<uint8_t> bytes = tensor_bytes(type, dims, seed);
  check(writer.add_tensor(std::move(name), type, std::move(dims), std::move(bytes)));
}

}  // namespace

RawGguf::RawGguf(uint32_t version, uint64_t n_tensors, uint64_t n_metadata) {
  data_ = {'G', 'G', 'U', 'F'};
  u32(version).u64(n_tensors).u64(n_metadata);
}

RawGguf& RawGguf::u8(uint8_t v) {
  data_.push_back(v);
  return *this;
}

RawGguf& RawGguf::u32(uint32_t v) {
  for (int i = 0; i < 4; ++i) data_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  return *this;
}

RawGguf& RawGguf::u64(uint64_t v) {
  for (int i = 0; i < 8; ++i) data_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  return *this;
}

RawGguf& RawGguf::f32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return u32(bits);
}

RawGguf& RawGguf::str(std::string_view s) {
  u64(s.size());
  data_.insert(data_.end(), s.begin(), s.end());
  return *this;
}

RawGguf& RawGguf::bytes(const std::vector<uint8_t>& b) {
  data_.insert(data_.end(), b.begin(), b.end());
  return *this;
}

RawGguf& RawGguf::zeros(size_t n) {
  data_.resize(data_.size() + n, 0);
  return *this;
}

RawGguf& RawGguf::pad_to(uint64_t alignment) {
  data_.resize((data_.size() + alignment - 1) / alignment * alignment, 0);
  return *this;
}

RawGguf& RawGguf::tensor_info(std::string_view name, const std::vector<uint64_t>& dims,
                              uint32_t type, uint64_t offset) {
  str(name).u32(static_cast<uint32_t>(dims.size()));
  for (uint64_t d : dims) u64(d);
  return u32(type).u64(offset);
}

std::vector<uint8_t> pattern_bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 31 + seed * 7 + (i >> 8));
  return out;
}

std::vector<uint8_t> tiny_gemma3_model() {
  GgufWriter w;
  w.set_string("general.architecture", "gemma3");
  w.set_string("general.name", "Tiny Gemma 3");
  w.set_u32("general.file_type", 15);
  w.set_u32("gemma3.context_length", 128);
  w.set_u32("gemma3.embedding_length", 256);
  w.set_u32("gemma3.block_count", 1);
  w.set_u32("gemma3.feed_forward_length", 512);
  w.set_u32("gemma3.attention.head_count", 2);
  w.set_u32("gemma3.attention.head_count_kv", 1);
  w.set_u32("gemma3.attention.key_length", 128);
  w.set_u32("gemma3.attention.value_length", 128);
  w.set_f32("gemma3.rope.freq_base", 1000000.0f);
  w.set_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
  w.set_u32("gemma3.attention.sliding_window", 64);
  w.set_i32_array("gemma3.attention.layer_pattern", {1, 1, 0});
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string("tokenizer.ggml.pre", "default");
  std::vector<std::string> tokens = {"<pad>", "<eos>", "<bos>", "<unk>"};
  for (char c = 'a'; tokens.size() < 16; ++c) tokens.push_back(std::string(1, c));
  std::vector<float> scores(tokens.size());
  std::vector<int32_t> token_types(tokens.size(), 1);
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = -static_cast<float>(i);
  token_types[0] = token_types[1] = token_types[2] = token_types[3] = 3;
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", token_types);
  w.set_u32("tokenizer.ggml.bos_token_id", 2);
  w.set_u32("tokenizer.ggml.eos_token_id", 1);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_string("tokenizer.chat_template", "{{ bos_token }}{% for m in messages %}{% endfor %}");

  add(w, "token_embd.weight", GgmlType::Q8_0, {256, 2}, 1);
  add(w, "blk.0.attn_norm.weight", GgmlType::F32, {256}, 2);
  add(w, "blk.0.attn_q.weight", GgmlType::Q4_K, {256, 2}, 3);
  add(w, "blk.0.attn_v.weight", GgmlType::Q6_K, {256, 1}, 4);
  add(w, "blk.0.ffn_down.weight", GgmlType::Q5_0, {64, 2}, 5);
  add(w, "blk.0.ffn_gate.weight", GgmlType::F16, {16, 2}, 6);
  add(w, "output_norm.weight", GgmlType::BF16, {16}, 7);
  return w.serialize();
}

std::vector<uint8_t> every_type_model() {
  GgufWriter w;
  w.set_string("general.architecture", "testarch");
  w.set_u8("testarch.u8", 200);
  w.set_i8("testarch.i8", -100);
  w.set_u16("testarch.u16", 60000);
  w.set_i16("testarch.i16", -30000);
  w.set_u32("testarch.u32", 4000000000u);
  w.set_i32("testarch.i32", -2000000000);
  w.set_u64("testarch.u64", 18000000000000000000ull);
  w.set_i64("testarch.i64", -9000000000000000000ll);
  w.set_f32("testarch.f32", 0.25f);
  w.set_f64("testarch.f64", -1.5e300);
  w.set_bool("testarch.bool", true);
  w.set_string("testarch.string", "h\xC3\xA9llo");
  w.set_string_array("testarch.strings", {"a", "", "ccc"});
  w.set_f32_array("testarch.f32s", {1.0f, -2.5f});
  w.set_f64_array("testarch.f64s", {3.0, 1e-300});
  w.set_i32_array("testarch.i32s", {-1, 0, 7});
  check(w.set_int_array("testarch.u8s", GgufType::u8, {0, 255}));
  check(w.set_int_array("testarch.i8s", GgufType::i8, {-128, 127}));
  check(w.set_int_array("testarch.u16s", GgufType::u16, {65535}));
  check(w.set_int_array("testarch.i16s", GgufType::i16, {-32768}));
  check(w.set_int_array("testarch.u32s", GgufType::u32, {4294967295}));
  check(w.set_int_array("testarch.u64s", GgufType::u64, {1, 9000000000000000000}));
  check(w.set_int_array("testarch.i64s", GgufType::i64, {INT64_MIN, INT64_MAX}));
  check(w.set_int_array("testarch.bools", GgufType::boolean, {1, 0, 1}));
  w.set_string_array("testarch.empty", {});
  // [[1, 2], []] as an array of two i32 arrays.
  RawGguf nested;
  nested.u32(static_cast<uint32_t>(GgufType::array)).u64(2);
  nested.u32(static_cast<uint32_t>(GgufType::i32)).u64(2).u32(1).u32(2);
  nested.u32(static_cast<uint32_t>(GgufType::i32)).u64(0);
  w.set_raw("testarch.nested", static_cast<uint32_t>(GgufType::array), nested.data());

  add(w, "a.f32", GgmlType::F32, {4, 3}, 1);
  add(w, "b.q8_0", GgmlType::Q8_0, {32}, 2);
  add(w, "c.f16", GgmlType::F16, {2, 2, 2, 2}, 3);
  return w.serialize();
}

std::vector<uint8_t> aligned64_model() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  check(w.set_alignment(64));
  w.set_u32("llama.block_count", 1);
  add(w, "x", GgmlType::F32, {3}, 1);
  add(w, "y", GgmlType::Q4_0, {32, 2}, 2);
  return w.serialize();
}

std::vector<uint8_t> minimal_model() {
  GgufWriter w;
  w.set_string("general.architecture", "none");
  return w.serialize();
}

}  // namespace icam::llm::testing
