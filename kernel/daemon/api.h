// The daemon's methods: one table that the dispatcher checks against, `icamd --api-markdown`
// prints, and docs/daemon-api.md holds (a test keeps the two equal).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace icam::daemon {

struct MethodDoc {
  std::string_view name;
  std::string_view params;  // named params, "?" marks optional ones
  std::string_view result;
  std::string_view description;
};

const std::vector<MethodDoc>& methods();
bool is_method(std::string_view name);

// The notifications the daemon sends (for streams).
const std::vector<MethodDoc>& notifications();

// The reference section of docs/daemon-api.md: every method and notification.
std::string api_markdown();

}  // namespace icam::daemon
