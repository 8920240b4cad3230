// icam-driver-fs: files in the workspace (its first argument, or its working directory).
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "drivers/sdk/driver.h"
#include "drivers/tools/workspace_path.h"

namespace fs = std::filesystem;
using icam::Errc;
using icam::Result;
using icam::make_error;
using icam::driver::ToolOutput;
using nlohmann::json;

namespace {

constexpr uintmax_t kMaxRead = 512 * 1024;  // a tool answer must fit in one protocol line

fs::path workspace;

Result<fs::path> resolve(const json& args) {
  return icam::tools::resolve_in_workspace(workspace, ICAM_TRY(icam::driver::string_arg(args, "path")));
}

std::string shown(const fs::path& path) { return fs::relative(path, workspace).generic_string(); }

Result<ToolOutput> read_file(const json& args) {
  const fs::path path = ICAM_TRY(resolve(args));
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  if (error) return make_error(Errc::not_found, shown(path), ": ", error.message());
  if (size > kMaxRead) return make_error(Errc::resource_exhausted, shown(path), ": ", size, " bytes, over ", kMaxRead);
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::io, shown(path), ": cannot open");
  return ToolOutput::text(std::string(std::istreambuf_iterator<char>(in), {}));
}

Result<ToolOutput> write_file(const json& args) {
  const fs::path path = ICAM_TRY(resolve(args));
  const std::string content = ICAM_TRY(icam::driver::string_arg(args, "content"));
  if (fs::is_symlink(path)) return make_error(Errc::permission_denied, shown(path), ": is a symlink");
  std::error_code error;
  fs::create_directories(path.parent_path(), error);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out.write(content.data(), static_cast<std::streamsize>(content.size())) || !out.flush()) {
    return make_error(Errc::io, shown(path), ": write failed");
  }
  return ToolOutput::json({{"path", shown(path)}, {"bytes", content.size()}});
}

Result<ToolOutput> list_dir(const json& args) {
  const fs::path path = ICAM_TRY(resolve(args.contains("path") ? args : json{{"path", "."}}));
  std::error_code error;
  json entries = json::array();
  for (const auto& entry : fs::directory_iterator(path, error)) {
    entries.push_back({{"name", entry.path().filename().string()},
                       {"type", entry.is_symlink() ? "symlink" : entry.is_directory() ? "dir" : "file"}});
    if (entries.size() >= 1000) break;
  }
  if (error) return make_error(Errc::not_found, shown(path), ": ", error.message());
  return ToolOutput::json({{"path", shown(path)}, {"entries", entries}});
}

Result<ToolOutput> stat_path(const json& args) {
  const fs::path path = ICAM_TRY(resolve(args));
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return make_error(Errc::not_found, shown(path), ": no such file");
  const char* type = S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "symlink" : S_ISREG(st.st_mode) ? "file" : "other";
  return ToolOutput::json({{"path", shown(path)}, {"type", type}, {"size", st.st_size},
                           {"mode", st.st_mode & 07777}, {"mtime", st.st_mtim.tv_sec}});
}

Result<ToolOutput> remove_path(const json& args) {
  const fs::path path = ICAM_TRY(resolve(args));
  if (path == workspace) return make_error(Errc::permission_denied, "cannot remove the workspace");
  std::error_code error;
  const uintmax_t removed = fs::remove_all(path, error);
  if (error) return make_error(Errc::io, shown(path), ": ", error.message());
  return ToolOutput::json({{"path", shown(path)}, {"removed", removed}});
}

}  // namespace

int main(int argc, char** argv) {
  std::error_code error;
  workspace = fs::canonical(argc > 1 ? fs::path(argv[1]) : fs::current_path(), error);
  if (error) return 2;
  const json path = {{"type", "string"}, {"description", "path relative to the workspace"}};
  icam::driver::Driver driver("icam-driver-fs", "0.1.0");
  driver.tool("read_file", "Read a text file in the workspace", icam::driver::object_schema({{"path", path}}, {"path"}), read_file);
  driver.tool("write_file", "Create or replace a file in the workspace",
              icam::driver::object_schema({{"path", path}, {"content", {{"type", "string"}}}}, {"path", "content"}), write_file);
  driver.tool("list_dir", "List a directory in the workspace", icam::driver::object_schema({{"path", path}}), list_dir);
  driver.tool("stat", "Type, size, mode and modification time of a path", icam::driver::object_schema({{"path", path}}, {"path"}), stat_path);
  driver.tool("remove", "Remove a file or a directory tree in the workspace", icam::driver::object_schema({{"path", path}}, {"path"}), remove_path);
  return driver.serve();
}
