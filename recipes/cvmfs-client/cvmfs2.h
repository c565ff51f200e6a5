/* cvmfs2: a read-only FUSE client for appbuild's CernVM-FS-style repositories.
 *
 * Modules:
 *   config.c    /etc/cvmfs/default.conf, default.local, config.d/REPO.conf, .local
 *   log.c       messages to stderr and to $CVMFS_USYSLOG
 *   http.c      a small HTTP/1.1 GET over sockets, direct or through a proxy
 *   download.c  servers and proxies with CernVM-FS semantics, hash checks, inflate
 *   cache.c     the local cache directory with its quota (LRU eviction)
 *   manifest.c  the signed manifest, and the keys trusted for a repository (the whitelist)
 *   tags.c      the signed tag list (.cvmfstags): tag name -> revision -> catalog
 *   trust.c     the newest acceptable manifest or tag list: from a server (refused, with
 *               the reason, when its key is not listed for the repository, its signature
 *               is bad, it is another repository's, it has no expiry or is past it, or it
 *               is older than the cached verified copy: a replay), else the cached copy
 *   crypto.c    SHA-256 and Ed25519 (libsodium)
 *   catalog.c   the SQLite catalog of the tree (schema 1 and 2), and differences of two
 *   main.c      command line, mounting (the newest revision, or a tag), the FUSE
 *               (low-level API) operations, the tool modes --tags and --diff
 */
#ifndef CVMFS2_H
#define CVMFS2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sqlite3.h>
#include <stdio.h>

#define CVMFS_VERSION "1.0"
#define HASH_HEX 64
#define MAX_LIST 32

#define SHA256_BYTES 32
#define ED25519_KEY_BYTES 32
#define ED25519_SIG_BYTES 64

/* ------------------------------------------------------------------ crypto.c */
struct sha256 {
    void *ctx;  /* EVP_MD_CTX */
};
void sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *data, size_t len);
void sha256_final(struct sha256 *h, unsigned char out[SHA256_BYTES]);
void sha256_free(struct sha256 *h);
void sha256_once(const void *data, size_t len, unsigned char out[SHA256_BYTES]);
/* 0 if sig is key's signature of msg */
int ed25519_verify(const unsigned char key[ED25519_KEY_BYTES], const unsigned char sig[ED25519_SIG_BYTES],
                   const unsigned char *msg, size_t len);
int base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outmax, size_t *outlen);
/* exactly outlen bytes of hex (blanks around allowed); 0 or -1 */
int hex_decode(const char *in, unsigned char *out, size_t outlen);

/* ------------------------------------------------------------------ log.c */
enum { LOG_ERR_ = 0, LOG_WARN_ = 1, LOG_INFO_ = 2, LOG_DEBUG_ = 3 };
void log_open(const char *path, const char *repo, int to_stderr, int debug);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_stderr_off(void);

/* ------------------------------------------------------------------ config.c */
struct config;
struct config *config_load(const char *dir, const char *repo, char *err, size_t errlen);
const char *config_get(const struct config *c, const char *key, const char *fallback);
long config_long(const struct config *c, const char *key, long fallback);
void config_free(struct config *c);
/* replaces @fqrn@ and @org@ in s (a new string) */
char *expand_repo(const char *s, const char *repo);

/* ------------------------------------------------------------------ http.c */
struct url {
    char host[256];
    char port[8];
    char path[1024];  /* without a trailing slash */
};
int url_parse(const char *text, struct url *u, char *err, size_t errlen);

/* where a failure lies: decides what the failover tries next */
enum fetch_status {
    FETCH_OK = 0,
    FETCH_PROXY_ERR,   /* the proxy cannot be reached or cannot serve: next proxy */
    FETCH_HOST_ERR,    /* the server (directly) cannot be reached, or said 404/5xx: next server */
    FETCH_DATA_ERR,    /* the bytes arrived but are wrong (hash, zlib): evict, try elsewhere */
    FETCH_LOCAL_ERR,   /* we cannot store what arrived (disk full): stop */
};

typedef int (*body_sink)(void *ctx, const unsigned char *data, size_t len);
int http_get(const struct url *server, const char *path, const struct url *proxy, int timeout_s,
             int no_cache, body_sink sink, void *ctx, char *err, size_t errlen);

/* ------------------------------------------------------------------ download.c */
struct proxy {
    struct url url;
    int direct;
    int group;
    time_t failed_at;  /* 0: believed good */
    char text[300];
};

struct fetcher {
    struct url hosts[MAX_LIST];
    int nhosts;
    int host;  /* the server that answered last */
    struct proxy proxies[MAX_LIST];
    int nproxies;
    int ngroups;
    int proxy;  /* the proxy that answered last, -1 before */
    int timeout_proxy, timeout_direct, max_retries;
    long reset_after;
};

int fetcher_init(struct fetcher *f, const char *servers, const char *proxies, char *err, size_t errlen);
/* a file in the repository, verbatim (the manifest) into a malloc'd buffer, never a
 * proxy's cached copy; check (if given) accepts or refuses what arrived, a refusal
 * counts as bad data (next proxy/server) */
typedef int (*raw_check)(void *ctx, const unsigned char *data, size_t len, char *err, size_t errlen);
enum fetch_status fetch_raw(struct fetcher *f, const char *relpath, unsigned char **out, size_t *outlen,
                            size_t maxlen, raw_check check, void *check_ctx, char *err, size_t errlen);
/* an object: checked against its hash, inflated into fd; *size is the inflated size */
enum fetch_status fetch_object(struct fetcher *f, const char *hash, const char *suffix, int fd, uint64_t *size,
                               char *err, size_t errlen);
const char *fetcher_host(const struct fetcher *f);
const char *fetcher_proxy(const struct fetcher *f);

/* ------------------------------------------------------------------ cache.c */
struct cache;
/* the mount's cache: locked (one mount per cache), with its quota */
struct cache *cache_open(const char *dir, uint64_t limit, char *err, size_t errlen);
/* the tool modes' view of the same cache: no lock, no quota; they only add catalogs and
 * newer verified manifests and tag lists (temporary file, then rename) */
struct cache *cache_open_shared(const char *dir, char *err, size_t errlen);
/* an open fd of the cached object of *size* bytes, or -1 (errno ENOENT if not cached, or cached
 * with another size: then it is removed); pins it */
int cache_open_object(struct cache *c, const char *hash, uint64_t size);
/* make room, download through fetch_object and commit; an open fd (pinned), or -errno */
int cache_fetch_object(struct cache *c, struct fetcher *f, const char *hash, uint64_t size, char *err, size_t errlen);
void cache_unpin(struct cache *c, const char *hash);
uint64_t cache_used(const struct cache *c);
uint64_t cache_limit(const struct cache *c);
/* the quota, or less when the file system under the cache has less room (see cache.c) */
uint64_t cache_effective_limit(const struct cache *c);
/* the catalog database of hash: cached, or downloaded and checked; path in out */
int cache_catalog(struct cache *c, struct fetcher *f, const char *hash, const char *repo, int offline, char *out,
                  size_t outlen, char *err, size_t errlen);
/* a small file of the cache (name: "manifest", "tags"), replaced atomically; 0 or -1 */
int cache_store_file(struct cache *c, const char *name, const unsigned char *data, size_t len);
/* its bytes in a malloc'd buffer; 0, or -1 when there is none */
int cache_load_file(struct cache *c, const char *name, unsigned char **data, size_t *len);
void cache_close(struct cache *c);

/* ------------------------------------------------------------------ manifest.c */
struct manifest {
    char catalog[HASH_HEX + 1];
    uint64_t catalog_size;
    uint64_t revision;
    char repo[256];
    int64_t timestamp;
    int64_t expires;  /* 0: none */
    long ttl;
    char key_id[17];
};
struct keyring {
    unsigned char keys[MAX_LIST][ED25519_KEY_BYTES];
    char ids[MAX_LIST][17];
    int n;
    char where[1024];  /* where the keys were looked for (for messages) */
};
/* the keys trusted for repo: the files of keyfiles (':'-separated) if given, else
 * keydir/REPO.pub, keydir/REPO/ *.pub and keydir/DOMAIN/ *.pub (DOMAIN: repo without
 * its first label) */
int keyring_load(struct keyring *k, const char *keyfiles, const char *keydir, const char *repo, char *err,
                 size_t errlen);
/* the split of a signed file (manifest, tag list): a malloc'd copy of the body (NUL-
 * terminated, *body_len bytes signed) and the signature; what names it in messages */
int signed_split(const unsigned char *data, size_t len, const char *what, char **body, size_t *body_len,
                 unsigned char sig[ED25519_SIG_BYTES], char *err, size_t errlen);
/* key_id listed in k and its signature over data[0:body_len] good; 0, or -1 with the reason */
int signed_check(const struct keyring *k, const char *what, const char *repo, const char *key_id,
                 const unsigned char sig[ED25519_SIG_BYTES], const unsigned char *data, size_t body_len,
                 char *err, size_t errlen);
/* 0 when expires is set and after now, else -1 with the reason */
int expiry_check(const char *what, int64_t expires, int64_t now, char *err, size_t errlen);
/* now: check the expiry against it; 0: do not (a cached copy, verified when fetched) */
int manifest_verify(const unsigned char *data, size_t len, const struct keyring *k, const char *repo, int64_t now,
                    struct manifest *m, char *err, size_t errlen);
void hex_encode(const unsigned char *in, size_t n, char *out);
/* 2025-01-31T12:00:00Z */
const char *iso_time(int64_t t, char buf[32]);
/* a whole unsigned decimal number (digits only): 0, or -1 */
int parse_number(const char *v, uint64_t *out);

/* ------------------------------------------------------------------ tags.c */
#define TAG_NAME_MAX 128
struct tag {
    char name[TAG_NAME_MAX + 1];
    uint64_t revision;
    char catalog[HASH_HEX + 1];
    uint64_t catalog_size;
    int64_t timestamp;
};
struct taglist {
    char repo[256];
    uint64_t revision;
    int64_t timestamp, expires;
    char key_id[17];
    struct tag *tags;  /* malloc'd, in the list's order: revision ascending, the last the newest */
    int n;
};
/* parses and verifies (as manifest_verify; frees what t held before) */
int taglist_verify(const unsigned char *data, size_t len, const struct keyring *k, const char *repo, int64_t now,
                   struct taglist *t, char *err, size_t errlen);
/* the tag called name ("latest": the newest), or NULL with err naming the tags there are */
const struct tag *taglist_get(const struct taglist *t, const char *name, char *err, size_t errlen);
void taglist_free(struct taglist *t);

/* ------------------------------------------------------------------ trust.c */
struct trust {
    struct fetcher *fetcher;
    struct cache *cache;
    const struct keyring *keys;
    const char *repo;
};
enum { TRUST_ONLINE = 0, TRUST_OFFLINE = 1, TRUST_FAILED = -1 };
/* the newest acceptable manifest: TRUST_ONLINE (from a server; kept in the cache),
 * TRUST_OFFLINE (the cached copy; why says why no server's copy was taken) or
 * TRUST_FAILED (why says why) */
int trust_manifest(const struct trust *t, struct manifest *m, char *why, size_t whylen);
int trust_tags(const struct trust *t, struct taglist *tl, char *why, size_t whylen);

/* ------------------------------------------------------------------ catalog.c */
struct entry {
    uint64_t inode, parent;
    char name[256];
    uint32_t mode;
    uint64_t size;
    int64_t mtime;
    char hash[HASH_HEX + 1];
    char *symlink;  /* malloc'd, or NULL */
    uint32_t nlink;
    uint32_t uid, gid;
    uint64_t rdev;  /* devices: the Linux dev_t */
};
struct catalog;
struct catalog *catalog_open(const char *path, const char *repo, char *err, size_t errlen);
int catalog_get(struct catalog *c, uint64_t inode, struct entry *e);           /* 0, or -ENOENT/-EIO */
int catalog_lookup(struct catalog *c, uint64_t parent, const char *name, struct entry *e);
/* calls fn for each child of inode in name order; returns 0 or -errno */
int catalog_list(struct catalog *c, uint64_t inode, int (*fn)(void *ctx, const struct entry *e), void *ctx);
uint64_t catalog_count(struct catalog *c);
void entry_clear(struct entry *e);
void catalog_close(struct catalog *c);
/* the paths whose entries differ from a to b, sorted, one line each to out: "M /path"
 * (type, mode, owner, group, device, content or link target differ), "A /path" (only
 * in b), "D /path" (only in a); 0, or -1 with err */
int catalog_diff(struct catalog *a, struct catalog *b, FILE *out, char *err, size_t errlen);

#endif
