// Fuzz entry point for the GGUF reader. libFuzzer drives it in the gguf_fuzz executable; the
// gguf_fuzz_replay test drives it with deterministic mutations in every build.
//
// Any input must give either an error or a file whose every promise holds: tensors inside the
// image, aligned, and readable from first to last byte; the report built without failing.
#include "tests/drivers/llm/gguf/gguf_fuzz.h"

#include <cstdio>
#include <cstdlib>

#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/gguf/model_info.h"

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "gguf fuzz: broken invariant: %s\n", what);
    std::abort();
  }
}

}  // namespace

namespace icam::llm::testing {

bool fuzz_gguf(std::span<const uint8_t> bytes) {
  auto opened = GgufFile::from_bytes(bytes, "fuzz.gguf");
  if (!opened.ok()) {
    require(!opened.error().message().empty(), "an error has a message");
    return false;
  }
  const GgufFile& file = **opened;

  volatile uint8_t sink = 0;
  for (const GgufTensor& tensor : file.tensors()) {
    require(tensor.n_bytes > 0, "tensors are not empty");
    require(tensor.offset % file.alignment() == 0, "tensor data is aligned");
    require(tensor.offset >= file.data_offset(), "tensor data is in the data section");
    require(tensor.offset + tensor.n_bytes <= file.file_size(), "tensor data is in the file");
    require(file.find_tensor(tensor.name) == &tensor, "tensor names are unique");
    sink = sink ^ tensor.data[0] ^ tensor.data[tensor.n_bytes - 1];
  }

  // Every typed getter on every key: each must answer, with a value or an error.
  for (const GgufMetadataEntry& entry : file.metadata()) {
    require(file.find(entry.key) == &entry.value, "metadata keys are unique");
    (void)file.get_string(entry.key);
    (void)file.get_u32(entry.key);
    (void)file.get_u64(entry.key);
    (void)file.get_int(entry.key);
    (void)file.get_float(entry.key);
    (void)file.get_bool(entry.key);
    (void)file.get_string_array(entry.key);
    (void)file.get_float_array(entry.key);
    (void)file.get_int_array(entry.key);
  }

  auto info = describe_model(file);
  if (info.ok()) {
    const std::string json = model_info_json(*info).dump();  // throws on invalid UTF-8
    const std::string text = model_info_text(*info);
    sink = sink ^ static_cast<uint8_t>(json.size() + text.size());
  }
  (void)sink;
  return true;
}

}  // namespace icam::llm::testing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  icam::llm::testing::fuzz_gguf(std::span<const uint8_t>(data, size));
  return 0;
}
