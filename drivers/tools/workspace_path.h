// Resolving a path an agent gives against a driver's workspace. The sandbox already confines the
// driver; this is the driver's own check, so a policy mistake does not become an escape and the
// agent gets a clear "outside the workspace" rather than a bare EACCES.
#pragma once

#include <filesystem>
#include <string>

#include "common/result.h"

namespace icam::tools {

// `workspace` must be canonical. Relative paths are taken from the workspace; absolute paths must
// lie in it. Symlinks and ".." are resolved (for a path that does not exist yet, its existing
// prefix is), and the result must still be inside the workspace.
Result<std::filesystem::path> resolve_in_workspace(const std::filesystem::path& workspace,
                                                   const std::string& path);

}  // namespace icam::tools
