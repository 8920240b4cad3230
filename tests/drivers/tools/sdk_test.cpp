// The driver ABI's pieces without processes: framing, message parsing, and the SDK's answers.
#include <gtest/gtest.h>

#include "drivers/sdk/driver.h"
#include "drivers/sdk/line_buffer.h"
#include "drivers/sdk/protocol.h"

namespace icam::driver {
namespace {

using nlohmann::json;

TEST(LineBuffer, SplitsChunksIntoLines) {
  LineBuffer lines;
  lines.append("{\"a\":1}\r\n{\"b\"");
  auto first = lines.next_line();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(**first, "{\"a\":1}");
  EXPECT_FALSE(lines.next_line()->has_value());
  lines.append(":2}\n");
  EXPECT_EQ(**lines.next_line(), "{\"b\":2}");
  EXPECT_EQ(lines.pending_bytes(), 0u);
}

TEST(LineBuffer, RefusesAnOverlongLineThenRecovers) {
  LineBuffer lines(8);
  lines.append("0123456789");
  auto line = lines.next_line();
  ASSERT_FALSE(line.ok());
  EXPECT_NE(line.error().message().find("longer than 8"), std::string::npos);
  lines.append("abc\nok\n");  // the rest of the long line, then a good one
  EXPECT_EQ(**lines.next_line(), "ok");
}

TEST(Protocol, ParsesEachKind) {
  auto request = parse_message(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->kind, Message::Kind::request);
  auto note = parse_message(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  EXPECT_EQ(note->kind, Message::Kind::notification);
  auto result = parse_message(R"({"jsonrpc":"2.0","id":"a","result":{}})");
  EXPECT_EQ(result->kind, Message::Kind::response);
  auto error = parse_message(R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}})");
  ASSERT_TRUE(error.ok());
  EXPECT_EQ(error->error_code, -32700);
}

TEST(Protocol, RefusesMalformedMessages) {
  for (const char* line : {"", "garbage", "[]", "42", R"({"id":1,"method":"x"})",
                           R"({"jsonrpc":"2.0","id":1.5,"method":"x"})", R"({"jsonrpc":"2.0","id":1})",
                           R"({"jsonrpc":"2.0","id":1,"result":1,"error":{}})",
                           R"({"jsonrpc":"2.0","method":"x","params":3})",
                           R"({"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}})"}) {
    SCOPED_TRACE(line);
    auto parsed = parse_message(line);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.error().code(), Errc::corrupt);
  }
  EXPECT_FALSE(parse_message(std::string(100, '[') + std::string(100, ']')).ok());
}

TEST(Protocol, EncodesInvalidUtf8AsValidJson) {
  const std::string line = encode_result(1, {{"text", std::string("bad \xff byte")}});
  EXPECT_TRUE(parse_message(line.substr(0, line.size() - 1)).ok());
}

Driver make_driver() {
  Driver driver("test", "1.0");
  driver.tool("echo", "echoes", object_schema({{"text", {{"type", "string"}}}}, {"text"}),
              [](const json& args) -> Result<ToolOutput> { return ToolOutput::text(ICAM_TRY(string_arg(args, "text"))); });
  driver.tool("fail", "fails", object_schema(json::object()),
              [](const json&) -> Result<ToolOutput> { return make_error(Errc::not_found, "nothing here"); });
  driver.tool("throw", "throws", object_schema(json::object()),
              [](const json&) -> Result<ToolOutput> { return ToolOutput::text(json(1).get<std::string>()); });
  return driver;
}

json answer(Driver& driver, const std::string& line) {
  auto out = driver.handle_line(line);
  EXPECT_TRUE(out.has_value()) << line;
  return out ? json::parse(*out) : json();
}

TEST(Driver, AnswersTheHandshakeAndListsTools) {
  Driver driver = make_driver();
  json init = answer(driver, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}})");
  EXPECT_EQ(init["result"]["protocolVersion"], "2025-03-26");
  EXPECT_EQ(init["result"]["serverInfo"]["name"], "test");
  EXPECT_FALSE(driver.handle_line(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").has_value());
  json list = answer(driver, R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
  ASSERT_EQ(list["result"]["tools"].size(), 3u);
  EXPECT_EQ(list["result"]["tools"][0]["inputSchema"]["required"][0], "text");
  EXPECT_EQ(answer(driver, R"({"jsonrpc":"2.0","id":3,"method":"ping"})")["result"], json::object());
}

TEST(Driver, CallsToolsStatelessly) {
  Driver driver = make_driver();
  json call = answer(driver, R"({"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}})");
  EXPECT_EQ(call["id"], "c");
  EXPECT_EQ(call["result"]["content"][0]["text"], "hi");
  EXPECT_EQ(call["result"]["isError"], false);
}

TEST(Driver, ToolFailuresAreResultsAndProtocolMistakesAreErrors) {
  Driver driver = make_driver();
  json failed = answer(driver, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fail"}})");
  EXPECT_EQ(failed["result"]["isError"], true);
  EXPECT_EQ(failed["result"]["content"][0]["text"], "not_found: nothing here");
  json thrown = answer(driver, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"throw"}})");
  EXPECT_EQ(thrown["result"]["isError"], true);
  EXPECT_EQ(answer(driver, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}})")["error"]["code"], kInvalidParams);
  json missing = answer(driver, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}})");
  EXPECT_EQ(missing["error"]["code"], kInvalidParams);
  EXPECT_NE(missing["error"]["message"].get<std::string>().find("missing argument \"text\""), std::string::npos);
  json typed = answer(driver, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":5}}})");
  EXPECT_EQ(typed["error"]["code"], kInvalidParams);
  EXPECT_EQ(answer(driver, R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})")["error"]["code"], kMethodNotFound);
  EXPECT_EQ(answer(driver, "not json")["error"]["code"], kParseError);
}

TEST(Driver, ServesOverPipes) {
  Driver driver = make_driver();
  int in[2], out[2];
  ASSERT_EQ(pipe(in), 0);
  ASSERT_EQ(pipe(out), 0);
  const std::string requests =
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}}})" "\n"
      R"({"jsonrpc":"2.0","method":"notifications/initialized"})" "\n"
      R"({"jsonrpc":"2.0","id":2,"method":"ping"})" "\n";
  ASSERT_EQ(write(in[1], requests.data(), requests.size()), static_cast<ssize_t>(requests.size()));
  close(in[1]);
  EXPECT_EQ(driver.serve(in[0], out[1]), 0);
  close(out[1]);
  char buffer[4096];
  const ssize_t n = read(out[0], buffer, sizeof buffer);
  const std::string answers(buffer, static_cast<size_t>(std::max<ssize_t>(n, 0)));
  EXPECT_EQ(std::count(answers.begin(), answers.end(), '\n'), 2);
  close(in[0]);
  close(out[0]);
}

}  // namespace
}  // namespace icam::driver
