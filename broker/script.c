/*
 * script.c - the Lua engine of a shard (see script.h for the contract).
 *
 * The sandbox: the libraries are opened into the real globals table G;
 * scripts run with a proxy environment P (empty, a metatable whose
 * __index reads G and raises for a missing name, whose __newindex
 * raises). Library tables are proxied the same way, and every proxy's
 * metatable is protected, so neither setmetatable nor rawset can change
 * them. KEYS and ARGV are written into G before each run.
 *
 * Errors follow Redis 7.0: an error is a table {err=, source=, line=};
 * the message handler turns a string error into {err="ERR " .. msg} and
 * records where the script was, and the reply reads
 * "-<err> script: <sha>, on <source>:<line>.".
 */
#include "script.h"

#include "log.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <lua-bitop.h>
#include <lua-cjson.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_EVERY 10000
#define REG_ENGINE "spool.engine"
#define REG_FUNCS "spool.funcs"
#define REG_PROXIES "spool.proxies"
#define KILLED_MSG "ERR Script killed by user with SCRIPT KILL..."

static struct script_engine *engine_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_ENGINE);
    struct script_engine *e = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return e;
}

/* ------------------------------------------------------------ memory */

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct script_engine *e = ud;
    if (nsize == 0) {
        free(ptr);
        e->mem -= osize;
        return NULL;
    }
    if (e->capped && nsize > osize && e->mem - osize + nsize > e->cap)
        return NULL; /* Lua raises "not enough memory" */
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    e->mem = e->mem - osize + nsize;
    return p;
}

/* ------------------------------------------------------- error tables */

/* Pushes {err = "<CODE> <msg>"} from a reply error text (with or without
 * its '-'), the way Redis's luaPushErrorBuff shapes it. */
static void push_error_table(lua_State *L, const char *text, size_t len)
{
    if (len && text[0] == '-') {
        text++;
        len--;
    }
    while (len && (text[len - 1] == '\r' || text[len - 1] == '\n'))
        len--;
    lua_newtable(L);
    const char *sp = memchr(text, ' ', len);
    if (!sp && len) {
        lua_pushliteral(L, "ERR ");
        lua_pushlstring(L, text, len);
        lua_concat(L, 2);
    } else {
        lua_pushlstring(L, text, len);
    }
    lua_setfield(L, -2, "err");
}

/* Raises a string error without the position prefix (as Redis's C
 * functions do). */
static int raise_plain(lua_State *L, const char *text)
{
    lua_pushstring(L, text);
    return lua_error(L);
}

static int raise_error(lua_State *L, const char *text)
{
    push_error_table(L, text, strlen(text));
    return lua_error(L);
}

/* The message handler: a string error becomes {err="ERR " .. msg}; the
 * script's source and line are recorded (the first Lua frame). */
static int error_handler(lua_State *L)
{
    if (!lua_istable(L, 1)) {
        const char *msg = lua_tostring(L, 1);
        if (!msg)
            msg = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? "true" : "false") : luaL_typename(L, 1);
        lua_newtable(L);
        lua_pushfstring(L, "ERR %s", msg);
        lua_setfield(L, -2, "err");
        lua_replace(L, 1);
    }
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (strcmp(ar.what, "C") != 0) {
            lua_pushstring(L, ar.source);
            lua_setfield(L, 1, "source");
            lua_pushinteger(L, ar.currentline);
            lua_setfield(L, 1, "line");
            break;
        }
    }
    lua_settop(L, 1);
    return 1;
}

/* -------------------------------------------- replies into Lua values */

static void push_value(lua_State *L, const resp_val *v, int resp);

static void push_elements(lua_State *L, const resp_val *v, int resp)
{
    lua_createtable(L, (int)v->n, 0);
    for (size_t i = 0; i < v->n; i++) {
        push_value(L, v->elem[i], resp);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

/* {field = the value on top of the stack}: {ok=..}, {double=..}, {big_number=..}, {map=..}, {set=..} */
static void wrap_in_field(lua_State *L, const char *field)
{
    lua_newtable(L);
    lua_insert(L, -2);
    lua_setfield(L, -2, field);
}

/* A RESP3 map: {map={k=v, ...}}. */
static void push_map(lua_State *L, const resp_val *v, int resp)
{
    lua_createtable(L, 0, (int)(v->n / 2));
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        push_value(L, v->elem[i], resp);
        push_value(L, v->elem[i + 1], resp);
        lua_rawset(L, -3);
    }
    wrap_in_field(L, "map");
}

/* A set: {set={m=true, ...}} under redis.setresp(3), else an array. */
static void push_set(lua_State *L, const resp_val *v, int resp)
{
    if (resp != 3) {
        push_elements(L, v, resp);
        return;
    }
    lua_createtable(L, 0, (int)v->n);
    for (size_t i = 0; i < v->n; i++) {
        push_value(L, v->elem[i], resp);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    wrap_in_field(L, "set");
}

/* Null and booleans as Redis converts them: RESP3 nil and true/false;
 * RESP2 false for null and 1/0 for a boolean. */
static void push_null_or_bool(lua_State *L, const resp_val *v, int resp)
{
    if (v->type == RESP_T_NULL && resp == 3)
        lua_pushnil(L);
    else if (v->type == RESP_T_NULL)
        lua_pushboolean(L, 0);
    else if (resp == 3)
        lua_pushboolean(L, v->integer != 0);
    else
        lua_pushnumber(L, v->integer ? 1 : 0);
}

static void push_value(lua_State *L, const resp_val *v, int resp)
{
    if (!lua_checkstack(L, 4))
        luaL_error(L, "reply nested too deeply");
    switch (v->type) {
    case RESP_T_INT:
        lua_pushnumber(L, (lua_Number)v->integer);
        break;
    case RESP_T_BULK:
        lua_pushlstring(L, v->str, v->len);
        break;
    case RESP_T_SIMPLE:
        lua_pushlstring(L, v->str, v->len);
        wrap_in_field(L, "ok");
        break;
    case RESP_T_ERROR:
        push_error_table(L, v->str, v->len);
        break;
    case RESP_T_NULL:
    case RESP_T_BOOL:
        push_null_or_bool(L, v, resp);
        break;
    case RESP_T_DOUBLE:
        lua_pushnumber(L, v->dbl);
        wrap_in_field(L, "double");
        break;
    case RESP_T_BIGNUM:
        lua_pushlstring(L, v->str, v->len);
        wrap_in_field(L, "big_number");
        break;
    case RESP_T_MAP:
        push_map(L, v, resp);
        break;
    case RESP_T_SET:
        push_set(L, v, resp);
        break;
    default: /* ARRAY, PUSH */
        push_elements(L, v, resp);
    }
}

/* --------------------------------------------------------- redis.call */

static int push_protected(lua_State *L)
{
    push_value(L, lua_touserdata(L, 1), (int)lua_tointeger(L, 2));
    return 1;
}

static void free_args(char **argv, size_t *lens, int n)
{
    for (int i = 0; i < n; i++)
        free(argv[i]);
    free(argv);
    free(lens);
}

/* The call's arguments as strings (numbers rendered with %.17g, as Redis
 * does: an integral 3.0 is "3"); false when one is neither. */
static bool collect_args(lua_State *L, int argc, char ***argvp, size_t **lensp)
{
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    size_t *lens = calloc((size_t)argc + 1, sizeof *lens);
    if (!argv || !lens)
        abort();
    for (int i = 0; i < argc; i++) {
        char num[64];
        const char *p = NULL;
        size_t n = 0;
        if (lua_type(L, i + 1) == LUA_TNUMBER) {
            n = (size_t)snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, i + 1));
            p = num;
        } else if (lua_type(L, i + 1) == LUA_TSTRING) {
            p = lua_tolstring(L, i + 1, &n);
        }
        if (!p) {
            free_args(argv, lens, i);
            return false;
        }
        argv[i] = malloc(n + 1);
        if (!argv[i])
            abort();
        memcpy(argv[i], p, n);
        argv[i][n] = '\0';
        lens[i] = n;
    }
    *argvp = argv;
    *lensp = lens;
    return true;
}

static int do_call(lua_State *L, bool raise)
{
    struct script_engine *e = engine_of(L);
    if (e->killed)
        return raise_error(L, KILLED_MSG);
    int argc = lua_gettop(L);
    if (argc == 0)
        return raise_error(L, "ERR Please specify at least one argument for this redis lib call");
    char **argv;
    size_t *lens;
    if (!collect_args(L, argc, &argv, &lens))
        return raise_error(L, "ERR Lua redis lib command arguments must be strings or integers");
    lua_pushcfunction(L, push_protected); /* before the reply exists: this may raise */
    resp_buf out;
    resp_buf_init(&out);
    e->host.call(e->host.arg, argc, argv, lens, e->resp, e->readonly, &out);
    free_args(argv, lens, argc);
    resp_reader *rd = resp_reader_new(NULL);
    resp_val *v = NULL;
    size_t used = 0;
    int rc = resp_reader_feed(rd, out.data, out.len, &used, &v);
    resp_reader_free(rd);
    resp_buf_free(&out);
    if (rc != RESP_OK) {
        resp_val_free(v);
        return raise_error(L, "ERR the command's reply could not be read back");
    }
    bool failed = v->type == RESP_T_ERROR;
    /* converted under pcall, so that running out of script-memory midway
     * cannot leak the reply */
    lua_pushlightuserdata(L, v);
    lua_pushinteger(L, e->resp);
    int prc = lua_pcall(L, 2, 1, 0);
    resp_val_free(v);
    if (prc != 0 || (failed && raise))
        return lua_error(L);
    return 1;
}

static int l_call(lua_State *L) { return do_call(L, true); }
static int l_pcall(lua_State *L) { return do_call(L, false); }

/* redis.error_reply(msg) */
static int l_error_reply(lua_State *L)
{
    if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING)
        return raise_error(L, "ERR wrong number or type of arguments");
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    if (n && s[0] == '-') {
        push_error_table(L, s, n);
    } else {
        lua_pushliteral(L, "-");
        lua_pushvalue(L, 1);
        lua_concat(L, 2);
        s = lua_tolstring(L, -1, &n);
        push_error_table(L, s, n);
    }
    return 1;
}

/* redis.status_reply(msg) */
static int l_status_reply(lua_State *L)
{
    if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING)
        return raise_error(L, "ERR wrong number or type of arguments");
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "ok");
    return 1;
}

/* redis.sha1hex(string) */
static int l_sha1hex(lua_State *L)
{
    if (lua_gettop(L) != 1)
        return raise_plain(L, "wrong number of arguments");
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    char hex[SHA1_HEX + 1];
    sha1_hex(s ? s : "", s ? n : 0, hex);
    lua_pushstring(L, hex);
    return 1;
}

/* redis.log(level, message ...) */
static int l_log(lua_State *L)
{
    int argc = lua_gettop(L);
    if (argc < 2)
        return raise_plain(L, "redis.log() requires two arguments or more.");
    if (!lua_isnumber(L, 1))
        return raise_plain(L, "First argument must be a number (log level).");
    int level = (int)lua_tonumber(L, 1);
    if (level < 0 || level > 3)
        return raise_plain(L, "Invalid debug level.");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 2; i <= argc; i++) {
        size_t n;
        const char *s = lua_tolstring(L, i, &n);
        if (s) {
            if (i > 2)
                luaL_addchar(&b, ' ');
            luaL_addlstring(&b, s, n);
        }
    }
    luaL_pushresult(&b);
    static const enum log_level map[] = { LOG_DEBUG, LOG_INFO, LOG_INFO, LOG_WARN };
    if (level == 0)
        log_debug("script: %s", lua_tostring(L, -1));
    else
        log_write(map[level], __FILE__, __LINE__, "script", "%s", lua_tostring(L, -1));
    return 0;
}

/* redis.setresp(2|3) */
static int l_setresp(lua_State *L)
{
    if (lua_gettop(L) != 1)
        return raise_error(L, "ERR redis.setresp() requires one argument.");
    int v = (int)lua_tonumber(L, 1);
    if (v != 2 && v != 3)
        return raise_error(L, "ERR RESP version must be 2 or 3.");
    engine_of(L)->resp = v;
    return 0;
}

static int l_true(lua_State *L)
{
    lua_pushboolean(L, 1);
    return 1;
}

static int l_nothing(lua_State *L)
{
    (void)L;
    return 0;
}

/* ------------------------------------------------------------ sandbox */

static int g_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (lua_isnil(L, -1)) {
        const char *k = lua_tostring(L, 2);
        return luaL_error(L, "Script attempted to access nonexistent global variable '%s'", k ? k : "?");
    }
    return 1;
}

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "Attempt to modify a readonly table");
}

/* rawset on a protected proxy would create a field the sandbox does not
 * see coming: refused like any other write. */
static int safe_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_PROXIES);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    if (lua_toboolean(L, -1))
        return raise_plain(L, "Attempt to modify a readonly table");
    lua_pop(L, 2);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static bool is_proxy(lua_State *L, int idx)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_PROXIES);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    bool yes = lua_toboolean(L, -1);
    lua_pop(L, 2);
    return yes;
}

/* setmetatable on a protected table: Redis's readonly error. */
static int safe_setmetatable(lua_State *L)
{
    if (lua_istable(L, 1) && is_proxy(L, 1))
        return raise_plain(L, "Attempt to modify a readonly table");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* pcall as Redis 7 wraps it: an error table comes back as its err
 * string. */
static int redis_pcall(lua_State *L)
{
    int argc = lua_gettop(L);
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    if (lua_pcall(L, argc - 1, LUA_MULTRET, 0) != 0) {
        lua_remove(L, 1);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "err");
            if (lua_isstring(L, -1))
                lua_replace(L, -2);
            else
                lua_pop(L, 1);
        }
        lua_pushboolean(L, 0);
        lua_insert(L, 1);
    }
    return lua_gettop(L);
}

/* Replaces the table at the top with a read-only proxy of it. index_fn:
 * the proxy raises for missing names (the globals). */
static void make_proxy(lua_State *L, bool index_fn)
{
    int real = lua_gettop(L);
    lua_newtable(L);                 /* proxy */
    lua_newtable(L);                 /* its metatable */
    if (index_fn) {
        lua_pushvalue(L, real);
        lua_pushcclosure(L, g_index, 1);
    } else {
        lua_pushvalue(L, real);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_PROXIES);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_replace(L, real);
}

static void open_lib(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    lua_pop(L, 1);
}

static void add_fn(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
}

static void add_redis_table(lua_State *L)
{
    lua_newtable(L);
    add_fn(L, "call", l_call);
    add_fn(L, "pcall", l_pcall);
    add_fn(L, "error_reply", l_error_reply);
    add_fn(L, "status_reply", l_status_reply);
    add_fn(L, "sha1hex", l_sha1hex);
    add_fn(L, "log", l_log);
    add_fn(L, "setresp", l_setresp);
    add_fn(L, "replicate_commands", l_true);
    add_fn(L, "set_repl", l_nothing);
    add_fn(L, "breakpoint", l_nothing);
    add_fn(L, "debug", l_nothing);
    static const char *const levels[] = { "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING" };
    for (int i = 0; i < 4; i++) {
        lua_pushnumber(L, i);
        lua_setfield(L, -2, levels[i]);
    }
    static const char *const repl[] = { "REPL_NONE", "REPL_AOF", "REPL_SLAVE", "REPL_REPLICA", "REPL_ALL" };
    static const int replv[] = { 0, 1, 2, 2, 3 };
    for (int i = 0; i < 5; i++) {
        lua_pushnumber(L, replv[i]);
        lua_setfield(L, -2, repl[i]);
    }
    lua_pushliteral(L, "7.0.0");
    lua_setfield(L, -2, "REDIS_VERSION");
    lua_pushnumber(L, 0x070000);
    lua_setfield(L, -2, "REDIS_VERSION_NUM");
    lua_setglobal(L, "redis");
}

/* The globals scripts may not have, as in Redis (os and io are never
 * opened). */
static const char *const removed[] = {
    "loadfile", "dofile", "require", "module", "package", "setfenv", "getfenv", "debug", "newproxy", NULL,
};

static void set_up_sandbox(lua_State *L)
{
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_PROXIES);
    open_lib(L, "", luaopen_base);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    lua_setglobal(L, "cjson");
    lua_pushcfunction(L, luaopen_bit);
    lua_pushstring(L, "bit");
    lua_call(L, 1, 0); /* registers the global bit */
    add_redis_table(L);
    lua_pushcfunction(L, safe_rawset);
    lua_setglobal(L, "rawset");
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, redis_pcall);
    lua_setglobal(L, "pcall");
    for (int i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    static const char *const libs[] = { "redis", "cjson", "bit", "string", "table", "math", "coroutine", NULL };
    for (int i = 0; libs[i]; i++) {
        lua_getglobal(L, libs[i]);
        make_proxy(L, false);
        lua_setglobal(L, libs[i]);
    }
    /* the scripts' environment: a proxy of the globals, and _G is it */
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    make_proxy(L, true);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "_G");
    lua_setfield(L, LUA_REGISTRYINDEX, "spool.env");
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_FUNCS);
}

int script_init(struct script_engine *e, size_t cap, size_t max_funcs, const struct script_host *host,
                struct script_busy *busy)
{
    memset(e, 0, sizeof *e);
    e->cap = cap;
    e->max_funcs = max_funcs ? max_funcs : 1;
    e->host = *host;
    e->busy = busy;
    e->L = lua_newstate(capped_alloc, e);
    if (!e->L)
        return -ENOMEM;
    lua_pushlightuserdata(e->L, e);
    lua_setfield(e->L, LUA_REGISTRYINDEX, REG_ENGINE);
    set_up_sandbox(e->L);
    e->capped = true;
    return 0;
}

void script_destroy(struct script_engine *e)
{
    if (e->L)
        lua_close(e->L);
    e->L = NULL;
}

/* ------------------------------------------------- compiled functions */

static void drop_functions(struct script_engine *e)
{
    lua_newtable(e->L);
    lua_setfield(e->L, LUA_REGISTRYINDEX, REG_FUNCS);
    e->nfuncs = 0;
    lua_gc(e->L, LUA_GCCOLLECT, 0);
}

void script_sync(struct script_engine *e, uint64_t gen)
{
    if (gen != e->gen) {
        drop_functions(e);
        e->gen = gen;
    }
}

/* Pushes the compiled function sha (or nil). */
static void push_function(lua_State *L, const char *sha)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_FUNCS);
    lua_getfield(L, -1, sha);
    lua_remove(L, -2);
}

bool script_compiled(struct script_engine *e, const char *sha)
{
    push_function(e->L, sha);
    bool yes = lua_isfunction(e->L, -1);
    lua_pop(e->L, 1);
    return yes;
}

int script_compile(struct script_engine *e, const char *sha, const char *body, size_t len, resp_buf *err)
{
    lua_State *L = e->L;
    if (e->nfuncs >= e->max_funcs)
        drop_functions(e);
    int rc = luaL_loadbuffer(L, body, len, "@user_script");
    if (rc != 0) {
        const char *msg = lua_tostring(L, -1);
        if (rc == LUA_ERRMEM)
            resp_add_errorf(err, "ERR Error compiling script: not enough memory (script-memory is %zu bytes)",
                            e->cap);
        else
            resp_add_errorf(err, "ERR Error compiling script (new function): %s", msg ? msg : "?");
        lua_settop(L, 0);
        return -1;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "spool.env");
    lua_setfenv(L, -2);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_FUNCS);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, sha);
    lua_settop(L, 0);
    e->nfuncs++;
    return 0;
}

/* ------------------------------------------------------------ running */

static void kill_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct script_engine *e = engine_of(L);
    if (!e->killed && e->busy->serve)
        e->busy->serve(e->busy->serve_arg); /* the clients of a shared thread (context.h) */
    if (!e->killed && atomic_load(&e->busy->state) != SCRIPT_KILL)
        return;
    if (!e->killed) {
        e->killed = true;
        lua_sethook(L, kill_hook, LUA_MASKLINE | LUA_MASKCOUNT, 1); /* pcall cannot hold it off */
    }
    raise_error(L, KILLED_MSG);
}

bool script_mark_write(struct script_engine *e)
{
    int expect = SCRIPT_CLEAN;
    if (atomic_compare_exchange_strong(&e->busy->state, &expect, SCRIPT_WROTE))
        return true;
    return expect == SCRIPT_WROTE;
}

static void set_array(lua_State *L, const char *name, int from, int to, char **argv, size_t *lens)
{
    lua_createtable(L, to - from, 0);
    for (int i = from; i < to; i++) {
        lua_pushlstring(L, argv[i], lens[i]);
        lua_rawseti(L, -2, i - from + 1);
    }
    lua_setglobal(L, name);
}

static void encode(lua_State *L, resp_buf *out, int proto, int resp, int depth);

/* A field of the table at idx, raw. */
static int field(lua_State *L, int idx, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, idx);
    return lua_type(L, -1);
}

/* {err=}, {ok=}, {double=}, {big_number=}: writes the reply and returns
 * true, or false when t is none of them. */
static bool encode_tagged(lua_State *L, int t, resp_buf *out, int proto)
{
    bool done = true;
    if (field(L, t, "err") == LUA_TSTRING) {
        resp_add_error(out, lua_tostring(L, -1));
    } else if (lua_pop(L, 1), field(L, t, "ok") == LUA_TSTRING) {
        resp_add_simple(out, lua_tostring(L, -1));
    } else if (lua_pop(L, 1), field(L, t, "double") == LUA_TNUMBER) {
        resp_add_double(out, proto, lua_tonumber(L, -1));
    } else if (lua_pop(L, 1), field(L, t, "big_number") == LUA_TSTRING) {
        size_t n;
        const char *p = lua_tolstring(L, -1, &n);
        if (proto == 3)
            resp_buf_printf(out, "(%.*s\r\n", (int)n, p);
        else
            resp_add_bulk(out, p, n);
    } else {
        done = false;
    }
    lua_pop(L, 1);
    return done;
}

/* {map=} or {set=} (the inner table at the top, popped). */
static void encode_map_or_set(lua_State *L, resp_buf *out, int proto, int resp, int depth, bool map)
{
    int m = lua_gettop(L);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, m)) {
        n++;
        lua_pop(L, 1);
    }
    if (map)
        resp_add_map(out, proto, n);
    else
        resp_add_set(out, proto, n);
    lua_pushnil(L);
    while (lua_next(L, m)) {
        lua_pushvalue(L, -2);
        encode(L, out, proto, resp, depth + 1);     /* the key */
        if (map)
            encode(L, out, proto, resp, depth + 1); /* the value */
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* An array: the elements up to the first nil. */
static void encode_array(lua_State *L, int t, resp_buf *out, int proto, int resp, int depth)
{
    size_t n = 0;
    for (;;) {
        lua_rawgeti(L, t, (int)n + 1);
        bool nil = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (nil)
            break;
        n++;
    }
    resp_add_array(out, n);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, t, (int)i + 1);
        encode(L, out, proto, resp, depth + 1);
    }
}

static void encode_table(lua_State *L, resp_buf *out, int proto, int resp, int depth)
{
    int t = lua_gettop(L);
    if (encode_tagged(L, t, out, proto))
        return;
    if (field(L, t, "map") == LUA_TTABLE) {
        encode_map_or_set(L, out, proto, resp, depth, true);
        return;
    }
    lua_pop(L, 1);
    if (field(L, t, "set") == LUA_TTABLE) {
        encode_map_or_set(L, out, proto, resp, depth, false);
        return;
    }
    lua_pop(L, 1);
    encode_array(L, t, out, proto, resp, depth);
}

/* Encodes and pops the value at the top (Redis's Lua-to-reply rules). */
static void encode(lua_State *L, resp_buf *out, int proto, int resp, int depth)
{
    if (depth > 64 || !lua_checkstack(L, 8)) {
        lua_pop(L, 1);
        resp_add_error(out, "ERR reached lua stack limit");
        return;
    }
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        resp_add_bulk(out, s, n);
        break;
    }
    case LUA_TBOOLEAN:
        /* as Redis 7.0: the script's redis.setresp decides, not the client */
        if (resp == 3)
            resp_add_bool(out, proto, lua_toboolean(L, -1));
        else if (lua_toboolean(L, -1))
            resp_add_int(out, 1);
        else
            resp_add_null(out, proto);
        break;
    case LUA_TNUMBER:
        resp_add_int(out, (long long)lua_tonumber(L, -1));
        break;
    case LUA_TTABLE:
        encode_table(L, out, proto, resp, depth);
        break;
    default:
        resp_add_null(out, proto);
    }
    lua_pop(L, 1);
}

static void reply_error(struct script_engine *e, int rc, resp_buf *out)
{
    lua_State *L = e->L;
    if (rc == LUA_ERRMEM) {
        resp_add_errorf(out, "ERR Error running script %s: not enough memory (the Lua state is over script-memory, "
                        "%zu bytes; raise script-memory or make the script hold less)", e->sha, e->cap);
        return;
    }
    if (!lua_istable(L, -1)) {
        const char *msg = lua_tostring(L, -1);
        resp_add_errorf(out, "ERR Error running script %s, %.100s", e->sha, msg ? msg : "execution failure");
        return;
    }
    int t = lua_gettop(L);
    field(L, t, "err");
    field(L, t, "source");
    field(L, t, "line");
    const char *err = lua_tostring(L, -3), *src = lua_tostring(L, -2), *line = lua_tostring(L, -1);
    if (src && line)
        resp_add_errorf(out, "%s script: %s, on %s:%s.", err ? err : "ERR", e->sha, src, line);
    else
        resp_add_error(out, err ? err : "ERR");
}

void script_run(struct script_engine *e, const char *sha, int nkeys, int n, char **argv, size_t *lens,
                int proto, bool readonly, resp_buf *out)
{
    lua_State *L = e->L;
    lua_settop(L, 0);
    lua_pushcfunction(L, error_handler);
    push_function(L, sha);
    if (!lua_isfunction(L, -1)) {
        lua_settop(L, 0);
        resp_add_error(out, "NOSCRIPT No matching script. Please use EVAL.");
        return;
    }
    set_array(L, "KEYS", 0, nkeys, argv, lens);
    set_array(L, "ARGV", nkeys, n, argv, lens);
    e->sha = sha;
    e->readonly = readonly;
    e->resp = 2;
    e->killed = false;
    e->scripts++;
    lua_sethook(L, kill_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int rc = lua_pcall(L, 0, 1, 1);
    lua_sethook(L, NULL, 0, 0);
    if (rc != 0)
        reply_error(e, rc, out);
    else
        encode(L, out, proto, e->resp, 0);
    lua_settop(L, 0);
    e->sha = NULL;
    if (rc == LUA_ERRMEM || e->mem > e->cap / 2)
        lua_gc(L, LUA_GCCOLLECT, 0);
    else
        lua_gc(L, LUA_GCSTEP, 1);
}
