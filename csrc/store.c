#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hugemem.h"
#include "json.h"
#include "store.h"

const char *const store_section_names[NSEC] = {"Account", "IdToken", "AccessToken", "RefreshToken", "AppMetadata"};

const char *const store_field_names[NFIELDS] = {
    "home_account_id", "environment", "realm", "local_account_id", "username", "authority_type", "name",
    "credential_type", "client_id", "secret", "target", "token_type", "family_id", "client_info",
    "cached_at", "expires_on", "extended_expires_on", "refresh_on", "key_id", "last_modification_time",
    "last_modification_app", "userAssertionHash", "resource", "account_source",
};

#define BIT(f) (1u << (f))
/* What msal-node itself needs before it treats an entry as one of its kind. */
static const unsigned required[NSEC] = {
    BIT(F_HID) | BIT(F_ENV) | BIT(F_REALM) | BIT(F_LOCAL_ID) | BIT(F_USERNAME) | BIT(F_AUTHORITY_TYPE),
    BIT(F_HID) | BIT(F_ENV) | BIT(F_CRED_TYPE) | BIT(F_CLIENT_ID) | BIT(F_SECRET) | BIT(F_REALM),
    BIT(F_HID) | BIT(F_ENV) | BIT(F_CRED_TYPE) | BIT(F_CLIENT_ID) | BIT(F_SECRET) | BIT(F_REALM) |
        BIT(F_TARGET) | BIT(F_CACHED_AT) | BIT(F_EXPIRES_ON),
    BIT(F_HID) | BIT(F_ENV) | BIT(F_CRED_TYPE) | BIT(F_CLIENT_ID) | BIT(F_SECRET),
    BIT(F_CLIENT_ID) | BIT(F_ENV),
};

#define FNV_OFFSET 1469598103934665603ULL
#define HSTAMP_BUCKETS 4096 /* 32 KB per store that has changed since its load */

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define MIX 0x9e3779b97f4a7c15ULL

/* Up to 8 bytes as one word, the rest zero. */
static uint64_t load_word(const char *p, size_t n)
{
    uint64_t w = 0;
    memcpy(&w, p, n < 8 ? n : 8);
    return w;
}

/* ASCII upper-case letters of a word to lower case, all 8 bytes at once. */
static uint64_t lower_word(uint64_t w)
{
    uint64_t ascii = w & ~HIGHS;
    uint64_t ge_a = ascii + ONES * (0x80 - 'A'), gt_z = ascii + ONES * (0x80 - 'Z' - 1);
    return w | (((ge_a & ~gt_z & ~w) & HIGHS) >> 2);
}

static uint64_t mix_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * MIX;
    return h ^ (h >> 32);
}

/* Keys and ids are hashed a word at a time: deserializing a large cache
 * hashes every key and account id, and a byte at a time that was a fifth
 * of the time. `h` chains calls (the access-token index hashes three
 * fields); `fold` hashes ASCII letters without their case. */
static uint64_t hash_words(const char *p, size_t n, uint64_t h, int fold)
{
    size_t i;
    uint64_t w;
    for (i = 0; i + 8 <= n; i += 8) {
        w = load_word(p + i, 8);
        h = mix_word(h, fold ? lower_word(w) : w);
    }
    if (i < n) {
        w = load_word(p + i, n - i);
        h = mix_word(h, fold ? lower_word(w) : w);
    }
    return mix_word(h, n);
}

static uint64_t store_hash_lower(const char *p, size_t n, uint64_t h)
{
    return hash_words(p, n, h, 1);
}

uint64_t store_hid_hash(const char *hid, size_t n)
{
    return store_hash_lower(hid, n, FNV_OFFSET);
}

static uint64_t key_hash(int section, const char *p, size_t n)
{
    return hash_words(p, n, FNV_OFFSET ^ (uint64_t)(section + 1), 0);
}

/* The access-token index key: home account, client and realm. */
static uint64_t at_hash(const char *hid, size_t hn, const char *cid, size_t cn, const char *realm, size_t rn)
{
    uint64_t h = store_hid_hash(hid, hn);
    h = store_hash_lower("\x1f", 1, h);
    h = store_hash_lower(cid, cn, h);
    h = store_hash_lower("\x1f", 1, h);
    return store_hash_lower(realm, rn, h);
}

/* Equal but for ASCII case. */
static int ci_equal(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;
    if (an != bn)
        return 0;
    for (i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

const char *store_value(const store_entry *e, int f, size_t *n)
{
    if (e->dec && e->dec->p[f]) {
        *n = e->dec->n[f];
        return e->dec->p[f];
    }
    if (e->flen[f] == STORE_ABSENT) {
        *n = 0;
        return NULL;
    }
    *n = e->flen[f];
    return e->raw + e->foff[f];
}

int store_field_is(const store_entry *e, int f, const char *v, size_t n)
{
    size_t en;
    const char *ev = store_value(e, f, &en);
    if (en != n)
        return 0;
    /* the same case is the common case: memcmp first */
    return n == 0 || memcmp(ev, v, n) == 0 || ci_equal(ev, en, v, n);
}

static uint64_t entry_hhash(const store_entry *e)
{
    size_t n;
    const char *v = store_value(e, F_HID, &n);
    return store_hid_hash(v ? v : "", n);
}

/* ---- the entries of a parsed document live in an arena ----
 * Touching the 25 MB of entries of a 10,000-account cache one 4 KiB page
 * fault at a time took longer than parsing it, so big chunks are huge pages
 * (hugemem.h). An entry replaced later stays in its chunk until the whole
 * document is let go. */
#define ARENA_CHUNK ((size_t)4 << 20)

struct store_arena {
    store_arena *next;
    size_t used, cap;
    int mapped; /* mmap'd (large documents) or malloc'd (small ones) */
};

static void *arena_alloc(store_doc *d, size_t n)
{
    store_arena *c = d->arena;
    size_t head = (sizeof(store_arena) + 15) & ~(size_t)15;
    void *p;
    n = (n + 15) & ~(size_t)15;
    if (c == NULL || c->cap - c->used < n) {
        /* a small document gets a small chunk: 4 MB for one account would
         * cost more than reading it */
        size_t want = d->len / 2 < ARENA_CHUNK ? (d->len / 2 > 65536 ? d->len / 2 : 65536) : ARENA_CHUNK;
        size_t cap = n + head > want ? n + head : want;
        /* a mapping costs system calls, and a huge page 2 MiB of zeroing:
         * worth it from half a megabyte (a 1.3 MB cache file's 630 KB
         * chunk: 100 first-touch faults, 0.4 of a `msal token` hit's ms) */
        int mapped = cap >= ((size_t)1 << 19);
        void *m;
        if (mapped)
            cap = (cap + MSAL_HUGE_PAGE - 1) & ~(MSAL_HUGE_PAGE - 1);
        m = mapped ? msal_huge_map(cap, 1) : malloc(cap);
        if (m == NULL)
            return NULL;
        c = m;
        c->mapped = mapped;
        c->next = d->arena;
        c->used = head;
        c->cap = cap;
        d->arena = c;
    }
    p = (char *)c + c->used;
    c->used += n;
    return p;
}

static void doc_free(store_doc *d)
{
    while (d->arena) {
        store_arena *c = d->arena;
        d->arena = c->next;
        if (c->mapped)
            msal_huge_unmap(c, c->cap);
        else
            free(c);
    }
    free(d);
}

/* An index of a big document (10,000 accounts: 10 MB in all) is huge
 * pages: its buckets are hit at random while the document is read, and in
 * 4 KiB pages that is 2,500 first-touch faults, a third of the load. Sizes
 * are powers of two, so a big one is a whole number of huge pages. */
static int index_mapped(size_t cap)
{
    return cap * sizeof(store_entry *) >= MSAL_HUGE_PAGE;
}

static store_entry **index_alloc(size_t cap)
{
    size_t bytes = cap * sizeof(store_entry *);
    store_entry **t;
    if (!index_mapped(cap))
        return calloc(cap, sizeof(store_entry *));
    if ((t = msal_huge_map(bytes, 1)) != NULL)
        memset(t, 0, bytes);
    return t;
}

static void index_free(store_entry **t, size_t cap)
{
    if (t && index_mapped(cap))
        msal_huge_unmap(t, cap * sizeof(store_entry *));
    else
        free(t);
}

void store_error_init(store_error *e)
{
    e->message = NULL;
    e->section = -1;
    e->field = NULL;
    buf_init(&e->key);
    e->offset = 0;
}

void store_error_free(store_error *e)
{
    buf_free(&e->key);
}

static store_entry *fail(store_error *err, const char *msg, int section, int field, const char *key, size_t kn)
{
    if (err && err->message == NULL) {
        err->message = msg;
        err->section = section;
        err->field = field >= 0 ? store_field_names[field] : NULL;
        if (key)
            buf_add(&err->key, key, kn);
    }
    return NULL;
}

store *store_new(void)
{
    return calloc(1, sizeof(store));
}

void store_free(store *s)
{
    size_t i;
    int sec;
    if (s == NULL)
        return;
    for (sec = 0; sec < NSEC; sec++) {
        store_entry *e = s->head[sec];
        while (e) {
            store_entry *next = e->next;
            if (!e->in_arena)
                free(e);
            e = next;
        }
    }
    while (s->docs) {
        store_doc *d = s->docs;
        s->docs = d->next;
        doc_free(d);
    }
    index_free(s->ktab, s->kcap);
    index_free(s->htab, s->hcap);
    index_free(s->atab, s->acap);
    free(s->hstamp);
    for (i = 0; i < s->nunknown; i++) {
        free(s->unknown[i].name);
        free(s->unknown[i].raw);
    }
    free(s->unknown);
    for (i = 0; i < s->nalias; i++)
        free(s->alias_host[i]);
    free(s->alias_host);
    free(s->alias_group);
    free(s);
}

void store_release_docs(store *s, void (*release)(void *ud, store_doc *d), void *ud)
{
    store_doc **pd = &s->docs;
    while (*pd) {
        store_doc *d = *pd;
        if (d->live == 0) {
            *pd = d->next;
            release(ud, d);
            doc_free(d);
        } else {
            pd = &d->next;
        }
    }
}

int store_env_group(const store *s, const char *host, size_t n)
{
    size_t i;
    for (i = 0; i < s->nalias; i++)
        if (ci_equal(s->alias_host[i], strlen(s->alias_host[i]), host, n))
            return s->alias_group[i];
    return -1;
}

int store_entry_matches_env(const store *s, const store_entry *e, int group, const char *env, size_t n)
{
    (void)s;
    if (group >= 0 || e->env_group >= 0)
        return group == e->env_group;
    return store_field_is(e, F_ENV, env, n);
}

static void set_env_group(const store *s, store_entry *e)
{
    size_t n;
    const char *env = store_value(e, F_ENV, &n);
    e->env_group = store_env_group(s, env ? env : "", n);
}

int store_set_aliases(store *s, const char *const *hosts, const int *groups, size_t n)
{
    char **h = calloc(n ? n : 1, sizeof(char *));
    int *g = malloc((n ? n : 1) * sizeof(int));
    size_t i;
    int sec;
    if (h == NULL || g == NULL)
        goto oom;
    for (i = 0; i < n; i++) {
        size_t len = strlen(hosts[i]), j;
        if ((h[i] = malloc(len + 1)) == NULL)
            goto oom;
        for (j = 0; j <= len; j++)
            h[i][j] = (char)lower((unsigned char)hosts[i][j]);
        g[i] = groups[i];
    }
    for (i = 0; i < s->nalias; i++)
        free(s->alias_host[i]);
    free(s->alias_host);
    free(s->alias_group);
    s->alias_host = h;
    s->alias_group = g;
    s->nalias = n;
    for (sec = 0; sec < NSEC; sec++) {
        store_entry *e;
        for (e = s->head[sec]; e; e = e->next)
            set_env_group(s, e);
    }
    s->generation++;
    s->load_generation = s->generation; /* every entry's environment group may differ */
    return 1;
oom:
    if (h)
        for (i = 0; i < n; i++)
            free(h[i]);
    free(h);
    free(g);
    return 0;
}

/* ---- hash tables (chained, power-of-two sizes, grown at load 1) ---- */

static size_t bucket(uint64_t h, size_t cap)
{
    return (size_t)(h & (cap - 1));
}

static void link_entry(store *s, store_entry *e)
{
    size_t b = bucket(e->khash, s->kcap);
    e->knext = s->ktab[b];
    s->ktab[b] = e;
    b = bucket(e->hhash, s->hcap);
    e->hnext = s->htab[b];
    s->htab[b] = e;
    if (e->section == SEC_AT) {
        b = bucket(e->ahash, s->acap);
        e->anext = s->atab[b];
        s->atab[b] = e;
    }
}

static int grow(store_entry ***tab, size_t *cap, size_t need)
{
    size_t ncap = *cap ? *cap : 64;
    store_entry **nt;
    if (need <= *cap && *tab)
        return 1;
    while (ncap < need)
        ncap *= 2;
    if ((nt = index_alloc(ncap)) == NULL)
        return 0;
    index_free(*tab, *cap);
    *tab = nt;
    *cap = ncap;
    return 2; /* every entry must be linked again */
}

static int ensure_capacity(store *s, size_t total, size_t nat)
{
    int rk = grow(&s->ktab, &s->kcap, total), rh = 1, ra = 1;
    if (rk)
        rh = grow(&s->htab, &s->hcap, total);
    if (rk && rh)
        ra = grow(&s->atab, &s->acap, nat);
    if (!rk || !rh || !ra)
        return 0;
    if (rk == 2 || rh == 2 || ra == 2) {
        int sec;
        /* a new table comes zeroed; the others are linked again too */
        if (rk != 2)
            memset(s->ktab, 0, s->kcap * sizeof(store_entry *));
        if (rh != 2)
            memset(s->htab, 0, s->hcap * sizeof(store_entry *));
        if (ra != 2)
            memset(s->atab, 0, s->acap * sizeof(store_entry *));
        for (sec = 0; sec < NSEC; sec++) {
            store_entry *e;
            for (e = s->head[sec]; e; e = e->next)
                link_entry(s, e);
        }
    }
    return 1;
}

static void unlink_chain(store_entry **head, store_entry *e, size_t next_off)
{
    while (*head) {
        if (*head == e) {
            *head = *(store_entry **)((char *)e + next_off);
            return;
        }
        head = (store_entry **)((char *)*head + next_off);
    }
}

static void unlink_indexes(store *s, store_entry *e)
{
    unlink_chain(&s->ktab[bucket(e->khash, s->kcap)], e, offsetof(store_entry, knext));
    unlink_chain(&s->htab[bucket(e->hhash, s->hcap)], e, offsetof(store_entry, hnext));
    if (e->section == SEC_AT)
        unlink_chain(&s->atab[bucket(e->ahash, s->acap)], e, offsetof(store_entry, anext));
}

static void drop_entry(store_entry *e)
{
    if (e->doc)
        e->doc->live--;
    if (!e->in_arena)
        free(e);
}

static store_entry *get_hashed(const store *s, int section, const char *key, size_t key_len, uint64_t h)
{
    store_entry *e;
    if (s->kcap == 0)
        return NULL;
    for (e = s->ktab[bucket(h, s->kcap)]; e; e = e->knext)
        if (e->khash == h && e->section == section && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    return NULL;
}

store_entry *store_get(const store *s, int section, const char *key, size_t key_len)
{
    return get_hashed(s, section, key, key_len, key_hash(section, key, key_len));
}

/* Records that an entry of the home account with hash hhash changed now. */
static void stamp_home(store *s, uint64_t hhash)
{
    if (s->hstamp == NULL && (s->hstamp = calloc(HSTAMP_BUCKETS, sizeof *s->hstamp)) == NULL) {
        s->load_generation = s->generation; /* no room for stamps: as if reloaded */
        return;
    }
    s->hstamp[hhash & (HSTAMP_BUCKETS - 1)] = s->generation;
}

uint64_t store_home_generation(const store *s, const char *hid, size_t n)
{
    uint64_t g = s->load_generation, h;
    if (s->hstamp) {
        h = s->hstamp[store_hid_hash(hid, n) & (HSTAMP_BUCKETS - 1)];
        if (h > g)
            g = h;
    }
    return g;
}

void store_remove(store *s, store_entry *e)
{
    int sec = e->section;
    unlink_indexes(s, e);
    if (sec == SEC_AT)
        s->nat--;
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head[sec] = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail[sec] = e->prev;
    s->count[sec]--;
    s->total--;
    s->generation++;
    if (sec == SEC_ACCOUNT)
        s->account_generation++;
    stamp_home(s, e->hhash);
    drop_entry(e);
}

/* ---- fields ---- */

static int field_id(const char *name, size_t n)
{
    int i;
    for (i = 0; i < NFIELDS; i++)
        if (store_field_names[i][0] == name[0] && strlen(store_field_names[i]) == n &&
            memcmp(store_field_names[i], name, n) == 0)
            return i;
    return -1;
}

static void clear_fields(store_fpos *f)
{
    int i;
    for (i = 0; i < NFIELDS; i++)
        f[i].type = JT_NONE;
}

/* Records a member's value position (offsets from base); a known field
 * twice is an error. */
static int note_field(store_fpos *f, const char *name, size_t nn, int type, const char *base, size_t vstart,
                      size_t vend, int *dup)
{
    int id = field_id(name, nn);
    if (id < 0)
        return 1;
    if (f[id].type != JT_NONE) {
        *dup = id;
        return 0;
    }
    f[id].type = (uint8_t)type;
    if (type == JT_STRING) {
        f[id].off = (uint32_t)(vstart + 1);
        f[id].len = (uint32_t)(vend - vstart - 2);
        f[id].escaped = memchr(base + vstart + 1, '\\', f[id].len) != NULL;
    }
    return 1;
}

/* Walks the members of the object at js (which must be at '{'), noting
 * known fields relative to base. 0 on a syntax error or a field twice. */
static int scan_members(json_scan *js, const char *base, store_fpos *f, int *dup)
{
    int first = 1;
    clear_fields(f);
    *dup = -1;
    if (!json_expect(js, '{'))
        return 0;
    for (;;) {
        const char *name;
        size_t nn, vstart;
        int esc, type, c = json_next(js);
        if (c == '}' && first)
            break;
        if (!first) {
            if (c == '}')
                break;
            if (c != ',')
                return json_fail(js, "expected ',' or '}'");
            js->p++;
        }
        first = 0;
        if (json_next(js) != '"')
            return json_fail(js, "expected member name");
        if (!json_string(js, &name, &nn, &esc) || !json_expect(js, ':'))
            return 0;
        json_next(js);
        vstart = (size_t)(js->p - base);
        if ((type = json_copy_value(js, NULL, 2)) == JT_NONE)
            return 0;
        if (!esc && !note_field(f, name, nn, type, base, vstart, (size_t)(js->p - base), dup))
            return 0;
    }
    js->p++;
    return 1;
}

int store_locate_fields(const char *raw, size_t raw_len, store_fpos *f)
{
    json_scan js;
    int dup;
    if (raw_len > UINT32_MAX)
        return 0;
    json_init(&js, raw, raw_len);
    return scan_members(&js, raw, f, &dup) && json_next(&js) == -1;
}

static void field_decoded(const char *raw, const store_fpos *f, int id, msal_buf *out)
{
    if (f[id].type != JT_STRING)
        return;
    if (f[id].escaped)
        json_unescape(raw + f[id].off, f[id].len, out);
    else
        buf_add(out, raw + f[id].off, f[id].len);
}

int store_make_key(int section, const char *raw, const store_fpos *f, msal_buf *out)
{
    size_t start = out->n, i;
    if (section == SEC_APPMETA) {
        buf_adds(out, "appmetadata-");
        field_decoded(raw, f, F_ENV, out);
        buf_addc(out, '-');
        field_decoded(raw, f, F_CLIENT_ID, out);
    } else {
        field_decoded(raw, f, F_HID, out);
        buf_addc(out, '-');
        field_decoded(raw, f, F_ENV, out);
        buf_addc(out, '-');
        if (section == SEC_ACCOUNT) {
            /* msal-node keys an account by its home tenant: the part of
             * home_account_id after the first '.', else the realm */
            const char *hid = raw + f[F_HID].off, *dot = NULL;
            if (f[F_HID].type == JT_STRING && !f[F_HID].escaped)
                dot = memchr(hid, '.', f[F_HID].len);
            if (dot)
                buf_add(out, dot + 1, f[F_HID].len - (size_t)(dot + 1 - hid));
            else
                field_decoded(raw, f, F_REALM, out);
        } else {
            field_decoded(raw, f, F_CRED_TYPE, out);
            buf_addc(out, '-');
            if (section == SEC_RT && f[F_FAMILY_ID].type == JT_STRING && f[F_FAMILY_ID].len > 0)
                field_decoded(raw, f, F_FAMILY_ID, out);
            else
                field_decoded(raw, f, F_CLIENT_ID, out);
            buf_addc(out, '-');
            if (section != SEC_RT)
                field_decoded(raw, f, F_REALM, out);
            buf_addc(out, '-');
            if (section == SEC_AT)
                field_decoded(raw, f, F_TARGET, out);
            buf_addc(out, '-');
            if (section == SEC_AT && f[F_CRED_TYPE].len != 11 /* not plain "AccessToken" */)
                field_decoded(raw, f, F_TOKEN_TYPE, out);
        }
    }
    if (out->oom)
        return 0;
    for (i = start; i < out->n; i++)
        out->p[i] = (char)lower((unsigned char)out->p[i]);
    return 1;
}

/* Unix seconds as MSAL writes them: a string of decimal digits. */
static int parse_time(const char *raw, const store_fpos *f, int id, int64_t *out)
{
    const char *p = raw + f[id].off;
    size_t i, n = f[id].len;
    int64_t v = 0;
    if (f[id].type == JT_NONE) {
        *out = -1;
        return 1;
    }
    if (n == 0 || f[id].escaped)
        return 0;
    if (n > 18)
        return -1;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

static int str_is(const char *raw, const store_fpos *f, int id, const char *want)
{
    size_t n = strlen(want);
    return f[id].type == JT_STRING && f[id].len == n && !f[id].escaped && memcmp(raw + f[id].off, want, n) == 0;
}

static int check_fields(int section, const char *raw, const store_fpos *f, int64_t *times, store_error *err,
                        const char *key, size_t kn)
{
    static const int time_fields[4] = {F_CACHED_AT, F_EXPIRES_ON, F_EXT_EXPIRES_ON, F_REFRESH_ON};
    int i;
    for (i = 0; i < NFIELDS; i++) {
        if (f[i].type == JT_NONE) {
            if (required[section] & BIT(i))
                return !!fail(err, "is required", section, i, key, kn);
        } else if (f[i].type != JT_STRING && !(i == F_HID && f[i].type == JT_NULL)) {
            return !!fail(err, "must be a string", section, i, key, kn);
        }
    }
    if ((section == SEC_IDTOKEN && !str_is(raw, f, F_CRED_TYPE, "IdToken")) ||
        (section == SEC_RT && !str_is(raw, f, F_CRED_TYPE, "RefreshToken")) ||
        (section == SEC_AT && !str_is(raw, f, F_CRED_TYPE, "AccessToken") &&
         !str_is(raw, f, F_CRED_TYPE, "AccessToken_With_AuthScheme")))
        return !!fail(err, "does not name this section's credential type", section, F_CRED_TYPE, key, kn);
    for (i = 0; i < 4; i++) {
        int r = parse_time(raw, f, time_fields[i], &times[i]);
        if (r == 0)
            return !!fail(err, "must be a string of decimal digits (Unix seconds)", section, time_fields[i], key, kn);
        if (r < 0)
            return !!fail(err, "is out of range", section, time_fields[i], key, kn);
    }
    return 1;
}

static size_t count_scopes(const char *t, size_t n)
{
    size_t i, k = 0;
    int in = 0;
    for (i = 0; i < n; i++) {
        if (t[i] != ' ' && !in)
            k++;
        in = t[i] != ' ';
    }
    return k;
}

static int in_doc(const store_doc *d, const char *p)
{
    return d && p >= d->text && p < d->text + d->len;
}

/* Text an entry keeps: where it already is when that is the document,
 * which outlives the entry, else a NUL-terminated copy at *p (moved past
 * it) in the entry's own block. */
static const char *keep(const store_doc *d, const char *s, size_t n, char **p)
{
    char *copy = *p;
    if (in_doc(d, s))
        return s;
    memcpy(copy, s, n);
    copy[n] = '\0';
    *p += n + 1;
    return copy;
}

store_entry *store_insert(store *s, int section, const char *key, size_t key_len, const char *raw, size_t raw_len,
                          const store_fpos *f, store_doc *doc, store_error *err)
{
    int64_t times[4];
    msal_buf keybuf, dec;
    size_t nscopes, i, size, ndec = 0, tn;
    uint32_t declen[NKEPT];
    store_entry *e, *old;
    uint64_t old_hhash;
    const char *t;
    char *p;
    if (raw_len > UINT32_MAX)
        return fail(err, "entry is too large", section, -1, key, key ? key_len : 0);
    buf_init(&keybuf);
    buf_init(&dec);
    if (key == NULL) {
        if (!store_make_key(section, raw, f, &keybuf))
            goto oom;
        key = keybuf.p ? keybuf.p : "";
        key_len = keybuf.n;
    }
    if (!check_fields(section, raw, f, times, err, key, key_len)) {
        buf_free(&keybuf);
        return NULL;
    }
    for (i = 0; i < NKEPT; i++) {
        size_t before = dec.n;
        if (f[i].type == JT_STRING && f[i].escaped) {
            json_unescape(raw + f[i].off, f[i].len, &dec);
            ndec++;
        }
        declen[i] = (uint32_t)(dec.n - before);
    }
    if (dec.oom)
        goto oom;
    if (f[F_TARGET].type == JT_STRING && !f[F_TARGET].escaped) {
        t = raw + f[F_TARGET].off;
        tn = f[F_TARGET].len;
    } else if (f[F_TARGET].type == JT_STRING) {
        size_t off = 0;
        for (i = 0; i < F_TARGET; i++)
            off += declen[i];
        t = dec.p + off;
        tn = declen[F_TARGET];
    } else {
        t = "";
        tn = 0;
    }
    nscopes = count_scopes(t, tn);
    size = sizeof(store_entry) + nscopes * 2 * sizeof(uint32_t);
    if (!in_doc(doc, key))
        size += key_len + 1;
    if (!in_doc(doc, raw))
        size += raw_len + 1;
    if (ndec)
        size += sizeof(store_decoded) + dec.n;
    e = in_doc(doc, raw) ? arena_alloc(doc, size) : malloc(size);
    if (e == NULL)
        goto oom;
    memset(e, 0, sizeof *e);
    e->in_arena = (uint8_t)in_doc(doc, raw);
    e->scopes = (uint32_t *)(e + 1);
    p = (char *)(e->scopes + nscopes * 2);
    if (ndec) {
        /* store_decoded holds pointers; keep it aligned */
        store_decoded *d = (store_decoded *)(((uintptr_t)p + 7) & ~(uintptr_t)7);
        size_t off = 0;
        char *dp = (char *)(d + 1);
        memcpy(dp, dec.p, dec.n);
        for (i = 0; i < NKEPT; i++) {
            d->p[i] = declen[i] || (f[i].type == JT_STRING && f[i].escaped) ? dp + off : NULL;
            d->n[i] = declen[i];
            off += declen[i];
        }
        e->dec = d;
        p = dp + dec.n;
    }
    e->key = keep(doc, key, key_len, &p);
    e->raw = keep(doc, raw, raw_len, &p);
    e->doc = in_doc(doc, raw) ? doc : NULL;
    e->key_len = key_len;
    e->raw_len = raw_len;
    for (i = 0; i < NKEPT; i++) {
        e->foff[i] = f[i].off;
        e->flen[i] = f[i].type == JT_STRING ? f[i].len : STORE_ABSENT;
    }
    /* scope offsets are relative to the target value as store_value gives it */
    t = store_value(e, F_TARGET, &tn);
    {
        size_t k = 0, j = 0;
        while (t && j < tn) {
            size_t start;
            while (j < tn && t[j] == ' ')
                j++;
            if (j >= tn)
                break;
            start = j;
            while (j < tn && t[j] != ' ')
                j++;
            e->scopes[2 * k] = (uint32_t)start;
            e->scopes[2 * k + 1] = (uint32_t)(j - start);
            k++;
        }
        e->nscopes = (uint32_t)k;
    }
    e->section = (uint8_t)section;
    e->cached_at = times[0];
    e->expires_on = times[1];
    e->ext_expires_on = times[2];
    e->refresh_on = times[3];
    set_env_group(s, e);
    {
        size_t hn, cn, rn;
        const char *hid = store_value(e, F_HID, &hn), *cid = store_value(e, F_CLIENT_ID, &cn),
                   *realm = store_value(e, F_REALM, &rn);
        e->ahash = at_hash(hid ? hid : "", hn, cid ? cid : "", cn, realm ? realm : "", rn);
    }
    e->khash = key_hash(section, e->key, key_len);
    e->hhash = entry_hhash(e);
    buf_free(&keybuf);
    buf_free(&dec);
    if (e->doc)
        e->doc->live++;
    old_hhash = e->hhash; /* unless an entry of another account is replaced */
    if ((old = get_hashed(s, section, e->key, key_len, e->khash)) != NULL) {
        /* take the replaced entry's place, so files diff and merge calmly */
        old_hhash = old->hhash;
        unlink_indexes(s, old);
        e->prev = old->prev;
        e->next = old->next;
        if (e->prev)
            e->prev->next = e;
        else
            s->head[section] = e;
        if (e->next)
            e->next->prev = e;
        else
            s->tail[section] = e;
        drop_entry(old);
        link_entry(s, e);
    } else {
        if (!ensure_capacity(s, s->total + 1, s->nat + (section == SEC_AT))) {
            drop_entry(e);
            return fail(err, "out of memory", section, -1, NULL, 0);
        }
        e->prev = s->tail[section];
        if (e->prev)
            e->prev->next = e;
        else
            s->head[section] = e;
        s->tail[section] = e;
        s->count[section]++;
        s->total++;
        if (section == SEC_AT)
            s->nat++;
        link_entry(s, e);
    }
    s->generation++;
    if (section == SEC_ACCOUNT)
        s->account_generation++;
    if (doc == NULL) { /* a put; a document's entries count from its load */
        stamp_home(s, e->hhash);
        if (old_hhash != e->hhash)
            stamp_home(s, old_hhash);
    }
    return e;
oom:
    buf_free(&keybuf);
    buf_free(&dec);
    return fail(err, "out of memory", section, -1, NULL, 0);
}

/* ---- look-ups ---- */

static int scope_in(const store_entry *e, const char *t, const char *sc, size_t n)
{
    uint32_t i;
    for (i = 0; i < e->nscopes; i++)
        if (ci_equal(t + e->scopes[2 * i], e->scopes[2 * i + 1], sc, n))
            return 1;
    return 0;
}

int store_scopes_contain(const store_entry *e, const char *scopes, size_t n)
{
    const char *p = scopes, *end = scopes + n, *t;
    size_t tn;
    t = store_value(e, F_TARGET, &tn);
    while (p < end) {
        const char *start;
        while (p < end && *p == ' ')
            p++;
        if (p >= end)
            break;
        start = p;
        while (p < end && *p != ' ')
            p++;
        if (t == NULL || !scope_in(e, t, start, (size_t)(p - start)))
            return 0;
    }
    return 1;
}

int store_find_access_token(const store *s, const char *hid, size_t hid_len, const char *env, size_t env_len,
                            const char *cid, size_t cid_len, const char *realm, size_t realm_len,
                            const char *scopes, size_t scopes_len, int64_t now, int64_t offset,
                            store_entry **found)
{
    uint64_t h;
    int group, matches = 0;
    store_entry *e;
    *found = NULL;
    if (s->acap == 0)
        return ST_NONE;
    h = at_hash(hid, hid_len, cid, cid_len, realm, realm_len);
    group = store_env_group(s, env, env_len);
    for (e = s->atab[bucket(h, s->acap)]; e; e = e->anext) {
        /* an account's tokens share the hash: the cheap tests go first */
        if (e->ahash != h || e->flen[F_CRED_TYPE] != 11) /* a PoP/SSH token never answers a bearer request */
            continue;
        if (!store_scopes_contain(e, scopes, scopes_len) || !store_entry_matches_env(s, e, group, env, env_len))
            continue;
        if (!store_field_is(e, F_HID, hid, hid_len) || !store_field_is(e, F_CLIENT_ID, cid, cid_len) ||
            !store_field_is(e, F_REALM, realm, realm_len))
            continue;
        *found = e;
        matches++;
    }
    if (matches == 0)
        return ST_NONE;
    if (matches > 1) {
        *found = NULL;
        return ST_MULTIPLE;
    }
    e = *found;
    /* cached in the future means the clock was turned back: not to be
     * trusted (a second of slack: msal-node rounds cached_at to the nearest
     * second, so its fresh tokens can be up to half a second "ahead") */
    if (e->cached_at > now + 1 || now + offset > e->expires_on)
        return ST_EXPIRED;
    if (e->refresh_on >= 0 && now > e->refresh_on)
        return ST_REFRESH_DUE;
    return ST_HIT;
}

/* ---- the document ---- */

static int parse_entry(json_scan *js, store *s, int section, const char *key, size_t kn, store_doc *doc,
                       store_error *err)
{
    store_fpos f[NFIELDS];
    const char *start;
    int dup;
    if (json_next(js) != '{') {
        fail(err, "must be an object", section, -1, key, kn);
        return 0;
    }
    start = js->p;
    if (!scan_members(js, start, f, &dup)) {
        if (dup >= 0)
            fail(err, "appears twice", section, dup, key, kn);
        return 0;
    }
    return store_insert(s, section, key, kn, start, (size_t)(js->p - start), f, doc, err) != NULL;
}

static int section_id(const char *name, size_t n)
{
    int i;
    for (i = 0; i < NSEC; i++)
        if (strlen(store_section_names[i]) == n && memcmp(store_section_names[i], name, n) == 0)
            return i;
    return -1;
}

static int add_unknown(store *s, const char *name, size_t nn, const char *raw, size_t rn)
{
    store_unknown *u = realloc(s->unknown, (s->nunknown + 1) * sizeof *u);
    if (u == NULL)
        return 0;
    s->unknown = u;
    u += s->nunknown;
    u->name = malloc(nn + 1);
    u->raw = malloc(rn + 1);
    if (u->name == NULL || u->raw == NULL) {
        free(u->name);
        free(u->raw);
        return 0;
    }
    memcpy(u->name, name, nn);
    memcpy(u->raw, raw, rn);
    u->name_len = nn;
    u->raw_len = rn;
    s->nunknown++;
    return 1;
}

const store_unknown *store_section(const store *s, const char *name, size_t n)
{
    size_t i;
    for (i = 0; i < s->nunknown; i++)
        if (s->unknown[i].name_len == n && memcmp(s->unknown[i].name, name, n) == 0)
            return &s->unknown[i];
    return NULL;
}

int store_set_section(store *s, const char *name, size_t nn, const char *raw, size_t rn)
{
    store_unknown *u = (store_unknown *)store_section(s, name, nn);
    if (section_id(name, nn) >= 0)
        return 0;
    if (u == NULL && raw == NULL)
        return 1;
    if (u == NULL) {
        if (!add_unknown(s, name, nn, raw, rn))
            return 0;
    } else if (raw == NULL) {
        size_t i = (size_t)(u - s->unknown);
        free(u->name);
        free(u->raw);
        memmove(u, u + 1, (s->nunknown - i - 1) * sizeof *u);
        s->nunknown--;
    } else {
        char *copy = malloc(rn + 1);
        if (copy == NULL)
            return 0;
        memcpy(copy, raw, rn);
        free(u->raw);
        u->raw = copy;
        u->raw_len = rn;
    }
    s->generation++;
    return 1;
}

/* Iterates the members of an object: at '{' or after a member, moves to the
 * next member's name and returns 1; returns 0 at the closing '}' (consumed)
 * and -1 on a syntax error. */
static int next_member(json_scan *js, int *first, const char **name, size_t *nn, int *esc)
{
    int c = json_next(js);
    if (*first) {
        if (c != '{')
            return json_fail(js, "expected '{'"), -1;
        js->p++;
        c = json_next(js);
        if (c == '}') {
            js->p++;
            return 0;
        }
        *first = 0;
    } else {
        if (c == '}') {
            js->p++;
            return 0;
        }
        if (c != ',')
            return json_fail(js, "expected ',' or '}'"), -1;
        js->p++;
    }
    if (json_next(js) != '"')
        return json_fail(js, "expected member name"), -1;
    if (!json_string(js, name, nn, esc) || !json_expect(js, ':'))
        return -1;
    return 1;
}

static int parse_document(json_scan *js, store *s, store_doc *doc, store_error *err)
{
    msal_buf key;
    int first = 1, ok = 0, r;
    const char *name;
    size_t nn;
    int esc;
    buf_init(&key);
    if (json_next(js) == -1)
        return 1; /* an empty file is an empty cache */
    while ((r = next_member(js, &first, &name, &nn, &esc)) == 1) {
        int sec = esc ? -1 : section_id(name, nn), efirst = 1;
        const char *k;
        size_t kn;
        int kesc;
        if (sec < 0) {
            const char *start;
            json_next(js);
            start = js->p;
            if (json_copy_value(js, NULL, 1) == JT_NONE)
                goto done;
            if (!add_unknown(s, name, nn, start, (size_t)(js->p - start))) {
                fail(err, "out of memory", -1, -1, NULL, 0);
                goto done;
            }
            continue;
        }
        if (json_next(js) != '{') {
            fail(err, "must be an object", sec, -1, NULL, 0);
            goto done;
        }
        while ((r = next_member(js, &efirst, &k, &kn, &kesc)) == 1) {
            if (kesc) {
                key.n = 0;
                json_unescape(k, kn, &key);
                if (key.oom) {
                    fail(err, "out of memory", sec, -1, NULL, 0);
                    goto done;
                }
                k = key.p ? key.p : "";
                kn = key.n;
            }
            if (!parse_entry(js, s, sec, k, kn, doc, err))
                goto done;
        }
        if (r < 0)
            goto done;
    }
    if (r < 0)
        goto done;
    if (json_next(js) != -1) {
        json_fail(js, "unexpected data after the document");
        goto done;
    }
    ok = 1;
done:
    buf_free(&key);
    return ok;
}

store *store_parse(const char *text, size_t n, const store *like, store_error *err, store_doc **docp)
{
    json_scan js;
    store *s = store_new();
    store_doc *doc = calloc(1, sizeof *doc);
    *docp = NULL;
    if (s == NULL || doc == NULL)
        goto oom;
    if (like && like->nalias &&
        !store_set_aliases(s, (const char *const *)like->alias_host, like->alias_group, like->nalias))
        goto oom;
    doc->text = text;
    doc->len = n;
    /* size the indexes for the document up front, so they are seldom rebuilt
     * while it is read. An entry with real tokens takes 1-2 KB of JSON: sized
     * for 250-byte entries, a 100-account cache's indexes were 160 KB where
     * 24 KB serve, and touching them cost a cache hit ~40 first-touch faults
     * (0.4 ms). Where entries are smaller, a table grows by doubling. */
    if (!ensure_capacity(s, n / 1024 + 1, n / 2048 + 1))
        goto oom;
    json_init(&js, text, n);
    if (!parse_document(&js, s, doc, err)) {
        if (js.err && err && err->message == NULL) {
            err->message = js.err;
            err->offset = js.err_at;
        }
        store_free(s);
        doc_free(doc);
        return NULL;
    }
    if (doc->live) {
        doc->next = s->docs;
        s->docs = doc;
        *docp = doc;
    } else {
        doc_free(doc);
    }
    return s;
oom:
    store_free(s);
    if (doc)
        doc_free(doc);
    fail(err, "out of memory", -1, -1, NULL, 0);
    return NULL;
}

int store_serialize(const store *s, msal_buf *out)
{
    size_t need = 128, i;
    int sec;
    for (sec = 0; sec < NSEC; sec++) {
        const store_entry *e;
        for (e = s->head[sec]; e; e = e->next)
            need += e->key_len + e->raw_len + 8;
    }
    for (i = 0; i < s->nunknown; i++)
        need += s->unknown[i].name_len + s->unknown[i].raw_len + 4;
    if (!buf_reserve(out, need))
        return 0;
    buf_addc(out, '{');
    for (sec = 0; sec < NSEC; sec++) {
        const store_entry *e;
        if (sec)
            buf_addc(out, ',');
        json_put_string(out, store_section_names[sec], strlen(store_section_names[sec]));
        buf_add(out, ":{", 2);
        for (e = s->head[sec]; e; e = e->next) {
            json_put_string(out, e->key, e->key_len);
            buf_addc(out, ':');
            buf_add(out, e->raw, e->raw_len);
            if (e->next)
                buf_addc(out, ',');
        }
        buf_addc(out, '}');
    }
    for (i = 0; i < s->nunknown; i++) {
        buf_add(out, ",\"", 2);
        buf_add(out, s->unknown[i].name, s->unknown[i].name_len); /* kept escaped as read */
        buf_add(out, "\":", 2);
        buf_add(out, s->unknown[i].raw, s->unknown[i].raw_len);
    }
    buf_addc(out, '}');
    return !out->oom;
}
