/* Downloads with CernVM-FS's failover semantics.
 *
 * CVMFS_SERVER_URL is a ';'-separated list of servers, tried in order (starting from
 * the one that answered last). CVMFS_HTTP_PROXY is a list of proxy groups separated
 * by ';', the proxies of a group separated by '|': within a group the load is
 * balanced (a random member first), the next group is used only when every proxy of
 * the current one failed; DIRECT means no proxy. A proxy that failed is skipped for
 * CVMFS_PROXY_RESET_AFTER seconds (unless every proxy failed).
 *
 * What fails decides what is tried next: a proxy that cannot be reached (or answers
 * 502/503/504) -> the next proxy; a server that cannot be reached directly or
 * answers 404/5xx -> the next server; an object whose bytes do not hash to its name
 * (or do not inflate) is discarded, fetched once more through the same proxy with
 * "Cache-Control: no-cache" (so the proxy drops its copy), then from the next proxy
 * and the next server. The manifest is always asked for with "Cache-Control: no-cache":
 * objects never change, the manifest does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cvmfs2.h"

static int split(char *s, const char *sep, char **out, int max)
{
    int n = 0;
    for (char *save, *tok = strtok_r(s, sep, &save); tok && n < max; tok = strtok_r(NULL, sep, &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = 0;
        if (*tok)
            out[n++] = tok;
    }
    return n;
}

int fetcher_init(struct fetcher *f, const char *servers, const char *proxies, char *err, size_t errlen)
{
    char buf[8192], *items[MAX_LIST], *groups[MAX_LIST];

    memset(f, 0, sizeof *f);
    f->proxy = -1;
    snprintf(buf, sizeof buf, "%s", servers ? servers : "");
    int n = split(buf, ";,", items, MAX_LIST);
    for (int i = 0; i < n; i++)
        if (url_parse(items[i], &f->hosts[f->nhosts++], err, errlen) < 0)
            return -1;
    if (f->nhosts == 0) {
        snprintf(err, errlen, "CVMFS_SERVER_URL names no server");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", proxies && *proxies ? proxies : "DIRECT");
    int ng = split(buf, ";", groups, MAX_LIST);
    for (int g = 0; g < ng; g++) {
        int m = split(groups[g], "|", items, MAX_LIST);
        for (int i = 0; i < m && f->nproxies < MAX_LIST; i++) {
            struct proxy *p = &f->proxies[f->nproxies];
            snprintf(p->text, sizeof p->text, "%s", items[i]);
            p->group = f->ngroups;
            if (strcasecmp(items[i], "DIRECT") == 0)
                p->direct = 1;
            else if (strcasecmp(items[i], "auto") == 0) {
                log_msg(LOG_WARN_, "proxy 'auto' (WPAD) is not supported; skipping it");
                continue;
            } else if (url_parse(items[i], &p->url, err, errlen) < 0)
                return -1;
            f->nproxies++;
        }
        f->ngroups++;
    }
    if (f->nproxies == 0) {
        snprintf(err, errlen, "CVMFS_HTTP_PROXY names no usable proxy (use DIRECT for none)");
        return -1;
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    return 0;
}

const char *fetcher_host(const struct fetcher *f)
{
    static char text[1400];
    snprintf(text, sizeof text, "http://%s:%s%s", f->hosts[f->host].host, f->hosts[f->host].port,
             f->hosts[f->host].path);
    return text;
}

const char *fetcher_proxy(const struct fetcher *f)
{
    return f->proxy < 0 ? "" : f->proxies[f->proxy].text;
}

/* the proxies to try, in order: the last good one first, then each group in turn
 * (a random member first: load balancing), leaving out those that failed lately */
static int proxy_order(struct fetcher *f, int *order)
{
    time_t now = time(NULL);
    int n = 0, usable = 0;

    for (int i = 0; i < f->nproxies; i++)
        if (!f->proxies[i].failed_at || now - f->proxies[i].failed_at >= f->reset_after)
            usable++;
    if (usable == 0) {  /* everything failed: try them all again */
        log_msg(LOG_INFO_, "every proxy failed lately; trying them all again");
        for (int i = 0; i < f->nproxies; i++)
            f->proxies[i].failed_at = 0;
    }
    for (int g = 0; g < f->ngroups; g++) {
        int members[MAX_LIST], m = 0;
        for (int i = 0; i < f->nproxies; i++) {
            struct proxy *p = &f->proxies[i];
            if (p->group == g && (!p->failed_at || now - p->failed_at >= f->reset_after))
                members[m++] = i;
        }
        if (m == 0)
            continue;
        int start = rand() % m;
        for (int i = 0; i < m; i++)
            if (members[i] == f->proxy)
                start = i;
        for (int i = 0; i < m; i++)
            order[n++] = members[(start + i) % m];
    }
    return n;
}

struct sinkops {
    void (*reset)(void *ctx);
    body_sink sink;
    /* after a complete body: 0, or a FETCH_* status with err set */
    int (*finish)(void *ctx, char *err, size_t errlen);
    /* why the sink refused the data, if it did */
    const char *(*problem)(void *ctx);
};

/* always_fresh: ask proxies for a fresh copy from the first attempt (the manifest) */
static enum fetch_status fetch_with(struct fetcher *f, const char *relpath, const struct sinkops *ops, void *ctx,
                                    int always_fresh, char *err, size_t errlen)
{
    enum fetch_status last = FETCH_HOST_ERR;
    char why[1024], bad_data[1024] = "";

    snprintf(err, errlen, "no server tried");
    for (int hi = 0; hi < f->nhosts; hi++) {
        int h = (f->host + hi) % f->nhosts, order[MAX_LIST];
        int n = proxy_order(f, order), reached_host = 0;
        for (int oi = 0; oi < n; oi++) {
            struct proxy *p = &f->proxies[order[oi]];
            int timeout = p->direct ? f->timeout_direct : f->timeout_proxy;
            for (int attempt = 0; attempt <= f->max_retries; attempt++) {
                ops->reset(ctx);
                why[0] = 0;
                enum fetch_status st = http_get(&f->hosts[h], relpath, p->direct ? NULL : &p->url, timeout,
                                                always_fresh || attempt > 0, ops->sink, ctx, why, sizeof why);
                if (st == FETCH_OK)
                    st = ops->finish(ctx, why, sizeof why);
                else if ((st == FETCH_DATA_ERR || st == FETCH_LOCAL_ERR) && ops->problem(ctx)[0])
                    snprintf(why, sizeof why, "%s", ops->problem(ctx));
                if (st == FETCH_OK) {
                    if (hi > 0)
                        log_msg(LOG_INFO_, "switched to server %s:%s%s", f->hosts[h].host, f->hosts[h].port,
                                f->hosts[h].path);
                    f->host = h;
                    f->proxy = order[oi];
                    p->failed_at = 0;
                    return FETCH_OK;
                }
                last = st;
                snprintf(err, errlen, "%s", why);
                log_msg(LOG_WARN_, "%s: %s [server %s:%s%s, proxy %s]", relpath, why, f->hosts[h].host,
                        f->hosts[h].port, f->hosts[h].path, p->text);
                if (st == FETCH_LOCAL_ERR)
                    return st;
                if (st == FETCH_PROXY_ERR) {
                    p->failed_at = time(NULL);
                    log_msg(LOG_WARN_, "proxy %s failed; skipping it for %ld s", p->text, f->reset_after);
                    break;
                }
                reached_host = 1;
                if (st == FETCH_HOST_ERR)
                    goto next_host;
                snprintf(bad_data, sizeof bad_data, "%s", why);
                /* FETCH_DATA_ERR: the bytes are evicted; once more without the proxy's cached copy */
                if (p->direct)
                    break;
            }
        }
        if (!reached_host)  /* no proxy could be used at all: other servers would not fare better */
            break;
    next_host:;
    }
    if (bad_data[0]) {  /* some server sent wrong bytes: that is the failure to report, not a timeout */
        snprintf(err, errlen, "%s", bad_data);
        return FETCH_DATA_ERR;
    }
    return last;
}

/* ---------------------------------------------------------------- raw files */

struct raw_ctx {
    unsigned char *data;
    size_t len, cap, max;
    raw_check check;
    void *check_ctx;
    char problem[1024];
};

static void raw_reset(void *ctx)
{
    ((struct raw_ctx *)ctx)->len = 0;
}

static int raw_sink(void *ctx, const unsigned char *data, size_t len)
{
    struct raw_ctx *r = ctx;
    if (r->len + len > r->max)
        return FETCH_DATA_ERR;
    if (r->len + len > r->cap) {
        r->cap = (r->len + len) * 2;
        r->data = realloc(r->data, r->cap);
    }
    memcpy(r->data + r->len, data, len);
    r->len += len;
    return 0;
}

static int raw_finish(void *ctx, char *err, size_t errlen)
{
    struct raw_ctx *r = ctx;
    if (r->check && r->check(r->check_ctx, r->data, r->len, err, errlen) != 0)
        return FETCH_DATA_ERR;
    return FETCH_OK;
}

static const char *raw_problem(void *ctx)
{
    struct raw_ctx *r = ctx;
    snprintf(r->problem, sizeof r->problem, "the file is larger than %zu bytes", r->max);
    return r->problem;
}

enum fetch_status fetch_raw(struct fetcher *f, const char *relpath, unsigned char **out, size_t *outlen,
                            size_t maxlen, raw_check check, void *check_ctx, char *err, size_t errlen)
{
    static const struct sinkops ops = {raw_reset, raw_sink, raw_finish, raw_problem};
    struct raw_ctx r = {.max = maxlen, .check = check, .check_ctx = check_ctx};
    enum fetch_status st = fetch_with(f, relpath, &ops, &r, 1, err, errlen);
    if (st != FETCH_OK) {
        free(r.data);
        return st;
    }
    *out = r.data;
    *outlen = r.len;
    return st;
}

/* ---------------------------------------------------------------- objects */

struct object_ctx {
    const char *hash;
    int fd;
    struct sha256 sha;
    z_stream z;
    int z_open, z_end, failed;
    uint64_t size;
    char problem[256];
};

static void object_reset(void *ctx)
{
    struct object_ctx *o = ctx;
    sha256_free(&o->sha);
    sha256_init(&o->sha);
    if (o->z_open)
        inflateEnd(&o->z);
    memset(&o->z, 0, sizeof o->z);
    inflateInit(&o->z);
    o->z_open = 1;
    o->z_end = o->failed = 0;
    o->size = 0;
    o->problem[0] = 0;
    if (ftruncate(o->fd, 0) < 0 || lseek(o->fd, 0, SEEK_SET) < 0)
        o->failed = FETCH_LOCAL_ERR;
}

static int object_sink(void *ctx, const unsigned char *data, size_t len)
{
    struct object_ctx *o = ctx;
    static unsigned char out[256 * 1024];  /* single-threaded, as above */

    if (o->failed)
        return o->failed;
    sha256_update(&o->sha, data, len);
    if (o->z_end) {  /* bytes after the end of the stream: still hashed, the hash decides */
        if (!o->problem[0])
            snprintf(o->problem, sizeof o->problem, "data after the end of the zlib stream");
        return 0;
    }
    o->z.next_in = (unsigned char *)data;
    o->z.avail_in = len;
    while (o->z.avail_in > 0 && !o->z_end) {
        o->z.next_out = out;
        o->z.avail_out = sizeof out;
        int rc = inflate(&o->z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            /* keep hashing what arrives: the hash check names the problem first */
            snprintf(o->problem, sizeof o->problem, "not a valid zlib stream (%s)", o->z.msg ? o->z.msg : "?");
            o->z_end = 1;
            return 0;
        }
        size_t n = sizeof out - o->z.avail_out;
        for (size_t done = 0; done < n;) {
            ssize_t w = write(o->fd, out + done, n - done);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                snprintf(o->problem, sizeof o->problem, "cannot write to the cache: %s", strerror(errno));
                o->failed = FETCH_LOCAL_ERR;
                return o->failed;
            }
            done += w;
        }
        o->size += n;
        if (rc == Z_STREAM_END)
            o->z_end = 1;
        if (rc == Z_BUF_ERROR)
            break;
    }
    return 0;
}

static int object_finish(void *ctx, char *err, size_t errlen)
{
    struct object_ctx *o = ctx;
    unsigned char digest[SHA256_BYTES];
    char hex[HASH_HEX + 1];

    sha256_final(&o->sha, digest);
    hex_encode(digest, sizeof digest, hex);
    if (strcmp(hex, o->hash) != 0) {
        snprintf(err, errlen, "hash mismatch: the object %s arrived with hash %s; evicted", o->hash, hex);
        return FETCH_DATA_ERR;
    }
    if (o->problem[0] || !o->z_end) {
        snprintf(err, errlen, "object %s: %s", o->hash, o->problem[0] ? o->problem : "truncated zlib stream");
        return FETCH_DATA_ERR;
    }
    return FETCH_OK;
}

static const char *object_problem(void *ctx)
{
    return ((struct object_ctx *)ctx)->problem;
}

enum fetch_status fetch_object(struct fetcher *f, const char *hash, const char *suffix, int fd, uint64_t *size,
                               char *err, size_t errlen)
{
    static const struct sinkops ops = {object_reset, object_sink, object_finish, object_problem};
    struct object_ctx o = {.hash = hash, .fd = fd};
    char relpath[128];

    snprintf(relpath, sizeof relpath, "/data/%.2s/%s%s", hash, hash + 2, suffix);
    enum fetch_status st = fetch_with(f, relpath, &ops, &o, 0, err, errlen);
    if (o.z_open)
        inflateEnd(&o.z);
    sha256_free(&o.sha);
    *size = o.size;
    return st;
}
