#include "memory/archive_syscalls.h"

#include <algorithm>

namespace icam::memory {

using nlohmann::json;

namespace {

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The schema was checked by the dispatcher; these guard against a caller that did not.
Result<std::string> string_argument(const json& arguments, const char* name) {
  if (!arguments.is_object() || !arguments.contains(name) || !arguments[name].is_string())
    return make_error(Errc::invalid_argument, "/arguments/", name, ": expected a string");
  return arguments[name].get<std::string>();
}

}  // namespace

Result<std::string> serve_mem_store(ArchiveStore& archive, std::string_view ns,
                                    const json& arguments) {
  const std::string text = ICAM_TRY(string_argument(arguments, "text"));
  std::vector<std::string> tags;
  if (arguments.contains("tags")) {
    const json& t = arguments["tags"];
    if (!t.is_array())
      return make_error(Errc::invalid_argument, "/arguments/tags: expected an array of strings");
    for (size_t i = 0; i < t.size(); ++i) {
      if (!t[i].is_string())
        return make_error(Errc::invalid_argument, "/arguments/tags/", i, ": expected a string");
      tags.push_back(t[i].get<std::string>());
    }
  }
  const int64_t id = ICAM_TRY(archive.store(ns, text, tags));
  return dump(json{{"id", id}});
}

Result<std::string> serve_mem_recall(ArchiveStore& archive, std::string_view ns,
                                     const json& arguments) {
  const std::string query = ICAM_TRY(string_argument(arguments, "query"));
  int limit = kDefaultRecallLimit;
  if (arguments.contains("limit")) {
    if (!arguments["limit"].is_number_integer())
      return make_error(Errc::invalid_argument, "/arguments/limit: expected an integer");
    const int64_t l = arguments["limit"].get<int64_t>();
    limit = static_cast<int>(std::clamp<int64_t>(l, 0, 1'000'000));
  }
  const auto hits = ICAM_TRY(archive.recall(ns, query, limit));
  json out = json::array();
  for (const auto& h : hits) {
    // Not rounded: in a small archive bm25 scores are all close to zero (FTS5 floors a common
    // word's weight at 1e-6), and rounding would make them equal.
    json hit = {{"id", h.id}, {"text", h.text}, {"score", h.score}};
    if (!h.tags.empty()) hit["tags"] = h.tags;
    out.push_back(std::move(hit));
  }
  return dump(json{{"hits", std::move(out)}});
}

}  // namespace icam::memory
