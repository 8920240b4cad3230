// Chat prompt rendering for the model families icam runs.
//
// A chat is rendered to text that still contains control-token texts ("<start_of_turn>",
// "<|im_start|>", "<|eot_id|>"), so it must be encoded with parse_special = true. The BOS token
// is never part of the rendered text, including Llama 3's "<|begin_of_text|>": encode with
// add_bos = tokenizer.add_bos_default() and the tokenizer adds it.
//
// The formats follow each family's official template (the Jinja template in the model's
// tokenizer_config.json), rendered by hand rather than by a template engine:
//   gemma  : "<start_of_turn>user\n" ... "<end_of_turn>\n", the assistant's role is "model",
//            message content is trimmed. Gemma has no system role: system content goes before
//            the first user message of the turn that follows, separated by a blank line
//            ("<start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n"). Gemma 3 has no tool
//            role either: icam renders a tool message as a user turn whose content starts with
//            "Tool result:\n". (Choices beyond the official template: several system messages
//            are joined by blank lines; a system message not followed by a user or tool message
//            becomes a user turn of its own; roles need not alternate.)
//   chatml : "<|im_start|>{role}\n{content}<|im_end|>\n" (Qwen 2, 2.5, 3). Tool messages follow
//            Qwen's template: consecutive tool results share one user turn, each wrapped in
//            "\n<tool_response>\n" ... "\n</tool_response>". No default system prompt is added.
//   llama3 : "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>", content
//            trimmed; tool results use Llama 3.1's role "ipython".
// Trimming removes ASCII whitespace (space, \t, \n, \v, \f, \r) at both ends.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "drivers/llm/gguf/gguf.h"

namespace icam::llm {

enum class ChatFamily { gemma, chatml, llama3 };
std::string_view chat_family_name(ChatFamily family);

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
};

// The chat format of a model: from the markers in tokenizer.chat_template when present
// ("<start_of_turn>" -> gemma, "<|im_start|>" -> chatml, "<|start_header_id|>" -> llama3), else
// from general.architecture (gemma* -> gemma, qwen* -> chatml, llama with a
// "<|start_header_id|>" token -> llama3), else from those marker tokens in the vocabulary.
// Errc::unsupported naming the architecture when none applies.
Result<ChatFamily> detect_chat_family(const GgufFile& file);

// Renders `messages` in the family's format; with add_generation_prompt, ends with the header
// of an assistant turn for the model to complete. An unknown role is Errc::invalid_argument
// naming the message's index and role.
Result<std::string> render_chat(ChatFamily family, std::span<const ChatMessage> messages,
                                bool add_generation_prompt);

}  // namespace icam::llm
