// A Lua 5.4 state for policy scripts, fenced in.
//
// What a script reaches is an allow-list (sandbox.cc): from base assert,
// error, ipairs, next, pairs, pcall, select, tonumber, tostring, type,
// xpcall; string without dump/pack/unpack (strings' methods too), table,
// math (no randomseed), utf8. Nothing else: no load, require, rawset,
// setmetatable, getmetatable, collectgarbage, print, io, os, debug, package,
// coroutine. Text chunks only (no bytecode). Memory: a custom allocator refuses to pass the cap. Time: an
// instruction-count hook ends a call that runs over its budget; once over,
// the hook fires at every instruction, so a script's own pcall can catch the
// error only until control is back in unprotected code, which is at once.
// Errors carry the chunk name and line ("policies/lfu.lua:12: ...").
//
// Thread safety: none; one thread (the agent's loop) owns a Sandbox.
#pragma once

#include <cstdint>
#include <string>

#include "agent/base/status.h"

// Lua's types, without its header (sandbox.cc and runtime.cc include it).
typedef struct lua_State lua_State;
typedef struct lua_Debug lua_Debug;
typedef int (*lua_CFunction)(lua_State* L);

namespace strata::policy {

struct SandboxLimits {
  size_t memory_bytes = 64u << 20;
  uint64_t instructions = 10'000'000;  // per Load() or Call()
};

class Sandbox {
 public:
  explicit Sandbox(SandboxLimits limits = {});
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  lua_State* L() { return L_; }
  // Compiles and runs a text chunk (the body of a policy file).
  Status Run(const std::string& code, const std::string& chunk_name);
  // Calls the function below `nargs` arguments on the stack, budgeted;
  // leaves `nresults` results on success, nothing on failure.
  Status Call(int nargs, int nresults);
  // Calls the C function `fn` with `ud` as its only argument (a light
  // userdata), budgeted and protected: a Lua error anywhere inside,
  // running out of memory included, comes back as the Status. `fn` must
  // keep no C++ object with a destructor in its own frame (errors unwind
  // with longjmp).
  Status CallFunction(lua_CFunction fn, void* ud);
  size_t memory_used() const { return used_; }

  // While a Grace lives, allocations past the memory cap succeed, so a C
  // function of the strata API never meets an out-of-memory error (a
  // longjmp) while its C++ objects are alive. Over() says whether the cap
  // was passed; the caller then raises the error itself, once they are gone.
  class Grace {
   public:
    explicit Grace(lua_State* L);
    ~Grace();
    Grace(const Grace&) = delete;
    Grace& operator=(const Grace&) = delete;
    bool Over() const;
    // The error to raise when Over(): "file:line: policy ran out of memory (limit N MiB)".
    std::string Message() const;

   private:
    Sandbox* sb_;
  };

 private:
  static void* Alloc(void* ud, void* ptr, size_t osize, size_t nsize);
  static void Hook(lua_State* L, lua_Debug* ar);
  Status Protected(int nargs, int nresults);

  SandboxLimits limits_;
  lua_State* L_ = nullptr;
  size_t used_ = 0;
  uint64_t spent_ = 0;  // instructions of the current call, in hook steps
  bool over_ = false;
  int grace_ = 0;             // Graces alive
  bool grace_passed_ = false;  // an allocation under a Grace went past the cap
  char oom_where_[256] = {};  // where the allocation that passed the cap was made
};

}  // namespace strata::policy
