// The tokenizer of the real default model (Gemma 3 270M), located only through icam's
// configuration ($ICAM_MODEL, or the default model under $ICAM_HOME); skipped when absent.
// Compares against reference token ids produced by an independent implementation
// (tests/fixtures/gemma3-270m/tokenizer.json), and prints encode throughput (not asserted:
// speed is measured, not tested).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/tokenizer/chat_template.h"
#include "drivers/llm/tokenizer/stream_decoder.h"
#include "drivers/llm/tokenizer/tokenizer.h"
#include "unicode_corpus.h"

namespace icam::llm {
namespace {

using Ids = std::vector<int32_t>;

class Gemma : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto config = load_config();
    if (!config.ok()) {
      skip_reason_ = "configuration does not load: " + config.error().message();
      return;
    }
    const std::string path = config->model;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      skip_reason_ = "real model not found at '" + path +
                     "'; set ICAM_MODEL to a gemma-3-270m-q4_k_m.gguf to run this test";
      return;
    }
    auto file = GgufFile::open(path);
    if (!file.ok()) {
      load_error_ = file.error().message();
      return;
    }
    file_ = std::move(file).value().release();
    auto tokenizer = Tokenizer::from_gguf(*file_);
    if (!tokenizer.ok()) {
      load_error_ = tokenizer.error().message();
      return;
    }
    tokenizer_ = std::move(tokenizer).value().release();
  }

  static void TearDownTestSuite() {
    delete tokenizer_;
    delete file_;
    tokenizer_ = nullptr;
    file_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(load_error_.empty()) << load_error_;
  }

  static Ids encode(std::string_view text, bool add_bos = false, bool parse_special = false) {
    auto ids = tokenizer_->encode(text, add_bos, parse_special);
    EXPECT_TRUE(ids.ok()) << ids.error().message();
    return ids.ok() ? *ids : Ids{};
  }

  static inline std::string skip_reason_;
  static inline std::string load_error_;
  static inline GgufFile* file_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
};

TEST_F(Gemma, Properties) {
  const Tokenizer& t = *tokenizer_;
  EXPECT_EQ(t.kind(), "spm");
  EXPECT_EQ(t.vocab_size(), 262144);
  EXPECT_EQ(t.bos(), 2);
  EXPECT_EQ(t.eos(), 1);
  EXPECT_EQ(t.unk(), 3);
  EXPECT_EQ(t.pad(), 0);
  EXPECT_TRUE(t.add_bos_default());
  EXPECT_FALSE(t.add_eos_default());
  EXPECT_FALSE(t.add_space_prefix());
  EXPECT_EQ(t.find_token("<start_of_turn>"), 105);
  EXPECT_EQ(t.find_token("<end_of_turn>"), 106);
  EXPECT_TRUE(t.is_control(105));
  EXPECT_TRUE(t.is_end_of_generation(1));
  EXPECT_TRUE(t.is_end_of_generation(106));
  EXPECT_FALSE(t.is_end_of_generation(105));
  EXPECT_EQ(t.token_type(107), TokenType::user_defined);
  EXPECT_EQ(t.token_piece(t.find_token("\xE2\x96\x81the")), " the");
  EXPECT_EQ(t.token_piece(238 + 0x41), "A");  // <0x41>
}

// User-defined pieces (runs of newlines, spaces and tabs; HTML tags) are matched whole, longest
// first, even without parse_special; control tokens only with it.
TEST_F(Gemma, UserDefinedAndControlTokens) {
  EXPECT_EQ(encode("\n"), (Ids{107}));
  EXPECT_EQ(encode("\n\n"), (Ids{108}));
  EXPECT_EQ(encode("    "), (Ids{140}));
  EXPECT_EQ(encode(std::string(40, ' ')), (Ids{167, 145}));  // 31 spaces, then 9
  Ids thousand(32, 167);                                     // 32 x 31 spaces, then 8
  thousand.push_back(144);
  EXPECT_EQ(encode(std::string(1000, ' ')), thousand);
  EXPECT_EQ(encode("\t\t"), (Ids{255969}));
  EXPECT_EQ(encode("<table>"), (Ids{168}));
  EXPECT_EQ(encode("<start_of_turn>user\n", false, true),
            (Ids{105, tokenizer_->find_token("user"), 107}));
  const Ids plain = encode("<start_of_turn>");
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tokenizer_->decode(plain), "<start_of_turn>");
  EXPECT_EQ(encode("", /*add_bos=*/true), (Ids{2}));
}

TEST_F(Gemma, InvalidUtf8) {
  auto ids = tokenizer_->encode("ok \xF0\x9F\x98", true, false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.error().code(), Errc::invalid_argument);
  EXPECT_NE(ids.error().message().find("byte offset 3"), std::string::npos);
}

TEST_F(Gemma, RoundTripsTheUnicodeCorpus) {
  size_t checked = 0;
  for (const std::string& text : testing::unicode_corpus()) {
    for (const bool parse_special : {false, true}) {
      const Ids ids = encode(text, /*add_bos=*/true, parse_special);
      ASSERT_FALSE(ids.empty());
      ASSERT_EQ(ids.front(), 2);
      const std::span<const int32_t> body = std::span<const int32_t>(ids).subspan(1);
      EXPECT_EQ(tokenizer_->decode(body), text);
      StreamDecoder stream(*tokenizer_, /*skip_special=*/false);
      std::string streamed;
      for (const int32_t id : body) streamed += stream.feed(id);
      EXPECT_EQ(streamed + stream.finish(), text);
      ++checked;
    }
  }
  std::cout << "[ gemma    ] round trips: " << checked << "\n";
}

TEST_F(Gemma, ChatPrompt) {
  EXPECT_EQ(*detect_chat_family(*file_), ChatFamily::gemma);
  const std::vector<ChatMessage> chat = {{"system", "Be brief."}, {"user", "Hi"}};
  const std::string prompt = *render_chat(ChatFamily::gemma, chat, true);
  const Ids ids = encode(prompt, tokenizer_->add_bos_default(), /*parse_special=*/true);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 105);
  EXPECT_EQ(ids[2], tokenizer_->find_token("user"));
  EXPECT_EQ(ids[3], 107);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 105), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 106), 1);
  EXPECT_EQ(tokenizer_->decode(std::span<const int32_t>(ids).subspan(1)), prompt);
}

// Every case of the reference fixture must match exactly.
TEST_F(Gemma, MatchesReferenceFixture) {
  const std::filesystem::path path =
      std::filesystem::path(ICAM_SOURCE_DIR) / "tests/fixtures/gemma3-270m/tokenizer.json";
  std::ifstream in(path);
  if (!in) GTEST_SKIP() << "reference fixture not found at " << path;
  const nlohmann::json fixture = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  // {"generator": ..., "model_sha256": ..., "n_cases": N, "cases": [...]}, or a bare array.
  const nlohmann::json& cases =
      fixture.is_object() ? fixture.value("cases", nlohmann::json()) : fixture;
  ASSERT_TRUE(cases.is_array()) << path << " holds no array of cases";
  ASSERT_FALSE(cases.empty());
  if (fixture.is_object() && fixture.contains("n_cases")) {
    EXPECT_EQ(fixture["n_cases"].get<size_t>(), cases.size());
  }
  size_t matched = 0;
  size_t index = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const bool add_bos = c.at("add_bos").get<bool>();
    const bool parse_special = c.at("parse_special").get<bool>();
    const Ids expected = c.at("ids").get<Ids>();
    // The reference adds the model's special tokens when asked: BOS when the model wants it.
    const Ids actual = encode(text, add_bos && tokenizer_->add_bos_default(), parse_special);
    if (actual == expected) {
      ++matched;
    } else {
      ADD_FAILURE() << "case " << index << " (add_bos=" << add_bos
                    << ", parse_special=" << parse_special << ") text " << nlohmann::json(text)
                    << "\n  expected " << nlohmann::json(expected) << "\n  actual   "
                    << nlohmann::json(actual);
    }
    ++index;
  }
  std::cout << "[ gemma    ] fixture cases matched: " << matched << " / " << cases.size() << "\n";
  EXPECT_EQ(matched, cases.size());
}

// Ids computed by Google's SentencePiece library from the same vocabulary (see
// make_sentencepiece_reference.py): a second independent reference, kept in this folder.
TEST_F(Gemma, MatchesSentencePieceReference) {
  const std::filesystem::path path =
      std::filesystem::path(ICAM_SOURCE_DIR) /
      "tests/drivers/llm/tokenizer/gemma_sentencepiece_reference.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing " << path;
  const nlohmann::json cases = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(cases.is_array()) << path << " is not a JSON array";
  size_t matched = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const Ids expected = c.at("ids").get<Ids>();
    const Ids actual = encode(text);
    if (actual == expected) {
      ++matched;
    } else {
      ADD_FAILURE() << "text " << nlohmann::json(text) << "\n  expected "
                    << nlohmann::json(expected) << "\n  actual   " << nlohmann::json(actual);
    }
  }
  std::cout << "[ gemma    ] SentencePiece reference cases matched: " << matched << " / "
            << cases.size() << "\n";
  EXPECT_EQ(matched, cases.size());
  EXPECT_GE(cases.size(), 300u);
}

// Throughput on ~2 MB of mixed prose, code, markup and non-Latin text. Printed, not asserted.
TEST_F(Gemma, EncodeThroughput) {
  const std::string sample =
      "The quick brown fox jumps over the lazy dog. In 1969, Apollo 11 landed on the Moon; "
      "it's a well-known fact that \"small steps\" matter.\n\n"
      "int main(int argc, char** argv) {\n    for (int i = 0; i < argc; ++i) {\n"
      "        printf(\"%s\\n\", argv[i]);\n    }\n    return 0;\n}\n"
      "<table><tr><td>cell</td><td>42</td></tr></table>\n"
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE6\x96\x87\xE7\xAB\xA0\xE3\x81\xA8 "
      "\xD0\xA0\xD1\x83\xD1\x81\xD1\x81\xD0\xBA\xD0\xB8\xD0\xB9 "
      "\xD1\x82\xD0\xB5\xD0\xBA\xD1\x81\xD1\x82 "
      "caf\xC3\xA9 \xF0\x9F\x98\x80\n";
  std::string text;
  while (text.size() < 2'000'000) text += sample;

  const auto start = std::chrono::steady_clock::now();
  const Ids ids = encode(text, true, false);
  const auto middle = std::chrono::steady_clock::now();
  const std::string decoded = tokenizer_->decode(std::span<const int32_t>(ids).subspan(1));
  const auto end = std::chrono::steady_clock::now();
  EXPECT_EQ(decoded, text);

  const double encode_s = std::chrono::duration<double>(middle - start).count();
  const double decode_s = std::chrono::duration<double>(end - middle).count();
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::cout << "[ gemma    ] encode " << mb << " MB -> " << ids.size() << " tokens in " << encode_s
            << " s: " << mb / encode_s << " MB/s; decode " << mb / decode_s << " MB/s\n";
  RecordProperty("encode_mb_per_s", std::to_string(mb / encode_s));
}

}  // namespace
}  // namespace icam::llm
