#include "drivers/llm/tokenizer/chat_template.h"

#include <algorithm>
#include <string>
#include <vector>

namespace icam::llm {
namespace {

enum class Role { system, user, assistant, tool };

Result<Role> parse_role(const ChatMessage& message, size_t index) {
  if (message.role == "system") return Role::system;
  if (message.role == "user") return Role::user;
  if (message.role == "assistant") return Role::assistant;
  if (message.role == "tool") return Role::tool;
  return make_error(Errc::invalid_argument, "chat message ", index, " has role '", message.role,
                    "'; the roles are system, user, assistant and tool");
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\n\v\f\r";
  const size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const size_t last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

Result<std::string> render_gemma(std::span<const ChatMessage> messages,
                                 const std::vector<Role>& roles, bool add_generation_prompt) {
  std::string out;
  std::string system;  // system content waiting for the next user turn
  bool has_system = false;
  const auto flush_system_alone = [&] {
    if (!has_system) return;
    out += "<start_of_turn>user\n";
    out += trim(system);
    out += "<end_of_turn>\n";
    system.clear();
    has_system = false;
  };
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string_view content = messages[i].content;
    switch (roles[i]) {
      case Role::system:
        if (has_system) system += "\n\n";
        system += content;
        has_system = true;
        break;
      case Role::user:
      case Role::tool:
        out += "<start_of_turn>user\n";
        if (has_system) {
          out += system;
          out += "\n\n";
          system.clear();
          has_system = false;
        }
        if (roles[i] == Role::tool) out += "Tool result:\n";
        out += trim(content);
        out += "<end_of_turn>\n";
        break;
      case Role::assistant:
        flush_system_alone();
        out += "<start_of_turn>model\n";
        out += trim(content);
        out += "<end_of_turn>\n";
        break;
    }
  }
  flush_system_alone();
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

Result<std::string> render_chatml(std::span<const ChatMessage> messages,
                                  const std::vector<Role>& roles, bool add_generation_prompt) {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& content = messages[i].content;
    if (roles[i] == Role::tool) {
      if (i == 0 || roles[i - 1] != Role::tool) out += "<|im_start|>user";
      out += "\n<tool_response>\n";
      out += content;
      out += "\n</tool_response>";
      if (i + 1 == messages.size() || roles[i + 1] != Role::tool) out += "<|im_end|>\n";
      continue;
    }
    out += "<|im_start|>";
    out += messages[i].role;
    out += "\n";
    out += content;
    out += "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

Result<std::string> render_llama3(std::span<const ChatMessage> messages,
                                  const std::vector<Role>& roles, bool add_generation_prompt) {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    out += "<|start_header_id|>";
    out += roles[i] == Role::tool ? std::string_view("ipython") : messages[i].role;
    out += "<|end_header_id|>\n\n";
    out += trim(messages[i].content);
    out += "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

bool vocabulary_has(const GgufFile& file, std::string_view token) {
  const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
  if (tokens == nullptr || !tokens->is_array()) return false;
  const auto& strings = tokens->strings();
  return std::find(strings.begin(), strings.end(), token) != strings.end();
}

}  // namespace

std::string_view chat_family_name(ChatFamily family) {
  switch (family) {
    case ChatFamily::gemma:
      return "gemma";
    case ChatFamily::chatml:
      return "chatml";
    case ChatFamily::llama3:
      return "llama3";
  }
  return "unknown";
}

Result<ChatFamily> detect_chat_family(const GgufFile& file) {
  if (const GgufValue* value = file.find("tokenizer.chat_template");
      value != nullptr && value->is_string()) {
    const std::string_view text = value->as_string();
    if (text.find("<start_of_turn>") != std::string_view::npos) return ChatFamily::gemma;
    if (text.find("<|im_start|>") != std::string_view::npos) return ChatFamily::chatml;
    if (text.find("<|start_header_id|>") != std::string_view::npos) return ChatFamily::llama3;
  }
  std::string_view arch;
  if (const GgufValue* value = file.find("general.architecture");
      value != nullptr && value->is_string()) {
    arch = value->as_string();
  }
  if (arch.starts_with("gemma")) return ChatFamily::gemma;
  if (arch.starts_with("qwen")) return ChatFamily::chatml;
  if (vocabulary_has(file, "<|start_header_id|>")) return ChatFamily::llama3;
  if (vocabulary_has(file, "<start_of_turn>")) return ChatFamily::gemma;
  if (vocabulary_has(file, "<|im_start|>")) return ChatFamily::chatml;
  return make_error(Errc::unsupported, file.path(), ": no chat format known for architecture '",
                    arch, "' (icam renders gemma, chatml and llama3 chats)");
}

Result<std::string> render_chat(ChatFamily family, std::span<const ChatMessage> messages,
                                bool add_generation_prompt) {
  std::vector<Role> roles;
  roles.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i)
    roles.push_back(ICAM_TRY(parse_role(messages[i], i)));
  switch (family) {
    case ChatFamily::gemma:
      return render_gemma(messages, roles, add_generation_prompt);
    case ChatFamily::chatml:
      return render_chatml(messages, roles, add_generation_prompt);
    case ChatFamily::llama3:
      return render_llama3(messages, roles, add_generation_prompt);
  }
  return make_error(Errc::invalid_argument, "unknown chat family ", static_cast<int>(family));
}

}  // namespace icam::llm
