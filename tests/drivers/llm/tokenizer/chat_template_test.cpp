#include "drivers/llm/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "drivers/llm/gguf/gguf_writer.h"
#include "tiny_vocab.h"

namespace icam::llm {
namespace {

std::string render(ChatFamily family, const std::vector<ChatMessage>& messages,
                   bool add_generation_prompt = true) {
  auto text = render_chat(family, messages, add_generation_prompt);
  EXPECT_TRUE(text.ok()) << text.error().message();
  return text.ok() ? *text : std::string();
}

const std::vector<ChatMessage> kConversation = {
    {"system", "You are terse."},
    {"user", "  Hi there \n"},
    {"assistant", "Hello."},
    {"user", "What is 2+2?"},
};

TEST(ChatTemplate, Gemma) {
  EXPECT_EQ(render(ChatFamily::gemma, kConversation),
            "<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(render(ChatFamily::gemma, {{"user", "hi"}}, /*add_generation_prompt=*/false),
            "<start_of_turn>user\nhi<end_of_turn>\n");
  EXPECT_EQ(render(ChatFamily::gemma, {}), "<start_of_turn>model\n");
}

TEST(ChatTemplate, GemmaToolsAndLoneSystem) {
  EXPECT_EQ(render(ChatFamily::gemma, {{"user", "list files"},
                                       {"assistant", "{\"call\":\"ls\"}"},
                                       {"tool", "a.txt\nb.txt\n"}}),
            "<start_of_turn>user\nlist files<end_of_turn>\n"
            "<start_of_turn>model\n{\"call\":\"ls\"}<end_of_turn>\n"
            "<start_of_turn>user\nTool result:\na.txt\nb.txt<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(render(ChatFamily::gemma, {{"system", "Be brief."}}, false),
            "<start_of_turn>user\nBe brief.<end_of_turn>\n");
  EXPECT_EQ(render(ChatFamily::gemma, {{"system", "A."}, {"system", "B."}, {"user", "go"}}, false),
            "<start_of_turn>user\nA.\n\nB.\n\ngo<end_of_turn>\n");
}

TEST(ChatTemplate, ChatMl) {
  EXPECT_EQ(render(ChatFamily::chatml, kConversation),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\n  Hi there \n<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Consecutive tool results share one user turn.
  EXPECT_EQ(
      render(ChatFamily::chatml,
             {{"assistant", "calling"}, {"tool", "r1"}, {"tool", "r2"}, {"user", "ok"}}, false),
      "<|im_start|>assistant\ncalling<|im_end|>\n"
      "<|im_start|>user\n<tool_response>\nr1\n</tool_response>"
      "\n<tool_response>\nr2\n</tool_response><|im_end|>\n"
      "<|im_start|>user\nok<|im_end|>\n");
}

TEST(ChatTemplate, Llama3) {
  EXPECT_EQ(render(ChatFamily::llama3, kConversation),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(ChatFamily::llama3, {{"tool", " 42 "}}, false),
            "<|start_header_id|>ipython<|end_header_id|>\n\n42<|eot_id|>");
}

TEST(ChatTemplate, UnknownRoleIsAnError) {
  for (const ChatFamily family : {ChatFamily::gemma, ChatFamily::chatml, ChatFamily::llama3}) {
    auto text = render_chat(family, std::vector<ChatMessage>{{"user", "a"}, {"robot", "b"}}, true);
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.error().code(), Errc::invalid_argument);
    EXPECT_NE(text.error().message().find("message 1 has role 'robot'"), std::string::npos)
        << text.error().message();
  }
}

TEST(ChatTemplate, FamilyNames) {
  EXPECT_EQ(chat_family_name(ChatFamily::gemma), "gemma");
  EXPECT_EQ(chat_family_name(ChatFamily::chatml), "chatml");
  EXPECT_EQ(chat_family_name(ChatFamily::llama3), "llama3");
}

Result<ChatFamily> detect(const GgufWriter& writer) {
  auto file = testing::open_image(writer);
  if (!file) return make_error(Errc::internal, "could not open the test image");
  return detect_chat_family(*file);
}

TEST(DetectChatFamily, FromTemplateMarkers) {
  GgufWriter writer;
  writer.set_string("general.architecture", "mystery");
  writer.set_string("tokenizer.chat_template", "{% for m in messages %}<|im_start|>...");
  EXPECT_EQ(*detect(writer), ChatFamily::chatml);
  writer.set_string("tokenizer.chat_template", "{{ '<start_of_turn>' + role }}");
  EXPECT_EQ(*detect(writer), ChatFamily::gemma);
  writer.set_string("tokenizer.chat_template", "<|start_header_id|>{{ role }}");
  EXPECT_EQ(*detect(writer), ChatFamily::llama3);
}

TEST(DetectChatFamily, FromArchitectureAndVocabulary) {
  GgufWriter writer;
  writer.set_string("general.architecture", "gemma3");
  EXPECT_EQ(*detect(writer), ChatFamily::gemma);
  writer.set_string("general.architecture", "qwen2");
  EXPECT_EQ(*detect(writer), ChatFamily::chatml);
  writer.set_string("general.architecture", "qwen3");
  EXPECT_EQ(*detect(writer), ChatFamily::chatml);
  writer.set_string("general.architecture", "llama");
  writer.set_string_array("tokenizer.ggml.tokens", {"a", "<|start_header_id|>", "<|eot_id|>"});
  EXPECT_EQ(*detect(writer), ChatFamily::llama3);
}

TEST(DetectChatFamily, UnknownIsUnsupported) {
  GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  writer.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a"});
  auto family = detect(writer);
  ASSERT_FALSE(family.ok());
  EXPECT_EQ(family.error().code(), Errc::unsupported);
  EXPECT_NE(family.error().message().find("'llama'"), std::string::npos);
}

}  // namespace
}  // namespace icam::llm
