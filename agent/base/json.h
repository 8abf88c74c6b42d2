// JSON text for every answer the agent gives (control API, gateway, policy
// status, agentctl). Strings may carry bytes that are not UTF-8 (a file
// name, a policy's error message): they are written as U+FFFD instead of
// making nlohmann::json throw, which would abort the process.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace strata {

inline std::string JsonText(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace strata
