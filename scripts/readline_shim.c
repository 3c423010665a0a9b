/* readline_shim.c - line editing, history, completion and Ctrl-C for the nnlua REPL.
 *
 * Built by `make` into build/libnnlua_readline.so when the readline headers exist
 * (libreadline-dev; `make READLINE=edit` uses libedit's readline emulation instead, which
 * is experimental: completion and Ctrl-C at the prompt behave less well there).
 * It is optional: lua/nnlua/repl.lua falls back to plain line reading without it.
 *
 * It is a Lua C module (loaded with package.loadlib(path, "luaopen_nnlua_readline")), not an
 * FFI library, for two reasons learned from Torch's trepl:
 *   - tab completion asks Lua for candidates from inside readline(); through the C API that is
 *     an ordinary lua_pcall on the state that called us, whereas an FFI callback (C -> Lua
 *     through ffi.cast) is the fragile "bad callback" pattern trepl abandoned;
 *   - Ctrl-C must stop Lua code. The SIGINT handler sets a one-shot debug hook with
 *     lua_sethook, which LuaJIT allows from a signal handler (its own luajit.c does the same),
 *     and the hook raises the error "interrupted". Code running inside a JIT-compiled trace
 *     only notices when the trace exits, so the handler also calls an optional engine function
 *     (set_interrupt_function, e.g. nl_interrupt) that long C loops can poll.
 * The module links against readline only; the lua_* symbols come from the host luajit.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/types.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#ifdef NLRL_LIBEDIT
#include <editline/readline.h>
#else
#include <readline/readline.h>
#include <readline/history.h>
#endif

/* ---- interrupts ---------------------------------------------------------------------- */

static lua_State *hook_L;                     /* any thread of the host state */
static volatile sig_atomic_t sigint_count;    /* SIGINTs since the last clear */
static volatile sig_atomic_t in_readline;     /* 1 while waiting for input */
static volatile sig_atomic_t armed;           /* 1 while user code runs */
static volatile sig_atomic_t winch_pending;
static void (*volatile engine_interrupt)(void);
static struct sigaction old_int, old_winch;
static int handlers_installed;
static int hook_L_ref = LUA_NOREF;            /* keeps hook_L's thread alive */

/* Remembers L (anchored in the registry) as the state the SIGINT handler hooks. */
static void set_hook_state(lua_State *L) {
  if (hook_L == L) return;
  lua_pushthread(L);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_State *old_ref_holder = hook_L;
  int old_ref = hook_L_ref;
  hook_L = L;
  hook_L_ref = ref;
  if (old_ref_holder && old_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, old_ref);
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted");
}

static void say(const char *s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

static void on_sigint(int sig) {
  (void)sig;
  int saved = errno;
  sigint_count++;
  if (!in_readline) {
    if (engine_interrupt) engine_interrupt();
    if (armed && hook_L) lua_sethook(hook_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    if (armed && sigint_count == 2) {
      say("\n[nnlua] still running (JIT-compiled code or a long C call has not reached a check); "
          "press Ctrl-C once more to quit\n");
    } else if (armed && sigint_count >= 3) {
      say("\n[nnlua] quit\n");
      signal(SIGINT, SIG_DFL);
      raise(SIGINT);
    }
  }
  errno = saved;
}

static void on_sigwinch(int sig) {
  (void)sig;
  winch_pending = 1;
}

/* install_signals(): installs the SIGINT/SIGWINCH handlers (idempotent). */
static int l_install_signals(lua_State *L) {
  if (!handlers_installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;        /* plain reads restart; select() still sees EINTR */
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_int);
    sa.sa_handler = on_sigwinch;
    sigaction(SIGWINCH, &sa, &old_winch);
    handlers_installed = 1;
  }
  set_hook_state(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* restore_signals(): puts the previous handlers back. */
static int l_restore_signals(lua_State *L) {
  if (handlers_installed) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGWINCH, &old_winch, NULL);
    handlers_installed = 0;
  }
  armed = 0;
  lua_sethook(L, NULL, 0, 0);
  return 0;
}

/* arm(on): while armed, Ctrl-C raises "interrupted" in the running Lua code. Arming and
 * disarming clear pending interrupts (and a hook that has not fired yet). */
static int l_arm(lua_State *L) {
  int on = lua_toboolean(L, 1);
  armed = 0;
  lua_sethook(L, NULL, 0, 0);
  sigint_count = 0;
  if (on) { set_hook_state(L); armed = 1; }
  return 0;
}

/* interrupted() -> number of SIGINTs since the last arm/clear. */
static int l_interrupted(lua_State *L) {
  lua_pushinteger(L, sigint_count);
  return 1;
}

/* set_interrupt_function(address | nil): a C function void f(void) called from the SIGINT
 * handler (the engine's nl_interrupt), given as the integer value of its address. */
static int l_set_interrupt_function(lua_State *L) {
  if (lua_isnoneornil(L, 1)) { engine_interrupt = NULL; return 0; }
  lua_Number n = luaL_checknumber(L, 1);
  engine_interrupt = (void (*)(void))(uintptr_t)n;
  return 0;
}

/* ---- completion -------------------------------------------------------------------- */

static lua_State *complete_L;   /* the state inside l_readline, NULL otherwise */
static int completer_ref = LUA_NOREF;

static char *dupstr(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) { memcpy(d, s, n); d[n] = '\0'; }
  return d;
}

/* Asks Lua: completer(text, line, start, stop) -> list of candidates, or false for
 * readline's file name completion (inside a string). */
static char **attempt_completion(const char *text, int start, int end) {
  lua_State *L = complete_L;
  rl_attempted_completion_over = 1;
  if (!L || completer_ref == LUA_NOREF) return NULL;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, completer_ref);
  lua_pushstring(L, text);
  lua_pushstring(L, rl_line_buffer ? rl_line_buffer : "");
  lua_pushinteger(L, start);
  lua_pushinteger(L, end);
  if (lua_pcall(L, 4, 1, 0) != 0) { lua_settop(L, top); return NULL; }
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    lua_settop(L, top);
    rl_attempted_completion_over = 0;   /* file names */
    return NULL;
  }
  if (!lua_istable(L, -1)) { lua_settop(L, top); return NULL; }
  size_t n = lua_objlen(L, -1);
  if (n == 0) { lua_settop(L, top); return NULL; }
  char **m = calloc(n + 2, sizeof(char *));
  if (!m) { lua_settop(L, top); return NULL; }
  size_t k = 0;
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, (int)i);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (s) { char *d = dupstr(s, len); if (d) m[1 + k++] = d; }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  if (k == 0) { free(m); return NULL; }
  /* m[0]: the longest common prefix, which readline substitutes for the word */
  size_t lcp = strlen(m[1]);
  for (size_t i = 2; i <= k; i++) {
    size_t j = 0;
    while (j < lcp && m[i][j] == m[1][j]) j++;
    lcp = j;
  }
  if (k == 1) { m[0] = m[1]; m[1] = NULL; }
  else m[0] = dupstr(m[1], lcp);
#ifndef NLRL_LIBEDIT
  rl_completion_suppress_append = 1;   /* Lua adds '(' or '.' itself */
#endif
  rl_completion_append_character = '\0';
  return m;
}

/* set_completer(fn | nil) */
static int l_set_completer(lua_State *L) {
  if (completer_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, completer_ref);
  completer_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    completer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

/* ---- reading lines ------------------------------------------------------------------ */

static volatile sig_atomic_t line_interrupted;

/* readline's getc: waits with pselect() so that SIGINT (blocked except inside pselect, so
 * none is missed) ends the wait. Ctrl-C is answered with a newline that ends the line, and
 * l_readline then drops that line. SIGWINCH resizes. */
static int shim_getc(FILE *stream) {
  int fd = fileno(stream);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGWINCH);
  sigprocmask(SIG_BLOCK, &block, &old);
  int result;
  for (;;) {
    if (sigint_count) {
      sigint_count = 0;
      line_interrupted = 1;
#ifndef NLRL_LIBEDIT
      rl_point = rl_end;
      rl_redisplay();
#endif
      fputs("^C", rl_outstream ? rl_outstream : stdout);
      fflush(rl_outstream ? rl_outstream : stdout);
      result = '\n';
      break;
    }
    if (winch_pending) {
      winch_pending = 0;
      sigprocmask(SIG_SETMASK, &old, NULL);
      rl_resize_terminal();
      sigprocmask(SIG_BLOCK, &block, NULL);
      continue;
    }
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    sigset_t wait_mask = old;
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGWINCH);
    int r = pselect(fd + 1, &fds, NULL, NULL, NULL, &wait_mask);
    if (r < 0) {
      if (errno == EINTR) continue;
      result = EOF;
      break;
    }
    unsigned char c;
    ssize_t n = read(fd, &c, 1);
    if (n == 1) { result = c; break; }
    if (n < 0 && errno == EINTR) continue;
    result = EOF;
    break;
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  return result;
}

/* readline(prompt) -> line | nil (end of input) | false, "interrupt" (Ctrl-C at the prompt,
 * which abandons the line being typed). */
static int l_readline(lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, "> ");
  line_interrupted = 0;
  sigint_count = 0;
  complete_L = L;
  in_readline = 1;
  char *line = readline(prompt);
  in_readline = 0;
  complete_L = NULL;
  if (line_interrupted) {
    line_interrupted = 0;
    sigint_count = 0;
    free(line);
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "interrupt");
    return 2;
  }
  if (!line) { lua_pushnil(L); return 1; }
  lua_pushstring(L, line);
  free(line);
  return 1;
}

/* ---- history -------------------------------------------------------------------- */

static int l_add_history(lua_State *L) {
  add_history(luaL_checkstring(L, 1));
  return 0;
}

/* read_history(path) -> true | nil, errno text */
static int l_read_history(lua_State *L) {
  int e = read_history(luaL_checkstring(L, 1));
  if (e == 0) { lua_pushboolean(L, 1); return 1; }
  lua_pushnil(L);
  lua_pushstring(L, strerror(e));
  return 2;
}

static int l_write_history(lua_State *L) {
  int e = write_history(luaL_checkstring(L, 1));
  if (e == 0) { lua_pushboolean(L, 1); return 1; }
  lua_pushnil(L);
  lua_pushstring(L, strerror(e));
  return 2;
}

/* append_history(n, path): appends the last n entries to the file (which must exist). */
static int l_append_history(lua_State *L) {
  int n = (int)luaL_checkinteger(L, 1);
  int e = append_history(n, luaL_checkstring(L, 2));
  if (e == 0) { lua_pushboolean(L, 1); return 1; }
  lua_pushnil(L);
  lua_pushstring(L, strerror(e));
  return 2;
}

static int l_truncate_history(lua_State *L) {
  history_truncate_file(luaL_checkstring(L, 1), (int)luaL_checkinteger(L, 2));
  return 0;
}

static int l_stifle_history(lua_State *L) {
  stifle_history((int)luaL_checkinteger(L, 1));
  return 0;
}

/* ---- terminal ------------------------------------------------------------------ */

static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 0)));
  return 1;
}

/* columns() -> width of the terminal on stdout (or stdin), nil if unknown */
static int l_columns(lua_State *L) {
  struct winsize ws;
  if ((ioctl(1, TIOCGWINSZ, &ws) == 0 || ioctl(0, TIOCGWINSZ, &ws) == 0) && ws.ws_col > 0) {
    lua_pushinteger(L, ws.ws_col);
    lua_pushinteger(L, ws.ws_row);
    return 2;
  }
  lua_pushnil(L);
  return 1;
}

static const luaL_Reg funcs[] = {
  { "readline", l_readline },
  { "add_history", l_add_history },
  { "read_history", l_read_history },
  { "write_history", l_write_history },
  { "append_history", l_append_history },
  { "truncate_history", l_truncate_history },
  { "stifle_history", l_stifle_history },
  { "set_completer", l_set_completer },
  { "install_signals", l_install_signals },
  { "restore_signals", l_restore_signals },
  { "arm", l_arm },
  { "interrupted", l_interrupted },
  { "set_interrupt_function", l_set_interrupt_function },
  { "isatty", l_isatty },
  { "columns", l_columns },
  { NULL, NULL }
};

int luaopen_nnlua_readline(lua_State *L) {
  rl_readline_name = "nnlua";               /* for $if nnlua in ~/.inputrc */
  rl_attempted_completion_function = attempt_completion;
  rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{}()[],+-*/%^~#";
  rl_completer_quote_characters = "\"'";
  rl_getc_function = shim_getc;
#ifndef NLRL_LIBEDIT
  rl_catch_signals = 0;                      /* Ctrl-C is ours (see l_readline) */
  rl_catch_sigwinch = 0;
#endif
  lua_newtable(L);
  for (const luaL_Reg *f = funcs; f->name; f++) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, -2, f->name);
  }
#ifdef NLRL_LIBEDIT
  lua_pushliteral(L, "libedit");
#else
  lua_pushstring(L, rl_library_version ? rl_library_version : "readline");
  lua_pushliteral(L, "GNU readline ");
  lua_insert(L, -2);
  lua_concat(L, 2);
#endif
  lua_setfield(L, -2, "library");
  return 1;
}
