#include "sandbox/report.h"

namespace icam::sandbox {

std::string_view layer_name(Layer layer) {
  switch (layer) {
    case Layer::user_ns: return "user_ns";
    case Layer::mount_ns: return "mount_ns";
    case Layer::pid_ns: return "pid_ns";
    case Layer::net_ns: return "net_ns";
    case Layer::ipc_ns: return "ipc_ns";
    case Layer::uts_ns: return "uts_ns";
    case Layer::landlock: return "landlock";
    case Layer::seccomp: return "seccomp";
    case Layer::no_new_privs: return "no_new_privs";
    case Layer::rlimits: return "rlimits";
    case Layer::cgroup: return "cgroup";
  }
  return "unknown";
}

const LayerStatus* SandboxReport::find(Layer layer) const {
  for (const LayerStatus& status : layers) {
    if (status.layer == layer) return &status;
  }
  return nullptr;
}

bool SandboxReport::enforced(Layer layer) const {
  const LayerStatus* status = find(layer);
  return status != nullptr && status->enforced;
}

void SandboxReport::set(Layer layer, bool enforced, std::string detail) {
  for (LayerStatus& status : layers) {
    if (status.layer == layer) {
      status.enforced = enforced;
      status.detail = std::move(detail);
      return;
    }
  }
  layers.push_back({layer, enforced, std::move(detail)});
}

std::string SandboxReport::to_text() const {
  std::string text;
  for (const LayerStatus& status : layers) {
    std::string name(layer_name(status.layer));
    name.resize(13, ' ');
    text += name + (status.enforced ? "enforced  " : "missing   ") + status.detail + "\n";
  }
  return text;
}

nlohmann::json SandboxReport::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const LayerStatus& status : layers) {
    out[std::string(layer_name(status.layer))] = {{"enforced", status.enforced},
                                                  {"detail", status.detail}};
  }
  return out;
}

}  // namespace icam::sandbox
