// Default locations shared by strata-agent and agentctl.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace strata {

// The control socket: /run/strata/agent.sock for root, else under
// $XDG_RUNTIME_DIR (or /tmp/strata-UID when that is unset).
inline std::string DefaultSocketPath() {
  if (::geteuid() == 0) return "/run/strata/agent.sock";
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) return std::string(xdg) + "/strata/agent.sock";
  return "/tmp/strata-" + std::to_string(::getuid()) + "/agent.sock";
}

}  // namespace strata
