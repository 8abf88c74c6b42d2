// Default locations shared by strata-agent and agentctl, and the helpers for
// the relative paths used everywhere inside the agent.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

namespace strata {

// The control socket: /run/strata/agent.sock for root, else under
// $XDG_RUNTIME_DIR (or /tmp/strata-UID when that is unset).
inline std::string DefaultSocketPath() {
  if (::geteuid() == 0) return "/run/strata/agent.sock";
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) return std::string(xdg) + "/strata/agent.sock";
  return "/tmp/strata-" + std::to_string(::getuid()) + "/agent.sock";
}

// Paths inside the mount (and inside a store) are relative, "" is the root:
// JoinPath("", "a") == "a", JoinPath("a", "b") == "a/b".
inline std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}
// True when `path` is `dir` or lies below it; everything is below "" (the
// root). The one prefix check for paths: "a/bc" is not under "a/b".
inline bool IsUnder(std::string_view path, std::string_view dir) {
  if (dir.empty()) return true;
  return path.size() >= dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         (path.size() == dir.size() || path[dir.size()] == '/');
}
// "a/b/c" -> {"a/b", "c"}; "c" -> {"", "c"}.
inline std::pair<std::string, std::string> SplitPath(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace strata
