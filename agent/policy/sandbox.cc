#include "agent/policy/sandbox.h"

#include <lua.hpp>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>

namespace strata::policy {
namespace {
constexpr int kHookStep = 1000;  // instructions between budget checks

// "file:line: " of the innermost running Lua code, "" when none. Allocates
// nothing (it runs inside the allocator).
void WhereInto(lua_State* L, char* out, size_t size) {
  out[0] = '\0';
  lua_Debug ar;
  for (int level = 0; level < 32 && lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
      std::snprintf(out, size, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
}

// What a policy may reach, by name: everything else the libraries define is
// left out (an allow-list, so a name a newer Lua adds stays out too).
constexpr const char* kBase[] = {"assert", "error",  "ipairs",   "next",   "pairs", "pcall", "select",
                                 "tonumber", "tostring", "type", "xpcall", "_VERSION"};
constexpr const char* kString[] = {"byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
                                   "match", "rep", "reverse", "sub", "upper"};  // not dump, pack, unpack
constexpr const char* kTable[] = {"concat", "insert", "move", "remove", "sort", "unpack"};
constexpr const char* kMath[] = {"abs", "ceil", "exp", "floor", "fmod", "huge", "log", "max", "maxinteger",
                                 "min", "mininteger", "modf", "pi", "random", "sqrt", "tointeger", "type", "ult"};
constexpr const char* kUtf8[] = {"char", "charpattern", "codepoint", "codes", "len", "offset"};

// Copies the allowed fields of the table at `from` into the table on top.
template <size_t N>
void CopyFields(lua_State* L, int from, const char* const (&names)[N]) {
  for (const char* n : names) {
    lua_getfield(L, from, n);
    lua_setfield(L, -2, n);
  }
}

// Replaces the globals with a table of the allowed names only, and points
// strings' methods (s:rep()) at the allowed string functions.
void AllowOnly(lua_State* L) {
  lua_pushglobaltable(L);
  const int full = lua_gettop(L);
  lua_newtable(L);  // the new globals
  CopyFields(L, full, kBase);
  struct Lib {
    const char* name;
    const char* const* fields;
    size_t count;
  };
  const Lib libs[] = {{"string", kString, std::size(kString)},
                      {"table", kTable, std::size(kTable)},
                      {"math", kMath, std::size(kMath)},
                      {"utf8", kUtf8, std::size(kUtf8)}};
  for (const Lib& lib : libs) {
    lua_getfield(L, full, lib.name);
    const int src = lua_gettop(L);
    lua_newtable(L);
    for (size_t i = 0; i < lib.count; i++) {
      lua_getfield(L, src, lib.fields[i]);
      lua_setfield(L, -2, lib.fields[i]);
    }
    if (std::string(lib.name) == "string") {
      // The metatable every string shares: its __index is the library.
      lua_pushliteral(L, "");
      if (lua_getmetatable(L, -1)) {
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "__index");
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    lua_setfield(L, -3, lib.name);  // new globals [name] = filtered table
    lua_pop(L, 1);                  // the full library
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "_G");
  lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_pop(L, 1);  // the full globals
  // The loaded-libraries table still holds the full ones: empty it.
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
}

}  // namespace

void* Sandbox::Alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* self = static_cast<Sandbox*>(ud);
  size_t old = ptr != nullptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    self->used_ -= old;
    return nullptr;
  }
  // Lua must be able to free and shrink; growth past the cap fails (an
  // out-of-memory error inside the script).
  if (nsize > old && self->used_ + (nsize - old) > self->limits_.memory_bytes && self->L_ != nullptr) {
    if (self->oom_where_[0] == '\0') WhereInto(self->L_, self->oom_where_, sizeof(self->oom_where_));
    if (self->grace_ == 0) return nullptr;
    self->grace_passed_ = true;  // raised by the Grace's owner once its C++ objects are gone
  }
  void* p = std::realloc(ptr, nsize);
  if (p != nullptr) self->used_ = self->used_ - old + nsize;
  return p;
}

Sandbox::Grace::Grace(lua_State* L) : sb_(nullptr) {
  lua_getallocf(L, reinterpret_cast<void**>(&sb_));
  if (sb_->grace_++ == 0) sb_->grace_passed_ = false;
}

Sandbox::Grace::~Grace() { sb_->grace_--; }

bool Sandbox::Grace::Over() const { return sb_->grace_passed_; }

std::string Sandbox::Grace::Message() const {
  return std::string(sb_->oom_where_) + "policy ran out of memory (limit " +
         std::to_string(sb_->limits_.memory_bytes >> 20) + " MiB)";
}

void Sandbox::Hook(lua_State* L, lua_Debug*) {
  Sandbox* self = nullptr;
  lua_getallocf(L, reinterpret_cast<void**>(&self));
  if (!self->over_) {
    self->spent_ += kHookStep;
    if (self->spent_ < self->limits_.instructions) return;
    self->over_ = true;
    // From now on every instruction fails: a pcall inside the script cannot
    // keep it running.
    lua_sethook(L, Hook, LUA_MASKCOUNT, 1);
  }
  char where[256];
  WhereInto(L, where, sizeof(where));
  luaL_error(L, "%spolicy ran over its budget of %d instructions", where, static_cast<int>(self->limits_.instructions));
}

Sandbox::Sandbox(SandboxLimits limits) : limits_(limits) {
  lua_State* L = lua_newstate(Alloc, this);
  const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},   {LUA_STRLIBNAME, luaopen_string},
                           {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
                           {LUA_UTF8LIBNAME, luaopen_utf8}};
  for (const luaL_Reg& lib : libs) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  AllowOnly(L);
  L_ = L;  // from here on the memory cap applies
}

Sandbox::~Sandbox() {
  if (L_ != nullptr) lua_close(L_);
}

Status Sandbox::Protected(int nargs, int nresults) {
  spent_ = 0;
  over_ = false;
  oom_where_[0] = '\0';
  lua_sethook(L_, Hook, LUA_MASKCOUNT, kHookStep);
  int rc = lua_pcall(L_, nargs, nresults, 0);
  lua_sethook(L_, nullptr, 0, 0);
  if (rc == LUA_OK) return Status::OK();
  std::string msg = lua_type(L_, -1) == LUA_TSTRING ? lua_tostring(L_, -1) : "error object is not a string";
  lua_pop(L_, 1);
  if (rc == LUA_ERRMEM)
    msg = std::string(oom_where_) + "policy ran out of memory (limit " + std::to_string(limits_.memory_bytes >> 20) + " MiB)";
  if (over_ && msg.find("budget") == std::string::npos) msg += " (after running over its instruction budget)";
  lua_gc(L_, LUA_GCCOLLECT);
  return Status::InvalidArgument(msg);
}

Status Sandbox::Run(const std::string& code, const std::string& chunk_name) {
  int rc = luaL_loadbufferx(L_, code.data(), code.size(), ("@" + chunk_name).c_str(), "t");
  if (rc != LUA_OK) {
    std::string msg = lua_tostring(L_, -1);
    lua_pop(L_, 1);
    return Status::InvalidArgument(msg);
  }
  return Protected(0, 0);
}

Status Sandbox::Call(int nargs, int nresults) { return Protected(nargs, nresults); }

Status Sandbox::CallFunction(lua_CFunction fn, void* ud) {
  // Pushing a C function and a light userdata allocates nothing.
  lua_pushcfunction(L_, fn);
  lua_pushlightuserdata(L_, ud);
  return Protected(1, 0);
}

}  // namespace strata::policy
