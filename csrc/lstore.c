/* msal.core.store: the Lua face of the token store (store.c). Entries go in
 * and out as tables of strings; the store keeps them as MSAL's JSON. */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "core.h"
#include "json.h"
#include "store.h"

#define STORE_MT "msal.store"
#define BUF_MT "msal.store.buffer" /* a buffer a raised error must not leak */

typedef struct lstore {
    store *s; /* NULL once closed */
} lstore;

static store *check_store(lua_State *L)
{
    lstore *ls = luaL_checkudata(L, 1, STORE_MT);
    if (ls->s == NULL)
        luaL_error(L, "token store is closed");
    return ls->s;
}

static int check_section(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    int i;
    for (i = 0; i < NSEC; i++)
        if (strcmp(name, store_section_names[i]) == 0)
            return i;
    return luaL_argerror(L, idx, lua_pushfstring(L, "unknown cache section '%s'", name));
}

/* nil plus {message, section, key, field, offset}: the Lua side turns it
 * into a ClientAuthError that names the entry and field. */
static int push_error(lua_State *L, const store_error *e)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, e->message ? e->message : "invalid cache");
    lua_setfield(L, -2, "message");
    if (e->section >= 0) {
        lua_pushstring(L, store_section_names[e->section]);
        lua_setfield(L, -2, "section");
    }
    if (e->field) {
        lua_pushstring(L, e->field);
        lua_setfield(L, -2, "field");
    }
    if (e->key.n) {
        lua_pushlstring(L, e->key.p, e->key.n);
        lua_setfield(L, -2, "key");
    }
    if (e->section < 0 && e->field == NULL) {
        lua_pushinteger(L, (lua_Integer)e->offset);
        lua_setfield(L, -2, "offset");
    }
    return 2;
}

/***
 * An empty token store.
 * @function new
 * @treturn userdata the store: `load`, `serialize`, `write_file`, `get`,
 *   `put`, `remove`, `find`, `find_first`, `find_access_token`, `accounts`,
 *   `account`, `account_tenants`, `count`, `generation`, `home_generation`,
 *   `section`, `set_section`, `set_aliases`, `close`
 */
static int l_new(lua_State *L)
{
    lstore *ls = lua_newuserdata(L, sizeof *ls);
    ls->s = NULL;
    luaL_setmetatable(L, STORE_MT);
    if ((ls->s = store_new()) == NULL)
        return luaL_error(L, "out of memory");
    return 1;
}

/* The store's entries point into the document strings they were parsed
 * from; the registry keeps those strings alive until none does. */
static void unpin(void *ud, store_doc *d)
{
    luaL_unref((lua_State *)ud, LUA_REGISTRYINDEX, d->ref);
}

static void release_docs(lua_State *L, store *s)
{
    store_release_docs(s, unpin, L);
}

static void free_store(lua_State *L, store *s)
{
    store_doc *d;
    if (s == NULL)
        return;
    for (d = s->docs; d; d = d->next)
        unpin(L, d);
    store_free(s); /* frees the entries, then the documents */
}

/***
 * Frees the entries; calling it again does nothing (also __gc, __close).
 * @function store:close
 */
static int l_close(lua_State *L)
{
    lstore *ls = luaL_checkudata(L, 1, STORE_MT);
    free_store(L, ls->s);
    ls->s = NULL;
    return 0;
}

/***
 * Replaces the whole content with a parsed cache document, or leaves it
 * as it was.
 * @function store:load
 * @tparam string|userdata json MSAL's unified cache format: a string, or
 * the bytes of fileio.read(path, "bytes"), which the store then keeps
 * @treturn true
 * @return or nil, `{message, section, key, field, offset}`
 */
static int l_load(lua_State *L)
{
    lstore *ls = luaL_checkudata(L, 1, STORE_MT);
    size_t n;
    const char *text = msal_check_text(L, 2, &n);
    store_error err;
    store *fresh;
    store_doc *doc;
    uint64_t gen, agen;
    check_store(L);
    store_error_init(&err);
    fresh = store_parse(text, n, ls->s, &err, &doc);
    if (fresh == NULL) {
        push_error(L, &err);
        store_error_free(&err);
        return 2;
    }
    if (doc) {
        lua_pushvalue(L, 2);
        doc->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    gen = ls->s->generation;
    agen = ls->s->account_generation;
    free_store(L, ls->s);
    ls->s = fresh;
    fresh->generation = gen + 1;
    fresh->load_generation = gen + 1;
    fresh->account_generation = agen + 1;
    lua_pushboolean(L, 1);
    return 1;
}

static int l_buf_gc(lua_State *L)
{
    buf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

/* A buffer owned by a new userdata on the stack, so that an error raised
 * while it is filled cannot leak it. */
static msal_buf *new_buffer(lua_State *L)
{
    msal_buf *b = lua_newuserdata(L, sizeof *b);
    buf_init(b);
    luaL_setmetatable(L, BUF_MT);
    return b;
}

/***
 * @function store:serialize
 * @treturn string the cache document, MSAL's unified JSON
 */
static int l_serialize(lua_State *L)
{
    store *s = check_store(L);
    msal_buf *out = new_buffer(L);
    if (!store_serialize(s, out))
        return luaL_error(L, "out of memory");
    msal_before_big_string(L, out->n);
    lua_pushlstring(L, out->p ? out->p : "", out->n);
    buf_free(out); /* now, not at the next collection: the next call reuses it */
    return 1;
}

/***
 * Writes the cache document to path atomically (fileio.write_atomic) without
 * making it a Lua string: for a 100 MB cache that copy alone costs more than
 * building the document.
 * @function write_file
 * @tparam string path
 * @tparam[opt=0600] integer mode
 * @treturn true
 * @return or nil, message, errno name
 */
static int l_write_file(lua_State *L)
{
    store *s = check_store(L);
    msal_buf *out;
    int nret;
    luaL_checklstring(L, 2, NULL);
    lua_settop(L, 3); /* path, mode: the buffer goes above them */
    out = new_buffer(L);
    if (!store_serialize(s, out))
        return luaL_error(L, "out of memory");
    nret = msal_write_atomic(L, 2, out->p ? out->p : "", out->n, 3);
    buf_free(out); /* now, not at the next collection: the next call reuses it */
    return nret;
}

static void push_field(lua_State *L, const store_entry *e, int field)
{
    size_t n;
    const char *v = store_value(e, field, &n);
    if (v)
        lua_pushlstring(L, v, n);
    else
        lua_pushnil(L);
}

/* Pushes a JSON value from an entry's raw text as Lua: strings, arrays of
 * strings and objects of strings; anything else stays only in the raw. */
static int push_json(lua_State *L, json_scan *js, msal_buf *tmp, int depth)
{
    int c = json_next(js);
    if (c == '"') {
        const char *in;
        size_t n;
        int esc;
        json_string(js, &in, &n, &esc);
        if (esc) {
            tmp->n = 0;
            json_unescape(in, n, tmp);
            lua_pushlstring(L, tmp->p ? tmp->p : "", tmp->n);
        } else {
            lua_pushlstring(L, in, n);
        }
        return 1;
    }
    if ((c == '[' || c == '{') && depth < 4) {
        int i = 0, obj = c == '{';
        js->p++;
        lua_newtable(L);
        while (json_next(js) != (obj ? '}' : ']')) {
            if (json_next(js) == ',')
                js->p++;
            if (obj) {
                push_json(L, js, tmp, depth + 1);
                json_expect(js, ':');
            }
            if (push_json(L, js, tmp, depth + 1)) {
                if (obj)
                    lua_rawset(L, -3);
                else
                    lua_rawseti(L, -2, ++i);
            } else if (obj) {
                lua_pop(L, 1);
            }
        }
        js->p++;
        return 1;
    }
    json_copy_value(js, NULL, depth);
    return 0;
}

/* Steps over a stored object's next member name and its ':' (js is just
 * past the '{' or past the previous value): *name, *nn and *esc as
 * json_string gives them. 0 at the closing '}'. Stored entries were
 * checked when they were stored, so this does not check again. */
static int next_member(json_scan *js, const char **name, size_t *nn, int *esc)
{
    if (json_next(js) == '}')
        return 0;
    if (json_next(js) == ',')
        js->p++;
    json_next(js);
    json_string(js, name, nn, esc);
    json_expect(js, ':');
    return 1;
}

static void push_entry(lua_State *L, const store_entry *e)
{
    json_scan js;
    msal_buf tmp;
    buf_init(&tmp);
    json_init(&js, e->raw, e->raw_len);
    lua_newtable(L);
    js.p++;
    while (json_next(&js) != '}') {
        if (json_next(&js) == ',')
            js.p++;
        push_json(L, &js, &tmp, 1); /* the member name */
        json_expect(&js, ':');
        if (push_json(L, &js, &tmp, 1))
            lua_rawset(L, -3);
        else
            lua_pop(L, 1);
    }
    buf_free(&tmp);
}

/* The entry the arguments name: (section, key), or (key) of section sec
 * when sec >= 0. NULL when there is none. */
static store_entry *arg_entry(lua_State *L, store **s, int sec)
{
    int k = 2;
    size_t kn;
    const char *key;
    *s = check_store(L);
    if (sec < 0)
        sec = check_section(L, k++);
    key = luaL_checklstring(L, k, &kn);
    return store_get(*s, sec, key, kn);
}

/***
 * @function store:get
 * @tparam string section "AccessToken", "RefreshToken", "IdToken", "Account"
 *   or "AppMetadata"
 * @tparam string key
 * @treturn table the entry's fields, or nothing when there is none
 */
static int l_get(lua_State *L)
{
    store *s;
    store_entry *e = arg_entry(L, &s, -1);
    if (e == NULL)
        return 0;
    push_entry(L, e);
    return 1;
}

/***
 * @function store:remove
 * @tparam string section
 * @tparam string key
 * @treturn boolean whether there was such an entry
 */
static int l_remove(lua_State *L)
{
    store *s;
    store_entry *e = arg_entry(L, &s, -1);
    if (e) {
        store_remove(s, e);
        release_docs(L, s);
    }
    lua_pushboolean(L, e != NULL);
    return 1;
}

/* Field order of new entries: msal-node's, so files written here diff
 * cleanly against files it writes. */
static const int put_order[] = {
    F_HID, F_ENV, F_CRED_TYPE, F_CLIENT_ID, F_SECRET, F_REALM, F_TARGET, F_CACHED_AT, F_EXPIRES_ON,
    F_EXT_EXPIRES_ON, F_REFRESH_ON, F_TOKEN_TYPE, F_FAMILY_ID, F_LOCAL_ID, F_USERNAME, F_AUTHORITY_TYPE,
    F_NAME, F_CLIENT_INFO, F_KEY_ID, F_LAST_MOD_TIME, F_LAST_MOD_APP, F_USER_ASSERTION_HASH, F_RESOURCE,
    F_ACCOUNT_SOURCE,
};

/* Appends the Lua value at idx as JSON: a string or an array of strings. */
static void put_value(lua_State *L, int idx, msal_buf *out, const char *name)
{
    size_t n;
    if (lua_type(L, idx) == LUA_TSTRING) {
        const char *v = lua_tolstring(L, idx, &n);
        json_put_string(out, v, n);
    } else if (lua_type(L, idx) == LUA_TTABLE) {
        size_t i, len = lua_rawlen(L, idx);
        buf_addc(out, '[');
        for (i = 1; i <= len; i++) {
            const char *v;
            lua_rawgeti(L, idx, (lua_Integer)i);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "cache field '%s' must be a string or an array of strings", name);
            v = lua_tolstring(L, -1, &n);
            if (i > 1)
                buf_addc(out, ',');
            json_put_string(out, v, n);
            lua_pop(L, 1);
        }
        buf_addc(out, ']');
    } else {
        luaL_error(L, "cache field '%s' must be a string or an array of strings", name);
    }
}

/***
 * Merges into the entry of the same key: fields not named keep their old
 * value (so other libraries' fields survive an update), a field set to
 * false is removed.
 * @function store:put
 * @tparam string section
 * @tparam table fields MSAL's field names, string or array-of-strings values
 * @tparam[opt] string key made from the fields when absent
 * @treturn string the key
 * @return or nil, `{message, section, key, field}`
 */
static int l_put(lua_State *L)
{
    store *s = check_store(L);
    int sec = check_section(L, 2), first = 1, seen;
    size_t kn = 0, i;
    const char *key = luaL_optlstring(L, 4, NULL, &kn);
    store_entry *old = NULL, *e;
    store_fpos f[NFIELDS];
    store_error err;
    msal_buf *raw;
    luaL_checktype(L, 3, LUA_TTABLE);
    raw = new_buffer(L); /* put_value raises on a wrongly typed field */
    buf_addc(raw, '{');
    if (key)
        old = store_get(s, sec, key, kn);
    lua_newtable(L); /* names the old entry had: written by the loop below */
    seen = lua_gettop(L);
    if (old) {
        /* the old members first, in their order, new values where given */
        json_scan js;
        const char *name, *vstart;
        size_t nn;
        int esc;
        json_init(&js, old->raw, old->raw_len);
        js.p++;
        while (next_member(&js, &name, &nn, &esc)) {
            json_next(&js);
            vstart = js.p;
            json_copy_value(&js, NULL, 1);
            lua_pushlstring(L, name, nn);
            lua_pushvalue(L, -1);
            lua_pushboolean(L, 1);
            lua_rawset(L, seen);
            lua_pushvalue(L, -1);
            lua_rawget(L, 3);
            if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
                lua_pop(L, 2);
                continue;
            }
            if (!first)
                buf_addc(raw, ',');
            first = 0;
            buf_addc(raw, '"');
            buf_add(raw, name, nn);
            buf_add(raw, "\":", 2);
            if (lua_isnil(L, -1) || esc)
                buf_add(raw, vstart, (size_t)(js.p - vstart));
            else
                put_value(L, lua_gettop(L), raw, lua_tostring(L, -2));
            lua_pop(L, 2);
        }
    }
    /* then the fields the old entry did not have: known ones in msal-node's
     * order, the rest as the table iterates */
    for (i = 0; i < sizeof put_order / sizeof put_order[0]; i++) {
        const char *name = store_field_names[put_order[i]];
        lua_getfield(L, seen, name);
        if (lua_toboolean(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        lua_pop(L, 1);
        lua_getfield(L, 3, name);
        if (lua_type(L, -1) != LUA_TNIL && !(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
            if (!first)
                buf_addc(raw, ',');
            first = 0;
            json_put_string(raw, name, strlen(name));
            buf_addc(raw, ':');
            put_value(L, lua_gettop(L), raw, name);
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        size_t nn;
        const char *name;
        int known = 0, j;
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "cache field names must be strings");
        name = lua_tolstring(L, -2, &nn);
        for (j = 0; j < NFIELDS; j++)
            if (strcmp(name, store_field_names[j]) == 0)
                known = 1;
        lua_pushvalue(L, -2);
        lua_rawget(L, seen);
        if (lua_toboolean(L, -1))
            known = 1; /* written with the old members */
        lua_pop(L, 1);
        if (!known && !(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
            if (!first)
                buf_addc(raw, ',');
            first = 0;
            json_put_string(raw, name, nn);
            buf_addc(raw, ':');
            put_value(L, lua_gettop(L), raw, name);
        }
        lua_pop(L, 1);
    }
    buf_addc(raw, '}');
    if (raw->oom)
        return luaL_error(L, "out of memory");
    store_locate_fields(raw->p, raw->n, f);
    store_error_init(&err);
    e = store_insert(s, sec, key, kn, raw->p, raw->n, f, NULL, &err);
    buf_free(raw);
    release_docs(L, s);
    if (e == NULL) {
        push_error(L, &err);
        store_error_free(&err);
        return 2;
    }
    lua_pushlstring(L, e->key, e->key_len);
    return 1;
}

/***
 * The silent flow's access-token look-up. No key is made: a first hit at
 * 10,000 accounts would intern one more string per account (see
 * find_first).
 * @function store:find_access_token
 * @tparam string hid
 * @tparam string env
 * @tparam string client_id
 * @tparam string realm
 * @tparam string scopes_lc the requested scopes, lower case
 * @tparam number now Unix time, s
 * @tparam[opt=300] number offset the renewal offset, s
 * @treturn string status: "none", "hit", "refresh_due", "expired" or "multiple"
 * @treturn table `{secret, target, token_type}`; this and the rest only
 *   when an entry was found
 * @treturn integer expires_on
 * @treturn integer ext_expires_on or nil
 * @treturn integer refresh_on or nil
 * @treturn integer cached_at
 */
static int l_find_access_token(lua_State *L)
{
    static const char *const names[] = {"none", "hit", "refresh_due", "expired", "multiple"};
    store *s = check_store(L);
    size_t hn, en, cn, rn, sn;
    const char *hid = luaL_checklstring(L, 2, &hn), *env = luaL_checklstring(L, 3, &en);
    const char *cid = luaL_checklstring(L, 4, &cn), *realm = luaL_checklstring(L, 5, &rn);
    const char *scopes = luaL_checklstring(L, 6, &sn);
    int64_t now = (int64_t)luaL_checknumber(L, 7), offset = (int64_t)luaL_optnumber(L, 8, 300);
    store_entry *e;
    int st = store_find_access_token(s, hid, hn, env, en, cid, cn, realm, rn, scopes, sn, now, offset, &e);
    lua_pushstring(L, names[st]);
    if (e == NULL)
        return 1;
    lua_createtable(L, 0, 3);
    push_field(L, e, F_SECRET);
    lua_setfield(L, -2, "secret");
    push_field(L, e, F_TARGET);
    lua_setfield(L, -2, "target");
    push_field(L, e, F_TOKEN_TYPE);
    lua_setfield(L, -2, "token_type");
    lua_pushinteger(L, (lua_Integer)e->expires_on);
    if (e->ext_expires_on >= 0)
        lua_pushinteger(L, (lua_Integer)e->ext_expires_on);
    else
        lua_pushnil(L);
    if (e->refresh_on >= 0)
        lua_pushinteger(L, (lua_Integer)e->refresh_on);
    else
        lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)e->cached_at);
    return 6;
}

/* What find() looks for: fields that must equal (home_account_id,
 * client_id, realm, family_id: without case), an environment (alias-aware)
 * and scopes every one of which the entry's target must hold. */
typedef struct find_filter {
    const char *want[5], *target;
    size_t wn[5], tn;
    int sec, group;
    int by_hid; /* walk the home account's hash chain, not the section */
} find_filter;

static void check_filter(lua_State *L, store *s, find_filter *f)
{
    static const char *const fname[5] = {"home_account_id", "environment", "client_id", "realm", "family_id"};
    int i;
    f->sec = check_section(L, 2);
    f->group = -1;
    luaL_checktype(L, 3, LUA_TTABLE);
    for (i = 0; i < 5; i++) {
        lua_getfield(L, 3, fname[i]);
        f->want[i] = lua_tolstring(L, -1, &f->wn[i]);
        lua_pop(L, 1); /* the filter table keeps the string alive */
    }
    lua_getfield(L, 3, "target");
    f->target = lua_tolstring(L, -1, &f->tn);
    lua_pop(L, 1);
    if (f->want[1])
        f->group = store_env_group(s, f->want[1], f->wn[1]);
    f->by_hid = f->want[0] && s->hcap;
}

/* The first entry from e on (along the section's list, or along the home
 * account's hash chain when the filter names one) that passes the filter. */
static store_entry *find_from(const store *s, const find_filter *f, store_entry *e)
{
    for (; e; e = f->by_hid ? e->hnext : e->next) {
        if (e->section != f->sec)
            continue;
        if ((f->want[0] && !store_field_is(e, F_HID, f->want[0], f->wn[0])) ||
            (f->want[2] && !store_field_is(e, F_CLIENT_ID, f->want[2], f->wn[2])) ||
            (f->want[3] && !store_field_is(e, F_REALM, f->want[3], f->wn[3])) ||
            (f->want[4] && !store_field_is(e, F_FAMILY_ID, f->want[4], f->wn[4])) ||
            (f->want[1] && !store_entry_matches_env(s, e, f->group, f->want[1], f->wn[1])) ||
            (f->target && !store_scopes_contain(e, f->target, f->tn)))
            continue;
        return e;
    }
    return NULL;
}

static store_entry *find_first(const store *s, const find_filter *f)
{
    if (f->by_hid)
        return find_from(s, f, s->htab[store_hid_hash(f->want[0], f->wn[0]) & (s->hcap - 1)]);
    return find_from(s, f, s->head[f->sec]);
}

static store_entry *find_after(const store *s, const find_filter *f, const store_entry *e)
{
    return find_from(s, f, f->by_hid ? e->hnext : e->next);
}

/***
 * @function store:find
 * @tparam string section
 * @tparam table filter `{home_account_id, environment (alias-aware),
 *   client_id, realm, family_id, target}`, each optional: equal without
 *   case, and target's scopes all in the entry's
 * @treturn table the keys of the matching entries
 */
static int l_find(lua_State *L)
{
    store *s = check_store(L);
    find_filter f;
    store_entry *e;
    int n = 0;
    check_filter(L, s, &f);
    lua_newtable(L);
    for (e = find_first(s, &f); e; e = find_after(s, &f, e)) {
        lua_pushlstring(L, e->key, e->key_len);
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/***
 * One field of the first entry find() would give: the silent flow's
 * id-token look-up, with no key strings made (with LuaJIT every new string
 * is interned, and keys differ little).
 * @function store:find_first
 * @tparam string section
 * @tparam table filter as for find
 * @tparam string field "secret", "home_account_id", "environment" or "realm"
 * @treturn string the field, or nothing
 */
static int l_find_first(lua_State *L)
{
    static const char *const fields[] = {"secret", "home_account_id", "environment", "realm", NULL};
    static const int field_of[] = {F_SECRET, F_HID, F_ENV, F_REALM};
    store *s = check_store(L);
    find_filter f;
    int field = field_of[luaL_checkoption(L, 4, NULL, fields)];
    store_entry *e;
    check_filter(L, s, &f);
    e = find_first(s, &f);
    if (e == NULL)
        return 0;
    push_field(L, e, field);
    return 1;
}

/* Pushes the AccountInfo-shaped table of an Account entry. */
static void push_account(lua_State *L, const store_entry *e)
{
    static const struct { int field; const char *name; } map[] = {
        {F_HID, "home_account_id"}, {F_ENV, "environment"}, {F_REALM, "tenant_id"},
        {F_USERNAME, "username"}, {F_LOCAL_ID, "local_account_id"}, {F_NAME, "name"},
        {F_AUTHORITY_TYPE, "authority_type"},
    };
    size_t i;
    lua_createtable(L, 0, 8);
    for (i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t vn;
        const char *v = store_value(e, map[i].field, &vn);
        if (v == NULL)
            continue;
        lua_pushlstring(L, v, vn);
        lua_setfield(L, -2, map[i].name);
    }
}

/***
 * The accounts in cache order. Built here rather than in Lua:
 * get_all_accounts must stay cheap at 10,000.
 * @function store:accounts
 * @tparam[opt] table mt a metatable for each
 * @treturn table an array of AccountInfo-shaped tables
 */
static int l_accounts(lua_State *L)
{
    store *s = check_store(L);
    store_entry *e;
    int n = 0, mt = lua_istable(L, 2);
    lua_createtable(L, (int)s->count[SEC_ACCOUNT], 0);
    for (e = s->head[SEC_ACCOUNT]; e; e = e->next) {
        push_account(L, e);
        if (mt) {
            lua_pushvalue(L, 2);
            lua_setmetatable(L, -2);
        }
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/***
 * @function store:account
 * @tparam string key an Account entry's
 * @treturn table its AccountInfo-shaped table, or nothing
 */
static int l_account(lua_State *L)
{
    store *s;
    store_entry *e = arg_entry(L, &s, SEC_ACCOUNT);
    if (e == NULL)
        return 0;
    push_account(L, e);
    return 1;
}

/* Pushes one tenant profile (the JSON object text of a tenantProfiles
 * string, unescaped: any text, as another program wrote it) as a table of
 * its string members; pushes nothing and returns 0 when the text is not one
 * JSON object. Its members are pushed rather than the text handed to Lua:
 * LuaJIT interns every string and hashes a long one from a few of its
 * bytes, which the profiles of one tenant share (measured: 35 us a profile
 * at 10,000 accounts). */
static int push_profile(lua_State *L, const char *text, size_t n, msal_buf *val)
{
    json_scan js;
    json_init(&js, text, n);
    if (json_next(&js) != '{' || json_copy_value(&js, NULL, 1) != JT_OBJECT || json_next(&js) != -1)
        return 0;
    json_init(&js, text, n); /* valid: push_json may walk it */
    push_json(L, &js, val, 1);
    return 1;
}

/* Pushes what an Account entry says about its tenants: `{tenant_id (its
 * realm), local_account_id, profiles (its tenant profiles, or nil)}`, read
 * without decoding the rest of the entry. */
static void push_tenants(lua_State *L, const store_entry *e, msal_buf *tmp, msal_buf *val)
{
    json_scan js;
    const char *name;
    size_t nn;
    int esc;
    lua_createtable(L, 0, 3);
    push_field(L, e, F_REALM);
    lua_setfield(L, -2, "tenant_id");
    push_field(L, e, F_LOCAL_ID);
    lua_setfield(L, -2, "local_account_id");
    json_init(&js, e->raw, e->raw_len);
    js.p++;
    while (next_member(&js, &name, &nn, &esc)) {
        if (!esc && nn == 14 && memcmp(name, "tenantProfiles", 14) == 0 && json_next(&js) == '[') {
            int i = 0;
            js.p++;
            lua_newtable(L);
            /* the entry was checked when it was stored: well-formed JSON */
            while (json_next(&js) != ']') {
                if (json_next(&js) == ',')
                    js.p++;
                if (json_next(&js) == '"') {
                    const char *v;
                    size_t vn;
                    int vesc;
                    json_string(&js, &v, &vn, &vesc);
                    if (vesc) {
                        tmp->n = 0;
                        json_unescape(v, vn, tmp);
                        v = tmp->p ? tmp->p : "";
                        vn = tmp->oom ? 0 : tmp->n;
                    }
                    if (push_profile(L, v, vn, val))
                        lua_rawseti(L, -2, ++i);
                } else {
                    json_copy_value(&js, NULL, 1);
                }
            }
            js.p++;
            lua_setfield(L, -2, "profiles");
        } else {
            json_copy_value(&js, NULL, 1);
        }
    }
}

/***
 * The tenants of a user's Account entries in one cloud (environment
 * aliases count as one), in find() order: what a tenant_profiles table is
 * built from, without decoding whole entries (get() costs ~20x more).
 * @function store:account_tenants
 * @tparam string home_account_id
 * @tparam string environment
 * @treturn table an array of `{tenant_id, local_account_id, profiles}`,
 *   profiles being the entry's tenantProfiles decoded (tables of their
 *   string members: tenantId, localAccountId, name, username, loginHint,
 *   upn…), nil when it has none
 */
static int l_account_tenants(lua_State *L)
{
    store *s = check_store(L);
    find_filter f;
    store_entry *e;
    msal_buf tmp, val;
    int n = 0;
    memset(&f, 0, sizeof f);
    f.sec = SEC_ACCOUNT;
    f.want[0] = luaL_checklstring(L, 2, &f.wn[0]);
    f.want[1] = luaL_checklstring(L, 3, &f.wn[1]);
    f.group = store_env_group(s, f.want[1], f.wn[1]);
    f.by_hid = s->hcap != 0;
    buf_init(&tmp); /* as push_entry's */
    buf_init(&val);
    lua_newtable(L);
    for (e = find_first(s, &f); e; e = find_after(s, &f, e)) {
        push_tenants(L, e, &tmp, &val);
        lua_rawseti(L, -2, ++n);
    }
    buf_free(&tmp);
    buf_free(&val);
    return 1;
}

/* A section name set_section accepts: printable ASCII without quote or
 * backslash, so that it is written as given. */
static const char *check_section_name(lua_State *L, size_t *n)
{
    const char *name = luaL_checklstring(L, 2, n);
    size_t i;
    for (i = 0; i < *n; i++)
        if (name[i] < 0x20 || name[i] > 0x7e || name[i] == '"' || name[i] == '\\')
            luaL_argerror(L, 2, "a section name is printable ASCII without quotes or backslashes");
    if (*n == 0)
        luaL_argerror(L, 2, "a section name is not empty");
    return name;
}

/***
 * A top-level section of the document that holds no entries of the five
 * kinds (another library's, or the active account's), as its JSON text.
 * @function store:section
 * @tparam string name
 * @treturn string|nil
 */
static int l_section(lua_State *L)
{
    store *s = check_store(L);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    const store_unknown *u = store_section(s, name, n);
    if (u == NULL)
        return 0;
    lua_pushlstring(L, u->raw, u->raw_len);
    return 1;
}

/***
 * Sets (or, with nil, removes) such a section; serialize writes it after
 * the entry sections. A change of the store (its generation).
 * @function store:set_section
 * @tparam string name not one of the five entry sections
 * @tparam string|nil json one JSON value
 */
static int l_set_section(lua_State *L)
{
    store *s = check_store(L);
    size_t nn, rn = 0;
    const char *name = check_section_name(L, &nn);
    const char *raw = luaL_optlstring(L, 3, NULL, &rn);
    msal_buf *out = NULL;
    int i;
    if (raw) {
        json_scan js;
        out = new_buffer(L);
        json_init(&js, raw, rn);
        if (json_copy_value(&js, out, 1) == JT_NONE || json_next(&js) != -1)
            return luaL_argerror(L, 3, "not one JSON value");
        if (out->oom)
            return luaL_error(L, "out of memory");
    }
    for (i = 0; i < NSEC; i++)
        if (strlen(store_section_names[i]) == nn && memcmp(store_section_names[i], name, nn) == 0)
            return luaL_argerror(L, 2, "the entry sections are set entry by entry");
    if (!store_set_section(s, name, nn, out ? out->p : NULL, out ? out->n : 0))
        return luaL_error(L, "out of memory");
    if (out)
        buf_free(out);
    return 0;
}

/***
 * @function store:count
 * @tparam[opt] string section
 * @treturn integer the entries (of that section)
 */
static int l_count(lua_State *L)
{
    store *s = check_store(L);
    if (lua_isnoneornil(L, 2))
        lua_pushinteger(L, (lua_Integer)s->total);
    else
        lua_pushinteger(L, (lua_Integer)s->count[check_section(L, 2)]);
    return 1;
}

/***
 * A number that changes with every change to the store; with "Account",
 * with every change to its Account entries; with "load", with every load.
 * @function store:generation
 * @tparam[opt] string which "Account" or "load"
 * @treturn number
 */
static int l_generation(lua_State *L)
{
    store *s = check_store(L);
    if (lua_isnoneornil(L, 2))
        lua_pushnumber(L, (lua_Number)s->generation);
    else if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "load") == 0)
        lua_pushnumber(L, (lua_Number)s->load_generation);
    else if (check_section(L, 2) == SEC_ACCOUNT)
        lua_pushnumber(L, (lua_Number)s->account_generation);
    else
        return luaL_argerror(L, 2, "only \"Account\" and \"load\" have a generation of their own");
    return 1;
}

/***
 * A number that changes whenever an entry of that account is put or
 * removed, or the store is loaded again (store_home_generation).
 * @function store:home_generation
 * @tparam string home_account_id
 * @treturn number
 */
static int l_home_generation(lua_State *L)
{
    store *s = check_store(L);
    size_t n;
    const char *hid = luaL_checklstring(L, 2, &n);
    lua_pushnumber(L, (lua_Number)store_home_generation(s, hid, n));
    return 1;
}

/***
 * Hosts in one list are one environment to find() and
 * find_access_token().
 * @function store:set_aliases
 * @tparam table groups e.g. `{{"login.microsoftonline.com", "login.windows.net"}}`
 */
static int l_set_aliases(lua_State *L)
{
    store *s = check_store(L);
    size_t ng, total = 0, g, k = 0;
    const char **hosts;
    int *groups, ok;
    luaL_checktype(L, 2, LUA_TTABLE);
    ng = lua_rawlen(L, 2);
    for (g = 1; g <= ng; g++) {
        lua_rawgeti(L, 2, (lua_Integer)g);
        luaL_argcheck(L, lua_istable(L, -1), 2, "alias groups must be arrays of host names");
        total += lua_rawlen(L, -1);
        lua_pop(L, 1);
    }
    hosts = malloc((total ? total : 1) * sizeof *hosts);
    groups = malloc((total ? total : 1) * sizeof *groups);
    if (hosts == NULL || groups == NULL) {
        free(hosts);
        free(groups);
        return luaL_error(L, "out of memory");
    }
    for (g = 1; g <= ng; g++) {
        size_t j, len;
        lua_rawgeti(L, 2, (lua_Integer)g);
        len = lua_rawlen(L, -1);
        for (j = 1; j <= len; j++) {
            lua_rawgeti(L, -1, (lua_Integer)j);
            hosts[k] = lua_tostring(L, -1); /* stays alive: the table holds it */
            groups[k++] = (int)g;
            lua_pop(L, 1);
            if (hosts[k - 1] == NULL) {
                free(hosts);
                free(groups);
                return luaL_error(L, "alias host names must be strings");
            }
        }
        lua_pop(L, 1);
    }
    ok = store_set_aliases(s, hosts, groups, k);
    free(hosts);
    free(groups);
    if (!ok)
        return luaL_error(L, "out of memory");
    return 0;
}

/***
 * @function key
 * @tparam string section
 * @tparam table fields
 * @treturn string the msal-node 7 cache key for such an entry
 */
static int l_key(lua_State *L)
{
    int sec = check_section(L, 1);
    store_fpos f[NFIELDS];
    msal_buf *raw, *key;
    size_t i;
    luaL_checktype(L, 2, LUA_TTABLE);
    raw = new_buffer(L); /* freed by __gc if a field's __index raises */
    key = new_buffer(L);
    buf_addc(raw, '{');
    for (i = 0; i < NFIELDS; i++) {
        lua_getfield(L, 2, store_field_names[i]);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t n;
            const char *v = lua_tolstring(L, -1, &n);
            if (raw->n > 1)
                buf_addc(raw, ',');
            json_put_string(raw, store_field_names[i], strlen(store_field_names[i]));
            buf_addc(raw, ':');
            json_put_string(raw, v, n);
        }
        lua_pop(L, 1);
    }
    buf_addc(raw, '}');
    if (raw->oom || !store_locate_fields(raw->p, raw->n, f) || !store_make_key(sec, raw->p, f, key))
        return luaL_error(L, "out of memory");
    lua_pushlstring(L, key->p ? key->p : "", key->n);
    return 1;
}

static void describe(lua_State *L, void *self)
{
    lstore *ls = self;
    if (ls->s)
        lua_pushfstring(L, "%d entries", (int)ls->s->total);
}

void msal_open_store(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"load", l_load}, {"serialize", l_serialize}, {"write_file", l_write_file}, {"get", l_get}, {"put", l_put},
        {"remove", l_remove}, {"find", l_find}, {"find_first", l_find_first}, {"find_access_token", l_find_access_token},
        {"accounts", l_accounts}, {"account", l_account}, {"account_tenants", l_account_tenants},
        {"count", l_count}, {"generation", l_generation}, {"section", l_section}, {"set_section", l_set_section},
        {"home_generation", l_home_generation},
        {"set_aliases", l_set_aliases}, {"close", l_close}, {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {{"new", l_new}, {"key", l_key}, {NULL, NULL}};
    static const msal_class store_class = {STORE_MT, methods, l_close, describe, NULL, NULL};
    static const msal_class buf_class = {BUF_MT, NULL, l_buf_gc, NULL, NULL, NULL};
    msal_newclass(L, &store_class);
    msal_newclass(L, &buf_class);
    luaL_newlib(L, funcs);
}
