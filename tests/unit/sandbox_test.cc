// The policy sandbox: forbidden globals are absent, runaway scripts are
// stopped within budget (also inside their own pcall), memory bombs fail,
// errors name file and line, and the state keeps working afterwards.
#include <lua.hpp>
#include <catch2/catch.hpp>
#include <chrono>

#include "agent/policy/sandbox.h"

using strata::policy::Sandbox;
using strata::policy::SandboxLimits;
using strata::Status;

namespace {
SandboxLimits Small() {
  SandboxLimits l;
  l.memory_bytes = 16u << 20;
  l.instructions = 2'000'000;
  return l;
}
}  // namespace

TEST_CASE("forbidden globals are nil, allowed libraries are there", "[unit][sandbox]") {
  Sandbox sb(Small());
  const char* code = R"(
    for _, name in ipairs({"io", "os", "debug", "package", "require", "load", "loadfile", "dofile", "coroutine",
                           "collectgarbage", "rawset", "rawget", "rawequal", "rawlen", "setmetatable",
                           "getmetatable", "print", "loadstring"}) do
      assert(_G[name] == nil, name .. " is reachable")
    end
    assert(string.dump == nil and ("x").dump == nil, "string.dump is reachable")
    assert(math.randomseed == nil, "math.randomseed is reachable")
    assert(("ab"):rep(2) == "abab" and ("%d"):format(7) == "7", "string methods work")
    assert(string.format("%d", 3) == "3" and table.concat({1, 2}, ",") == "1,2")
    assert(math.max(1, 2) == 2 and utf8.char(72) == "H" and type(pcall) == "function")
  )";
  Status s = sb.Run(code, "policies/globals.lua");
  INFO(s.message());
  CHECK(s.ok());
}

TEST_CASE("runaway and hungry scripts are stopped; the state keeps working", "[unit][sandbox]") {
  struct Case {
    const char* code;
    const char* why;
  };
  const Case cases[] = {
      {"while true do end", "budget"},
      {"while true do pcall(function() while true do end end) end", "budget"},
      {"pcall(function() while true do pcall(function() while true do end end) end end) while true do end", "budget"},
      {"local s = string.rep('x', 1 << 30)", "memory"},
      {"local s = 'x' while true do s = s .. s end", "memory"},
      {"local function f() return 1 + f() end f()", "memory"},  // the stack hits the cap first
      {"local t = {} local i = 0 while true do i = i + 1 t[i] = i end", ""},
  };
  Sandbox sb(Small());
  for (const Case& c : cases) {
    INFO(c.code);
    Status s = sb.Run(c.code, "policies/bad.lua");
    INFO(s.message());
    CHECK_FALSE(s.ok());
    CHECK(s.message().find(c.why) != std::string::npos);
    CHECK(sb.memory_used() <= (16u << 20));
    // The same state still runs a well-behaved policy.
    CHECK(sb.Run("local x = 0 for i = 1, 1000 do x = x + i end assert(x == 500500)", "policies/good.lua").ok());
  }
}

TEST_CASE("errors name the file and line; bytecode is refused", "[unit][sandbox]") {
  Sandbox sb(Small());
  Status s = sb.Run("local a = 1\nerror('boom')\n", "policies/lfu.lua");
  CHECK(s.message() == "policies/lfu.lua:2: boom");
  s = sb.Run("local = 1", "policies/syntax.lua");
  CHECK(s.message().find("policies/syntax.lua:1:") == 0);
  s = sb.Run(std::string("\x1bLua", 4), "policies/bin.lua");
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("binary") != std::string::npos);
}

TEST_CASE("calls of script functions are budgeted too", "[unit][sandbox]") {
  Sandbox sb(Small());
  REQUIRE(sb.Run("function spin() while true do end end function add(a, b) return a + b end", "policies/f.lua").ok());
  lua_State* L = sb.L();
  lua_getglobal(L, "spin");
  CHECK_FALSE(sb.Call(0, 0).ok());
  lua_getglobal(L, "add");
  lua_pushinteger(L, 2);
  lua_pushinteger(L, 3);
  REQUIRE(sb.Call(2, 1).ok());
  CHECK(lua_tointeger(L, -1) == 5);
  lua_pop(L, 1);
  CHECK(lua_gettop(L) == 0);
}

namespace {
int g_alive = 0;  // C++ objects of GreedyApi alive
struct Tracked {
  Tracked() { g_alive++; }
  ~Tracked() { g_alive--; }
};
// An API function as the runtime writes them: C++ objects in its frame while
// it pushes values that go past the memory cap.
int GreedyApi(lua_State* L) {
  char msg[256];
  {
    Sandbox::Grace grace(L);
    Tracked t;
    std::string big(4u << 20, 'x');
    lua_pushlstring(L, big.data(), big.size());
    lua_pushlstring(L, big.data(), big.size());
    if (!grace.Over()) return 2;
    std::snprintf(msg, sizeof(msg), "%s", grace.Message().c_str());
  }
  return luaL_error(L, "%s", msg);
}
}  // namespace

TEST_CASE("out of memory inside an API call is raised after its C++ objects are gone", "[unit][sandbox]") {
  SandboxLimits l;
  l.memory_bytes = 6u << 20;
  l.instructions = 2'000'000;
  Sandbox sb(l);
  lua_register(sb.L(), "greedy", GreedyApi);
  Status s = sb.Run("local a, b = greedy()", "policies/greedy.lua");
  INFO(s.message());
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("ran out of memory") != std::string::npos);
  CHECK(g_alive == 0);  // the destructor ran: no longjmp crossed the frame
  // The state keeps working.
  CHECK(sb.Run("local x = 1 + 1", "policies/after.lua").ok());
}
