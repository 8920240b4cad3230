// Which isolation layers were actually enforced for one driver run, and why a layer was not.
// Every launch returns one; the kernel records it with the run (docs/drivers.md, "Reading the
// report").
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace icam::sandbox {

enum class Layer {
  user_ns,
  mount_ns,
  pid_ns,
  net_ns,
  ipc_ns,
  uts_ns,
  landlock,
  seccomp,
  no_new_privs,
  rlimits,
  cgroup,
};

std::string_view layer_name(Layer layer);

struct LayerStatus {
  Layer layer;
  bool enforced = false;
  std::string detail;  // what was set up, or why not
};

struct SandboxReport {
  std::vector<LayerStatus> layers;

  bool enforced(Layer layer) const;
  const LayerStatus* find(Layer layer) const;
  void set(Layer layer, bool enforced, std::string detail);

  // One line per layer: "landlock     enforced  ABI 7: ...".
  std::string to_text() const;
  // {"user_ns": {"enforced": true, "detail": "..."}, ...}
  nlohmann::json to_json() const;
};

}  // namespace icam::sandbox
