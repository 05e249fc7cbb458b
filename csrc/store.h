/* The token store: MSAL unified-cache entries held as compact JSON text
 * (so fields this library does not know survive untouched), with the fields
 * that look-ups need decoded once, and indexes so that finding an access
 * token costs the same for one account or ten thousand. Pure C, no Lua:
 * lstore.c is its Lua face, fuzz/ drives the parser directly. */
#ifndef MSAL_STORE_H
#define MSAL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum store_section { SEC_ACCOUNT, SEC_IDTOKEN, SEC_AT, SEC_RT, SEC_APPMETA, NSEC };

/* Fields the store knows; all are JSON strings in MSAL's format. The first
 * NKEPT are located in every entry; the rest are only checked on the way in. */
enum store_field {
    F_HID, F_ENV, F_REALM, F_LOCAL_ID, F_USERNAME, F_AUTHORITY_TYPE, F_NAME, F_CRED_TYPE, F_CLIENT_ID,
    F_SECRET, F_TARGET, F_TOKEN_TYPE, F_FAMILY_ID, NKEPT,
    F_CLIENT_INFO = NKEPT, F_CACHED_AT, F_EXPIRES_ON, F_EXT_EXPIRES_ON, F_REFRESH_ON, F_KEY_ID,
    F_LAST_MOD_TIME, F_LAST_MOD_APP, F_USER_ASSERTION_HASH, F_RESOURCE, F_ACCOUNT_SOURCE, NFIELDS
};

extern const char *const store_section_names[NSEC];
extern const char *const store_field_names[NFIELDS];

/* Where a field's value sits in an entry's raw text, found while parsing. */
typedef struct store_fpos {
    uint32_t off, len;     /* the string's inner text (between the quotes) */
    uint8_t type, escaped; /* enum json_type; JT_NONE when the field is absent */
} store_fpos;

#define STORE_ABSENT UINT32_MAX

/* A parsed document's text, shared by the entries read from it (they point
 * into it rather than copy it: at 10,000 accounts copying 30-120 MB costs
 * more than parsing it). The Lua face pins the string while live > 0. */
typedef struct store_arena store_arena;

typedef struct store_doc {
    struct store_doc *next;
    store_arena *arena; /* where its entries live: freed with the document */
    const char *text;
    size_t len;
    size_t live; /* entries still pointing into the text */
    int ref;     /* the Lua face's handle on the text */
} store_doc;

/* Decoded copies of fields whose JSON text holds escapes (rare). */
typedef struct store_decoded {
    const char *p[NKEPT];
    uint32_t n[NKEPT];
} store_decoded;

typedef struct store_entry {
    struct store_entry *prev, *next; /* section order, kept for serialize */
    struct store_entry *knext;       /* key table chain */
    struct store_entry *hnext;       /* home_account_id table chain */
    struct store_entry *anext;       /* access-token table chain */
    uint64_t khash, hhash, ahash;    /* key, home account, access-token index */
    int64_t cached_at, expires_on, ext_expires_on, refresh_on; /* -1: absent */
    const char *key, *raw;           /* key as found; the entry's JSON object */
    size_t key_len, raw_len;
    store_doc *doc;                  /* NULL when key and raw are owned */
    store_decoded *dec;              /* NULL unless a kept field has escapes */
    uint32_t foff[NKEPT], flen[NKEPT]; /* flen STORE_ABSENT: no such string */
    uint32_t *scopes;                /* nscopes (offset, length) pairs into the target */
    uint32_t nscopes;
    int env_group;                   /* alias group of the environment, -1: none */
    uint8_t section;
    uint8_t in_arena;                /* allocated in doc->arena, not malloc */
} store_entry;

typedef struct store_unknown {
    char *name, *raw; /* a top-level section this library does not know */
    size_t name_len, raw_len;
} store_unknown;

typedef struct store {
    store_entry *head[NSEC], *tail[NSEC];
    size_t count[NSEC], total;
    store_entry **ktab, **htab, **atab; /* power-of-two hash tables */
    size_t kcap, hcap, acap, nat;
    store_unknown *unknown;
    size_t nunknown;
    char **alias_host;                  /* lower-cased host -> group */
    int *alias_group;
    size_t nalias;
    store_doc *docs;
    uint64_t generation;                /* bumped by every change */
    uint64_t account_generation;        /* bumped by changes to Account entries */
    uint64_t load_generation;           /* the generation of the last load (or alias change) */
    uint64_t *hstamp; /* NULL until a put or remove after the load: per bucket of home
                       * account hashes, the generation of its last change */
} store;

typedef struct store_error {
    const char *message; /* static text */
    int section;         /* -1 when not about one entry */
    const char *field;   /* static, or NULL */
    msal_buf key;        /* the entry's key, when known */
    size_t offset;       /* byte offset for JSON syntax errors */
} store_error;

enum store_status { ST_NONE, ST_HIT, ST_REFRESH_DUE, ST_EXPIRED, ST_MULTIPLE };

store *store_new(void);
void store_free(store *s);
void store_error_init(store_error *e);
void store_error_free(store_error *e);
/* Replaces the aliases; groups[i] is the group of hosts[i]. 0 on OOM. */
int store_set_aliases(store *s, const char *const *hosts, const int *groups, size_t n);
/* Parses a unified-cache document into a new store (aliases copied from
 * like); NULL with *err filled when the text is not a valid cache. The
 * entries point into text, which must live while doc->live > 0 (*doc is
 * NULL when no entry does). */
store *store_parse(const char *text, size_t n, const store *like, store_error *err, store_doc **doc);
/* A number that changes whenever an entry of this home account is put or
 * removed, or the store is loaded again (accounts that share a stamp bucket
 * with it also change it: a cached answer is dropped too often, never kept
 * too long). */
uint64_t store_home_generation(const store *s, const char *hid, size_t n);
/* Frees the documents no entry points into any more, calling release on
 * each first so the owner can let go of the text. */
void store_release_docs(store *s, void (*release)(void *ud, store_doc *d), void *ud);
/* Appends the document. 0 on OOM. */
int store_serialize(const store *s, msal_buf *out);
store_entry *store_get(const store *s, int section, const char *key, size_t key_len);
void store_remove(store *s, store_entry *e);
/* Turns raw (a JSON object, compact, fields located in f) into an entry of
 * section, stored under key (NULL: MSAL's key computed from the fields);
 * replaces an entry of the same key. raw and key are copied unless doc is
 * given: then they point into its text. */
store_entry *store_insert(store *s, int section, const char *key, size_t key_len,
                          const char *raw, size_t raw_len, const store_fpos *f, store_doc *doc,
                          store_error *err);
/* Locates the known fields of a compact JSON object. 0 if it is not one. */
int store_locate_fields(const char *raw, size_t raw_len, store_fpos *f);
/* A top-level section of the document this library keeps but does not
 * read as entries (name as written, escapes kept), or NULL. */
const store_unknown *store_section(const store *s, const char *name, size_t n);
/* Sets such a section's JSON value (raw, compact) or, raw NULL, removes
 * it; a change of the store (its generation). 0 on OOM or when name is one
 * of the five entry sections. */
int store_set_section(store *s, const char *name, size_t nn, const char *raw, size_t rn);
/* MSAL's (msal-node 7) cache key for an entry with the given fields. */
int store_make_key(int section, const char *raw, const store_fpos *f, msal_buf *out);
/* A kept field's value with escapes undone; NULL when absent. */
const char *store_value(const store_entry *e, int field, size_t *n);
/* Compares a kept field without case; an absent field equals "". */
int store_field_is(const store_entry *e, int field, const char *v, size_t n);
int store_env_group(const store *s, const char *lc_host, size_t n);
/* The access token for (home account, environment, client, realm) whose
 * target holds every scope of scopes_lc (space-separated, lower-case). */
int store_find_access_token(const store *s, const char *hid, size_t hid_len, const char *env, size_t env_len,
                            const char *cid, size_t cid_len, const char *realm, size_t realm_len,
                            const char *scopes_lc, size_t scopes_len, int64_t now, int64_t offset,
                            store_entry **found);
/* Whether the entry's target holds every space-separated scope given. */
int store_scopes_contain(const store_entry *e, const char *scopes, size_t n);
int store_entry_matches_env(const store *s, const store_entry *e, int group, const char *env, size_t n);
/* The hash of a home_account_id (without case) that htab's buckets and
 * store_entry.hhash use. */
uint64_t store_hid_hash(const char *hid, size_t n);

#endif
