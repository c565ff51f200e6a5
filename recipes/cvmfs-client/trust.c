/* The newest acceptable manifest or tag list of a repository.
 *
 * The cached copy (the cache's "manifest" or "tags": the newest copy that verified
 * when it was fetched) is read first and verified again (keys, signature, repository;
 * not its expiry). Then the servers are asked (never a proxy's cached copy), in
 * order; a copy is refused, the reason logged (on stderr before the client detaches,
 * and in the log), when its key is not listed for the repository, its signature is
 * bad, it names another repository, it has no expiry or is past it, or it is older
 * than the cached copy: (revision S, time T) less than the cached (S, T), a replay. A
 * refused copy counts as that server failing: the next one is asked. An accepted copy
 * newer than the cached one replaces it (temporary file, then rename: a mount and the
 * tool modes may share the cache). With no server left, the cached copy is used
 * (offline) even past its expiry: it was verified when it was fetched; the caller says
 * so, with why (trust_* return TRUST_OFFLINE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cvmfs2.h"

struct kind {
    const char *what, *relpath, *cache_name;
    size_t maxlen;
    int (*verify)(const unsigned char *data, size_t len, const struct keyring *k, const char *repo, int64_t now,
                  void *obj, char *err, size_t errlen);
    void (*version)(const void *obj, uint64_t *revision, int64_t *timestamp);
    void (*release)(void *obj);  /* what verify allocated */
};

struct check_ctx {
    const struct kind *kind;
    const struct trust *t;
    void *obj;
    int have_old;
    uint64_t old_revision;
    int64_t old_timestamp;
};

static int check(void *ctx, const unsigned char *data, size_t len, char *err, size_t errlen)
{
    struct check_ctx *c = ctx;
    uint64_t revision;
    int64_t timestamp;
    char at[32], old_at[32];

    if (c->kind->verify(data, len, c->t->keys, c->t->repo, (int64_t)time(NULL), c->obj, err, errlen) < 0)
        return -1;
    c->kind->version(c->obj, &revision, &timestamp);
    if (c->have_old && (revision < c->old_revision || (revision == c->old_revision && timestamp < c->old_timestamp))) {
        snprintf(err, errlen, "replay: the %s has revision %llu signed %s, older than the cached verified copy "
                 "(revision %llu signed %s)", c->kind->what, (unsigned long long)revision, iso_time(timestamp, at),
                 (unsigned long long)c->old_revision, iso_time(c->old_timestamp, old_at));
        return -1;
    }
    return 0;
}

static int load(const struct kind *kind, const struct trust *t, void *obj, void *cached_obj, size_t objsize,
                char *why, size_t whylen)
{
    unsigned char *cached = NULL, *data = NULL;
    size_t cached_len = 0, len = 0;
    char reason[1024];
    struct check_ctx ctx = {.kind = kind, .t = t, .obj = obj};

    if (cache_load_file(t->cache, kind->cache_name, &cached, &cached_len) == 0) {
        ctx.have_old = kind->verify(cached, cached_len, t->keys, t->repo, 0, cached_obj, reason, sizeof reason) == 0;
        if (ctx.have_old)
            kind->version(cached_obj, &ctx.old_revision, &ctx.old_timestamp);
        else
            log_msg(LOG_WARN_, "ignoring the cached %s: %s", kind->what, reason);
    }
    free(cached);
    enum fetch_status st = fetch_raw(t->fetcher, kind->relpath, &data, &len, kind->maxlen, check, &ctx, reason,
                                     sizeof reason);
    if (st == FETCH_OK) {
        uint64_t revision;
        int64_t timestamp;
        kind->version(obj, &revision, &timestamp);
        if ((!ctx.have_old || revision != ctx.old_revision || timestamp != ctx.old_timestamp) &&
            cache_store_file(t->cache, kind->cache_name, data, len) < 0)
            log_msg(LOG_WARN_, "cannot keep the %s in the cache (offline use will not work)", kind->what);
        free(data);
        if (ctx.have_old)
            kind->release(cached_obj);
        return TRUST_ONLINE;
    }
    kind->release(obj);  /* what the last refused copy left */
    if (st == FETCH_DATA_ERR)
        snprintf(why, whylen, "no server offers a %s this client accepts (%s)", kind->what, reason);
    else if (strncmp(reason, "HTTP ", 5) == 0)  /* reached, but it has none (a 404) or failed (5xx) */
        snprintf(why, whylen, "no server has the %s (%s)", kind->what, reason);
    else
        snprintf(why, whylen, "no server can be reached (%s)", reason);
    if (!ctx.have_old) {
        size_t n = strlen(why);
        snprintf(why + n, whylen - n, " and there is no cached %s", kind->what);
        return TRUST_FAILED;
    }
    memcpy(obj, cached_obj, objsize);
    memset(cached_obj, 0, objsize);
    return TRUST_OFFLINE;
}

/* ---------------------------------------------------------------- the manifest */

static int manifest_verify_(const unsigned char *data, size_t len, const struct keyring *k, const char *repo,
                            int64_t now, void *obj, char *err, size_t errlen)
{
    return manifest_verify(data, len, k, repo, now, obj, err, errlen);
}

static void manifest_version(const void *obj, uint64_t *revision, int64_t *timestamp)
{
    const struct manifest *m = obj;
    *revision = m->revision;
    *timestamp = m->timestamp;
}

static void manifest_release(void *obj)
{
    (void)obj;
}

static const struct kind MANIFEST = {"manifest", "/.cvmfspublished", "manifest", 1 << 20, manifest_verify_,
                                     manifest_version, manifest_release};

int trust_manifest(const struct trust *t, struct manifest *m, char *why, size_t whylen)
{
    struct manifest cached;
    memset(&cached, 0, sizeof cached);
    return load(&MANIFEST, t, m, &cached, sizeof cached, why, whylen);
}

/* ---------------------------------------------------------------- the tag list */

static int tags_verify(const unsigned char *data, size_t len, const struct keyring *k, const char *repo, int64_t now,
                       void *obj, char *err, size_t errlen)
{
    return taglist_verify(data, len, k, repo, now, obj, err, errlen);
}

static void tags_version(const void *obj, uint64_t *revision, int64_t *timestamp)
{
    const struct taglist *t = obj;
    *revision = t->revision;
    *timestamp = t->timestamp;
}

static void tags_release(void *obj)
{
    taglist_free(obj);
}

static const struct kind TAGS = {"tag list", "/.cvmfstags", "tags", 16 << 20, tags_verify, tags_version,
                                 tags_release};

int trust_tags(const struct trust *t, struct taglist *tl, char *why, size_t whylen)
{
    struct taglist cached;
    memset(&cached, 0, sizeof cached);
    memset(tl, 0, sizeof *tl);
    int rc = load(&TAGS, t, tl, &cached, sizeof cached, why, whylen);
    taglist_free(&cached);
    return rc;
}
