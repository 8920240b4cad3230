#include "drivers/llm/gguf/model_info.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <sstream>

namespace icam::llm {
namespace {

// Readable names for the hyper-parameters most architectures share (keys without the prefix).
const std::map<std::string_view, std::string_view>& known_labels() {
  static const std::map<std::string_view, std::string_view> labels = {
      {"context_length", "context length"},
      {"embedding_length", "embedding width"},
      {"block_count", "layers"},
      {"feed_forward_length", "feed-forward width"},
      {"vocab_size", "vocabulary size"},
      {"expert_count", "experts"},
      {"expert_used_count", "experts per token"},
      {"attention.head_count", "attention heads"},
      {"attention.head_count_kv", "key/value heads"},
      {"attention.key_length", "key head size"},
      {"attention.value_length", "value head size"},
      {"attention.layer_norm_rms_epsilon", "RMS norm epsilon"},
      {"attention.layer_norm_epsilon", "layer norm epsilon"},
      {"attention.sliding_window", "sliding window"},
      {"attention.causal", "causal attention"},
      {"attn_logit_softcapping", "attention logit softcap"},
      {"final_logit_softcapping", "final logit softcap"},
      {"rope.freq_base", "RoPE base frequency"},
      {"rope.dimension_count", "RoPE dimensions"},
      {"rope.scaling.type", "RoPE scaling"},
      {"rope.scaling.factor", "RoPE scaling factor"},
      {"rope.scaling.original_context_length", "original context length"},
  };
  return labels;
}

constexpr size_t kArrayHead = 8;  // array elements shown in a summary

// f32 metadata is widened to double on read; print it as the shortest decimal that names the
// same float (1e-06, not 9.99999997e-07).
double shortest_double(double value, GgufType type) {
  if (type != GgufType::f32) return value;
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), static_cast<float>(value));
  if (ec != std::errc()) return value;
  double out = value;
  std::from_chars(buffer, end, out);
  return out;
}

nlohmann::json scalar_json(const GgufValue& value) {
  switch (value.type()) {
    case GgufType::u8:
    case GgufType::u16:
    case GgufType::u32:
    case GgufType::u64:
      return value.as_uint();
    case GgufType::i8:
    case GgufType::i16:
    case GgufType::i32:
    case GgufType::i64:
      return value.as_int();
    case GgufType::f32:
    case GgufType::f64:
      return shortest_double(value.as_float(), value.type());
    case GgufType::boolean:
      return value.as_bool();
    case GgufType::string:
      return sanitize_utf8(value.as_string());
    case GgufType::array:
      break;
  }
  return nullptr;
}

nlohmann::json array_summary(const GgufValue& value) {
  nlohmann::json head = nlohmann::json::array();
  const GgufType element = value.element_type();
  for (size_t i = 0; i < value.size() && i < kArrayHead; ++i) {
    if (element == GgufType::string) {
      head.push_back(sanitize_utf8(value.strings()[i]));
    } else if (element == GgufType::f32 || element == GgufType::f64) {
      head.push_back(shortest_double(value.floats()[i], element));
    } else if (element == GgufType::boolean) {
      head.push_back(value.ints()[i] != 0);
    } else if (element == GgufType::u64) {
      head.push_back(static_cast<uint64_t>(value.ints()[i]));
    } else if (element != GgufType::array) {
      head.push_back(value.ints()[i]);
    }
  }
  return nlohmann::json{{"element_type", std::string(gguf_type_name(element))},
                        {"length", value.size()},
                        {"head", std::move(head)}};
}

// A JSON value as one line of text (strings unquoted, control characters blanked).
std::string value_text(const nlohmann::json& value) {
  if (value.is_string()) {
    std::string text = value.get<std::string>();
    for (char& c : text) {
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    return text;
  }
  if (value.is_object() && value.contains("element_type")) {
    std::string text = str_cat(value["element_type"].get<std::string>(), "[",
                               value["length"].get<uint64_t>(), "]");
    const nlohmann::json& head = value["head"];
    for (size_t i = 0; i < head.size(); ++i) text += (i == 0 ? " " : ", ") + value_text(head[i]);
    if (value["length"].get<uint64_t>() > head.size() && !head.empty()) text += ", ...";
    return text;
  }
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string format_size(uint64_t bytes) {
  char buffer[64];
  const double b = static_cast<double>(bytes);
  if (bytes >= (1ull << 30)) {
    std::snprintf(buffer, sizeof(buffer), "%.2f GiB", b / (1ull << 30));
  } else if (bytes >= (1ull << 20)) {
    std::snprintf(buffer, sizeof(buffer), "%.2f MiB", b / (1ull << 20));
  } else if (bytes >= (1ull << 10)) {
    std::snprintf(buffer, sizeof(buffer), "%.2f KiB", b / (1ull << 10));
  } else {
    return str_cat(bytes, " B");
  }
  return str_cat(buffer, " (", bytes, " bytes)");
}

std::string format_count(uint64_t n) {
  char buffer[64];
  const double x = static_cast<double>(n);
  if (n >= 1'000'000'000) {
    std::snprintf(buffer, sizeof(buffer), "%.2f B", x / 1e9);
  } else if (n >= 1'000'000) {
    std::snprintf(buffer, sizeof(buffer), "%.2f M", x / 1e6);
  } else if (n >= 1'000) {
    std::snprintf(buffer, sizeof(buffer), "%.2f K", x / 1e3);
  } else {
    return std::to_string(n);
  }
  return str_cat(buffer, " (", n, ")");
}

std::string pad(std::string_view text, size_t width) {
  std::string out(text);
  if (out.size() < width) out.append(width - out.size(), ' ');
  return out;
}

std::string pad_left(std::string_view text, size_t width) {
  std::string out;
  if (text.size() < width) out.append(width - text.size(), ' ');
  out.append(text);
  return out;
}

// The optional string at `key`: empty when absent, an error when it is not a string.
Result<std::string> optional_string(const GgufFile& file, std::string_view key) {
  if (file.find(key) == nullptr) return std::string();
  return sanitize_utf8(ICAM_TRY(file.get_string(key)));
}

Result<std::optional<int64_t>> optional_int(const GgufFile& file, std::string_view key) {
  if (file.find(key) == nullptr) return std::optional<int64_t>();
  return std::optional<int64_t>(ICAM_TRY(file.get_int(key)));
}

}  // namespace

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    unsigned char low = 0x80;   // bounds on the second byte, which rule out overlong forms,
    unsigned char high = 0xBF;  // surrogates and code points above U+10FFFF
    if (c < 0x80) {
      length = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    }
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      const unsigned char lo = k == 1 ? low : 0x80;
      const unsigned char hi = k == 1 ? high : 0xBF;
      valid = next >= lo && next <= hi;
    }
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      i += 1;
    }
  }
  return out;
}

Result<ModelInfo> describe_model(const GgufFile& file) {
  ModelInfo info;
  info.path = sanitize_utf8(file.path());
  info.file_size = file.file_size();
  info.gguf_version = file.version();
  info.alignment = file.alignment();
  info.data_offset = file.data_offset();
  info.metadata_count = file.metadata().size();

  const std::string_view architecture = ICAM_TRY(file.get_string("general.architecture"));
  if (architecture.empty()) {
    return make_error(Errc::corrupt, file.path(), ": metadata key 'general.architecture' (offset ",
                      file.find_entry("general.architecture")->offset, "): the value is empty");
  }
  info.architecture = sanitize_utf8(architecture);
  info.name = ICAM_TRY(optional_string(file, "general.name"));

  const std::string prefix = std::string(architecture) + ".";
  for (const GgufMetadataEntry& entry : file.metadata()) {
    if (!entry.key.starts_with(prefix) || entry.key.size() == prefix.size()) continue;
    ModelHyperParameter parameter;
    const std::string_view suffix = entry.key.substr(prefix.size());
    parameter.key = sanitize_utf8(suffix);
    if (const auto it = known_labels().find(suffix); it != known_labels().end()) {
      parameter.label = std::string(it->second);
    }
    parameter.value =
        entry.value.is_array() ? array_summary(entry.value) : scalar_json(entry.value);
    info.hyperparameters.push_back(std::move(parameter));
  }

  info.tokenizer_model = ICAM_TRY(optional_string(file, "tokenizer.ggml.model"));
  info.tokenizer_pre = ICAM_TRY(optional_string(file, "tokenizer.ggml.pre"));
  if (file.find("tokenizer.ggml.tokens") != nullptr) {
    info.vocab_size = ICAM_TRY(file.get_string_array("tokenizer.ggml.tokens")).size();
  }
  info.bos_id = ICAM_TRY(optional_int(file, "tokenizer.ggml.bos_token_id"));
  info.eos_id = ICAM_TRY(optional_int(file, "tokenizer.ggml.eos_token_id"));
  info.has_chat_template = file.find("tokenizer.chat_template") != nullptr;

  std::map<GgmlType, TensorTypeUsage> usage;
  for (const GgufTensor& tensor : file.tensors()) {
    TensorTypeUsage& u = usage[tensor.type];
    u.type = tensor.type;
    u.tensors += 1;
    u.elements += tensor.n_elements;
    u.bytes += tensor.n_bytes;
    info.total_parameters += tensor.n_elements;  // tensors are disjoint within the file, so
    info.total_tensor_bytes += tensor.n_bytes;   // these sums stay below a few times its size
  }
  for (const auto& [type, u] : usage) info.tensor_types.push_back(u);
  std::stable_sort(
      info.tensor_types.begin(), info.tensor_types.end(),
      [](const TensorTypeUsage& a, const TensorTypeUsage& b) { return a.bytes > b.bytes; });
  info.tensor_count = file.tensors().size();
  return info;
}

// JSON keys (stable; scripts depend on them):
//   path, file_size, gguf_version, alignment, data_offset, metadata_count, name, architecture,
//   hyperparameters: {<key without the architecture prefix>: value, ...},
//   tokenizer: {model, pre, vocab_size, bos_id, eos_id, has_chat_template}
//     (model and pre are null when absent, bos_id and eos_id too),
//   tensor_types: [{type, tensors, elements, bytes}, ...] (most bytes first),
//   tensor_count, total_parameters, total_tensor_bytes.
nlohmann::json model_info_json(const ModelInfo& info) {
  auto string_or_null = [](const std::string& s) -> nlohmann::json {
    return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
  };
  auto id_or_null = [](const std::optional<int64_t>& id) -> nlohmann::json {
    return id ? nlohmann::json(*id) : nlohmann::json(nullptr);
  };

  nlohmann::json hyperparameters = nlohmann::json::object();
  for (const ModelHyperParameter& p : info.hyperparameters) hyperparameters[p.key] = p.value;

  nlohmann::json tensor_types = nlohmann::json::array();
  for (const TensorTypeUsage& u : info.tensor_types) {
    tensor_types.push_back({{"type", std::string(ggml_type_name(u.type))},
                            {"tensors", u.tensors},
                            {"elements", u.elements},
                            {"bytes", u.bytes}});
  }

  return nlohmann::json{
      {"path", info.path},
      {"file_size", info.file_size},
      {"gguf_version", info.gguf_version},
      {"alignment", info.alignment},
      {"data_offset", info.data_offset},
      {"metadata_count", info.metadata_count},
      {"name", string_or_null(info.name)},
      {"architecture", info.architecture},
      {"hyperparameters", std::move(hyperparameters)},
      {"tokenizer",
       {{"model", string_or_null(info.tokenizer_model)},
        {"pre", string_or_null(info.tokenizer_pre)},
        {"vocab_size", info.vocab_size},
        {"bos_id", id_or_null(info.bos_id)},
        {"eos_id", id_or_null(info.eos_id)},
        {"has_chat_template", info.has_chat_template}}},
      {"tensor_types", std::move(tensor_types)},
      {"tensor_count", info.tensor_count},
      {"total_parameters", info.total_parameters},
      {"total_tensor_bytes", info.total_tensor_bytes},
  };
}

std::string model_info_text(const ModelInfo& info) {
  constexpr size_t kLabel = 20;
  std::ostringstream out;
  auto line = [&](std::string_view label, const std::string& value) {
    out << pad(label, kLabel) << value << "\n";
  };
  auto or_absent = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  auto id_text = [](const std::optional<int64_t>& id) {
    return id ? std::to_string(*id) : std::string("-");
  };

  line("file", value_text(info.path));
  line("file size", format_size(info.file_size));
  line("gguf version", std::to_string(info.gguf_version));
  line("alignment", std::to_string(info.alignment));
  line("tensor data at", str_cat("offset ", info.data_offset));
  line("metadata entries", std::to_string(info.metadata_count));
  line("name", or_absent(value_text(info.name)));
  line("architecture", value_text(info.architecture));

  out << "\nhyper-parameters (" << value_text(info.architecture) << ".*)\n";
  size_t label_width = 0;
  size_t key_width = 0;
  for (const ModelHyperParameter& p : info.hyperparameters) {
    label_width = std::max(label_width, p.label.size());
    key_width = std::max(key_width, p.key.size());
  }
  for (const ModelHyperParameter& p : info.hyperparameters) {
    out << "  " << pad(p.label.empty() ? "-" : p.label, label_width) << "  "
        << pad(value_text(p.key), key_width) << "  " << value_text(p.value) << "\n";
  }
  if (info.hyperparameters.empty()) out << "  (none)\n";

  out << "\ntokenizer\n";
  line("  model", or_absent(value_text(info.tokenizer_model)));
  line("  pre-tokenizer", or_absent(value_text(info.tokenizer_pre)));
  line("  vocabulary", str_cat(info.vocab_size, " tokens"));
  line("  bos id", id_text(info.bos_id));
  line("  eos id", id_text(info.eos_id));
  line("  chat template", info.has_chat_template ? "present" : "absent");

  out << "\ntensors\n";
  out << "  " << pad("type", 8) << pad_left("count", 8) << pad_left("parameters", 16) << "  "
      << "size\n";
  for (const TensorTypeUsage& u : info.tensor_types) {
    out << "  " << pad(ggml_type_name(u.type), 8) << pad_left(std::to_string(u.tensors), 8)
        << pad_left(std::to_string(u.elements), 16) << "  " << format_size(u.bytes) << "\n";
  }
  out << "  " << pad("total", 8) << pad_left(std::to_string(info.tensor_count), 8)
      << pad_left(std::to_string(info.total_parameters), 16) << "  "
      << format_size(info.total_tensor_bytes) << "\n\n";
  line("parameters", format_count(info.total_parameters));
  line("tensor bytes", format_size(info.total_tensor_bytes));
  return out.str();
}

}  // namespace icam::llm
