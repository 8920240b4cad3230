// Fuzz entry point for the driver ABI's framing and parsing. libFuzzer drives it in the
// jsonrpc_fuzz executable; jsonrpc_fuzz_replay drives it with deterministic mutations in every
// build.
#include "tests/drivers/tools/jsonrpc_fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "drivers/sdk/driver.h"
#include "drivers/sdk/line_buffer.h"
#include "drivers/sdk/protocol.h"

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "jsonrpc fuzz: broken invariant: %s\n", what);
    std::abort();
  }
}

constexpr size_t kBound = 4096;

icam::driver::Driver& fuzz_driver() {
  static icam::driver::Driver driver = [] {
    icam::driver::Driver d("fuzz", "1");
    d.tool("echo", "echo", icam::driver::object_schema({{"text", {{"type", "string"}}}}, {"text"}),
           [](const nlohmann::json& args) -> icam::Result<icam::driver::ToolOutput> {
             return icam::driver::ToolOutput::text(ICAM_TRY(icam::driver::string_arg(args, "text")));
           });
    return d;
  }();
  return driver;
}

void check_line(std::string_view line) {
  require(line.size() <= kBound, "a line is within the bound");
  auto message = icam::driver::parse_message(line);
  if (message.ok()) {
    // What parses re-encodes into a line that parses to the same kind, id and method.
    std::string again;
    switch (message->kind) {
      case icam::driver::Message::Kind::request:
        again = icam::driver::encode_request(message->id, message->method, message->params);
        break;
      case icam::driver::Message::Kind::notification:
        again = icam::driver::encode_notification(message->method, message->params);
        break;
      case icam::driver::Message::Kind::response:
        again = icam::driver::encode_result(message->id, message->result);
        break;
      case icam::driver::Message::Kind::error:
        again = icam::driver::encode_error(message->id, message->error_code, message->error_message);
        break;
    }
    require(!again.empty() && again.back() == '\n', "an encoded message is one line");
    require(again.find('\n') == again.size() - 1, "an encoded message has no inner newline");
    auto reparsed = icam::driver::parse_message(std::string_view(again).substr(0, again.size() - 1));
    require(reparsed.ok(), "a re-encoded message parses");
    require(reparsed->kind == message->kind, "the kind survives a round trip");
    require(reparsed->method == message->method, "the method survives a round trip");
  } else {
    require(!message.error().message().empty(), "an error has a message");
  }
  // The driver answers every request with exactly one line, and never throws.
  auto answer = fuzz_driver().handle_line(line);
  if (answer) {
    require(!answer->empty() && answer->back() == '\n', "an answer ends in a newline");
    require(answer->find('\n') == answer->size() - 1, "an answer is one line");
    require(icam::driver::parse_message(std::string_view(*answer).substr(0, answer->size() - 1)).ok(),
            "an answer is valid JSON-RPC");
  }
}

}  // namespace

namespace icam::driver::testing {

void fuzz_jsonrpc(std::span<const uint8_t> bytes) {
  LineBuffer lines(kBound);
  size_t at = 0;
  size_t fed = 0;
  while (at < bytes.size()) {
    // The first byte of each chunk says how many bytes follow in it.
    const size_t length = std::min<size_t>(bytes.size() - at - 1, 1 + bytes[at] * 8u);
    lines.append(std::string_view(reinterpret_cast<const char*>(bytes.data() + at + 1), length));
    fed += length;
    at += 1 + length;
    for (;;) {
      auto line = lines.next_line();
      if (!line.ok()) continue;  // an over-long line is reported once, then skipped
      if (!line->has_value()) break;
      check_line(**line);
    }
    require(lines.pending_bytes() <= kBound + 8u * 256u + 1u, "the buffer stays bounded");
  }
  (void)fed;
}

}  // namespace icam::driver::testing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  icam::driver::testing::fuzz_jsonrpc(std::span<const uint8_t>(data, size));
  return 0;
}
