/* The local cache of one repository (CVMFS_CACHE_BASE/REPO):
 *
 *   data/ab/cdef...      file contents, inflated, named by their object's hash
 *   catalogs/HASH.db     catalogs, inflated (ready for SQLite)
 *   manifest, tags       the newest manifest and tag list that verified (for offline
 *                        mounts, and the baseline of the replay check)
 *   txn/                 downloads in progress (renamed into place when verified)
 *   lock                 held while mounted: one mount per cache
 *
 * The tool modes (cvmfs2 --tags, --diff) use the cache beside a running mount: they
 * take no lock, and only add what is complete (a catalog, a newer manifest or tag
 * list) by writing a temporary file in txn/ ("tool.*", which a mount starting meanwhile
 * leaves alone) and renaming it into place; readers see the old file or the new one.
 *
 * The rule: the cache may hold up to its quota (CVMFS_QUOTA_LIMIT, MB; -1: none) as
 * long as the file system under it has room, and always leaves RESERVE free there for
 * everything else. So its effective limit is the smaller of the quota and what it holds
 * plus the file system's free space (minus RESERVE); it moves as the disk fills or is
 * grown. At mount the log gives the quota and the free space, and a warning with the
 * effective limit when the disk is what limits the cache. When something new does not
 * fit, the least recently used entries that are not open (and not the mounted catalog)
 * are evicted; if that is not enough the open fails (ENOSPC) and the log says which
 * limit was reached: "the cache is full (quota)" or "the disk is full".
 * The order of use is kept in the files' modification times, so it survives a
 * remount; the index itself is an in-memory SQLite table rebuilt at mount time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cvmfs2.h"

#define RESERVE (1u << 20)  /* keep this much free on the file system */
enum { KIND_DATA = 0, KIND_CATALOG = 1 };

struct cache {
    char dir[3072];
    uint64_t limit;  /* 0: no quota */
    uint64_t used;
    uint64_t seq;
    sqlite3 *db;  /* NULL in the tool modes (cache_open_shared): no index, no quota */
    int lockfd;
};

static int exec(struct cache *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_msg(LOG_ERR_, "cache index: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void object_path(const struct cache *c, const char *hash, char *out, size_t len)
{
    snprintf(out, len, "%s/data/%.2s/%s", c->dir, hash, hash + 2);
}

static void catalog_path(const struct cache *c, const char *hash, char *out, size_t len)
{
    snprintf(out, len, "%s/catalogs/%s.db", c->dir, hash);
}

static void index_add(struct cache *c, const char *hash, int kind, uint64_t size, uint64_t seq, int pins)
{
    sqlite3_stmt *s;
    if (!c->db)
        return;
    sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO objects (hash, kind, size, seq, pins) VALUES (?,?,?,?,?)", -1,
                       &s, NULL);
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 2, kind);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)size);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)seq);
    sqlite3_bind_int(s, 5, pins);
    sqlite3_step(s);
    sqlite3_finalize(s);
}

static void index_update(struct cache *c, const char *sql, const char *hash, sqlite3_int64 value)
{
    sqlite3_stmt *s;
    if (!c->db)
        return;
    sqlite3_prepare_v2(c->db, sql, -1, &s, NULL);
    sqlite3_bind_int64(s, 1, value);
    sqlite3_bind_text(s, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_step(s);
    sqlite3_finalize(s);
}

static void index_delete(struct cache *c, const char *hash)
{
    sqlite3_stmt *s;
    if (!c->db)
        return;
    sqlite3_prepare_v2(c->db, "DELETE FROM objects WHERE hash = ?", -1, &s, NULL);
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_TRANSIENT);
    sqlite3_step(s);
    sqlite3_finalize(s);
}

struct found {
    char hash[HASH_HEX + 1];
    int kind;
    uint64_t size;
    time_t mtime;
};

static int by_mtime(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

static void scan(struct cache *c)
{
    struct found *all = NULL;
    size_t n = 0, cap = 0;
    char path[4096];
    struct stat st;

    for (int d = 0; d < 256; d++) {
        snprintf(path, sizeof path, "%s/data/%02x", c->dir, d);
        DIR *dir = opendir(path);
        if (!dir)
            continue;
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (strlen(de->d_name) != HASH_HEX - 2 || strspn(de->d_name, "0123456789abcdef") != HASH_HEX - 2)
                continue;
            char file[4200];
            snprintf(file, sizeof file, "%s/%s", path, de->d_name);
            if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            if (n == cap)
                all = realloc(all, (cap = cap ? cap * 2 : 256) * sizeof *all);
            snprintf(all[n].hash, sizeof all[n].hash, "%02x%s", d, de->d_name);
            all[n].kind = KIND_DATA;
            all[n].size = st.st_size;
            all[n].mtime = st.st_mtime;
            n++;
        }
        closedir(dir);
    }
    snprintf(path, sizeof path, "%s/catalogs", c->dir);
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir))) {
            char file[4200];
            if (strlen(de->d_name) != HASH_HEX + 3 || strcmp(de->d_name + HASH_HEX, ".db") != 0)
                continue;
            snprintf(file, sizeof file, "%s/%s", path, de->d_name);
            if (stat(file, &st) != 0)
                continue;
            if (n == cap)
                all = realloc(all, (cap = cap ? cap * 2 : 256) * sizeof *all);
            snprintf(all[n].hash, sizeof all[n].hash, "%.64s", de->d_name);
            all[n].kind = KIND_CATALOG;
            all[n].size = st.st_size;
            all[n].mtime = st.st_mtime;
            n++;
        }
        closedir(dir);
    }
    qsort(all, n, sizeof *all, by_mtime);
    exec(c, "BEGIN");
    for (size_t i = 0; i < n; i++) {
        index_add(c, all[i].hash, all[i].kind, all[i].size, ++c->seq, 0);
        c->used += all[i].size;
    }
    exec(c, "COMMIT");
    free(all);
}

static void clean_txn(struct cache *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/txn", c->dir);
    DIR *dir = opendir(path);
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        char file[4200];
        struct stat st;
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        /* a tool's file may be in the middle of its download; one from a day ago is not */
        if (strncmp(de->d_name, "tool.", 5) == 0 && (stat(file, &st) < 0 || time(NULL) - st.st_mtime < 86400))
            continue;
        unlink(file);
    }
    closedir(dir);
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static unsigned long long MB(uint64_t bytes)
{
    return (unsigned long long)(bytes >> 20);
}

static unsigned long long MB_UP(uint64_t bytes)
{
    return (unsigned long long)((bytes + (1 << 20) - 1) >> 20);
}

/* bytes free for us on the file system under the cache; 0 or -1 (errno) */
static int disk_avail(const struct cache *c, uint64_t *avail)
{
    struct statvfs vfs;
    if (statvfs(c->dir, &vfs) < 0)
        return -1;
    *avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    return 0;
}

/* the most the cache could hold with avail free on its file system */
static uint64_t disk_room(const struct cache *c, uint64_t avail)
{
    return c->used + (avail > RESERVE ? avail - RESERVE : 0);
}

uint64_t cache_effective_limit(const struct cache *c)
{
    uint64_t avail, room;
    if (disk_avail(c, &avail) < 0)
        return c->limit ? c->limit : c->used;
    room = disk_room(c, avail);
    return c->limit && c->limit < room ? c->limit : room;
}

/* a cache structure for dir, its directories made; NULL with err */
static struct cache *cache_new(const char *dir, char *err, size_t errlen)
{
    struct cache *c = calloc(1, sizeof *c);
    char path[4096];

    snprintf(c->dir, sizeof c->dir, "%s", dir);
    c->lockfd = -1;
    const char *subdirs[] = {"", "/data", "/catalogs", "/txn", NULL};
    for (int i = 0; subdirs[i]; i++) {
        snprintf(path, sizeof path, "%s%s", dir, subdirs[i]);
        if (mkdirs(path) < 0) {
            snprintf(err, errlen, "cannot create the cache directory %s: %s", path, strerror(errno));
            free(c);
            return NULL;
        }
    }
    return c;
}

struct cache *cache_open(const char *dir, uint64_t limit, char *err, size_t errlen)
{
    struct cache *c = cache_new(dir, err, errlen);
    char path[4096];

    if (!c)
        return NULL;
    c->limit = limit;
    snprintf(path, sizeof path, "%s/lock", dir);
    c->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lockfd < 0 || flock(c->lockfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "the cache %s is in use by another cvmfs2 (or cannot be locked: %s)", dir,
                 strerror(errno));
        goto fail;
    }
    clean_txn(c);
    if (sqlite3_open(":memory:", &c->db) != SQLITE_OK ||
        exec(c, "CREATE TABLE objects (hash TEXT PRIMARY KEY, kind INTEGER, size INTEGER, seq INTEGER, pins INTEGER);"
                "CREATE INDEX objects_lru ON objects (pins, seq)") < 0) {
        snprintf(err, errlen, "cannot create the cache index");
        goto fail;
    }
    scan(c);
    uint64_t avail = 0;
    if (disk_avail(c, &avail) < 0)
        log_msg(LOG_INFO_, "cache %s: %llu MB in use, quota %llu MB (free space unknown: %s)", dir, MB(c->used),
                MB(limit), strerror(errno));
    else if (!limit)
        log_msg(LOG_INFO_, "cache %s: %llu MB in use, no quota: the file system's free space (%llu MB) limits it",
                dir, MB(c->used), MB(avail));
    else if (disk_room(c, avail) < limit)
        log_msg(LOG_WARN_, "cache %s: %llu MB in use; the quota (CVMFS_QUOTA_LIMIT) is %llu MB, but the file system "
                "has only %llu MB free: the effective limit is %llu MB until the disk has room", dir, MB(c->used),
                MB(limit), MB(avail), MB(disk_room(c, avail)));
    else
        log_msg(LOG_INFO_, "cache %s: %llu MB in use, quota %llu MB, the file system has %llu MB free", dir,
                MB(c->used), MB(limit), MB(avail));
    return c;
fail:
    if (c->lockfd >= 0)
        close(c->lockfd);
    free(c);
    return NULL;
}

struct cache *cache_open_shared(const char *dir, char *err, size_t errlen)
{
    return cache_new(dir, err, errlen);
}

void cache_close(struct cache *c)
{
    if (!c)
        return;
    if (c->db)
        sqlite3_close(c->db);
    if (c->lockfd >= 0)
        close(c->lockfd);
    free(c);
}

uint64_t cache_used(const struct cache *c)
{
    return c->used;
}

uint64_t cache_limit(const struct cache *c)
{
    return c->limit;
}

static void touch(const char *path)
{
    utimensat(AT_FDCWD, path, NULL, 0);
}

int cache_open_object(struct cache *c, const char *hash, uint64_t size)
{
    char path[4096];
    object_path(c, hash, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        st.st_size = -1;
    sqlite3_stmt *s;
    sqlite3_prepare_v2(c->db, "SELECT 1 FROM objects WHERE hash = ?", -1, &s, NULL);
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_TRANSIENT);
    int known = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    if ((uint64_t)st.st_size != size) {
        /* not what the catalog says (a power cut before the data reached the disk): fetch it again */
        log_msg(LOG_WARN_, "the cached object %s has %lld bytes, not %llu: fetching it again", hash,
                (long long)st.st_size, (unsigned long long)size);
        close(fd);
        unlink(path);
        if (known) {
            index_delete(c, hash);
            c->used -= st.st_size > 0 ? (uint64_t)st.st_size : 0;
        }
        errno = ENOENT;
        return -1;
    }
    if (!known) {
        index_add(c, hash, KIND_DATA, st.st_size, ++c->seq, 0);
        c->used += st.st_size;
    }
    index_update(c, "UPDATE objects SET seq = ?, pins = pins + 1 WHERE hash = ?", hash, (sqlite3_int64)++c->seq);
    touch(path);
    return fd;
}

void cache_unpin(struct cache *c, const char *hash)
{
    index_update(c, "UPDATE objects SET pins = max(pins - ?, 0) WHERE hash = ?", hash, 1);
}

/* evict until need more bytes fit; 0, or -ENOSPC with err saying which limit was reached */
static int make_room(struct cache *c, uint64_t need, char *err, size_t errlen)
{
    uint64_t avail = 0;
    int disk_known = disk_avail(c, &avail) == 0;
    if (c->limit && need > c->limit) {
        snprintf(err, errlen, "the cache is full (quota): %llu MB do not fit in a quota of %llu MB (CVMFS_QUOTA_LIMIT)",
                 MB_UP(need), MB(c->limit));
        return -ENOSPC;
    }
    if (disk_known && need > disk_room(c, avail)) {
        snprintf(err, errlen, "the disk is full: %llu MB do not fit on the file system of %s: it has %llu MB free and "
                 "the cache holds %llu MB (quota %llu MB)", MB_UP(need), c->dir, MB(avail), MB(c->used), MB(c->limit));
        return -ENOSPC;
    }
    for (;;) {
        uint64_t over_quota = 0, over_disk = 0;
        if (c->limit && c->used + need > c->limit)
            over_quota = c->used + need - c->limit;
        disk_known = disk_avail(c, &avail) == 0;
        if (disk_known && avail < need + RESERVE)
            over_disk = need + RESERVE - avail;
        if (over_quota == 0 && over_disk == 0)
            return 0;
        sqlite3_stmt *s;
        sqlite3_prepare_v2(c->db, "SELECT hash, kind, size FROM objects WHERE pins = 0 ORDER BY seq LIMIT 1", -1,
                           &s, NULL);
        if (sqlite3_step(s) != SQLITE_ROW) {
            sqlite3_finalize(s);
            if (over_quota >= over_disk)
                snprintf(err, errlen, "the cache is full (quota): %llu MB in use by open files and the catalog, "
                         "quota %llu MB, %llu MB more needed", MB(c->used), MB(c->limit), MB_UP(over_quota));
            else
                snprintf(err, errlen, "the disk is full: the file system of %s has %llu MB free, %llu MB more needed; "
                         "the cache holds %llu MB in open files and the catalog (quota %llu MB)", c->dir, MB(avail),
                         MB_UP(over_disk), MB(c->used), MB(c->limit));
            return -ENOSPC;
        }
        char hash[HASH_HEX + 1], path[4096];
        snprintf(hash, sizeof hash, "%s", (const char *)sqlite3_column_text(s, 0));
        int kind = sqlite3_column_int(s, 1);
        uint64_t size = sqlite3_column_int64(s, 2);
        sqlite3_finalize(s);
        if (kind == KIND_CATALOG)
            catalog_path(c, hash, path, sizeof path);
        else
            object_path(c, hash, path, sizeof path);
        unlink(path);
        index_delete(c, hash);
        c->used -= size;
        log_msg(LOG_DEBUG_, "evicted %s (%llu bytes) from the cache", hash, (unsigned long long)size);
    }
}

static int temp_file(struct cache *c, char *path, size_t len)
{
    snprintf(path, len, "%s/txn/%s.XXXXXX", c->dir, c->db ? "fetch" : "tool");
    return mkostemp(path, O_CLOEXEC);
}

int cache_fetch_object(struct cache *c, struct fetcher *f, const char *hash, uint64_t size, char *err, size_t errlen)
{
    char tmp[4096], path[4096], dir[4096];
    uint64_t got = 0;
    int rc = make_room(c, size, err, errlen);
    if (rc < 0)
        return rc;
    int fd = temp_file(c, tmp, sizeof tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file in the cache: %s", strerror(errno));
        return -EIO;
    }
    enum fetch_status st = fetch_object(f, hash, "", fd, &got, err, errlen);
    if (st == FETCH_OK && got != size) {
        snprintf(err, errlen, "object %s unpacks to %llu bytes, the catalog says %llu", hash,
                 (unsigned long long)got, (unsigned long long)size);
        st = FETCH_DATA_ERR;
    }
    if (st != FETCH_OK) {
        close(fd);
        unlink(tmp);
        return st == FETCH_LOCAL_ERR ? -ENOSPC : -EIO;
    }
    snprintf(dir, sizeof dir, "%s/data/%.2s", c->dir, hash);
    mkdir(dir, 0755);
    object_path(c, hash, path, sizeof path);
    /* on the disk before it has its name: a power cut leaves the object whole, or not there */
    if (fsync(fd) < 0 || rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot store %s in the cache: %s", hash, strerror(errno));
        close(fd);
        unlink(tmp);
        return -EIO;
    }
    index_add(c, hash, KIND_DATA, got, ++c->seq, 1);
    c->used += got;
    return fd;
}

int cache_catalog(struct cache *c, struct fetcher *f, const char *hash, const char *repo, int offline, char *out,
                  size_t outlen, char *err, size_t errlen)
{
    char tmp[4096];
    struct catalog *cat;
    struct stat st;

    catalog_path(c, hash, out, outlen);
    if (stat(out, &st) == 0) {
        if ((cat = catalog_open(out, repo, err, errlen))) {
            catalog_close(cat);
            index_update(c, "UPDATE objects SET seq = ?, pins = 1 WHERE hash = ?", hash, (sqlite3_int64)++c->seq);
            touch(out);
            return 0;
        }
        log_msg(LOG_WARN_, "the cached catalog %s is damaged (%s); removing it", hash, err);
        unlink(out);
        index_delete(c, hash);
        c->used -= st.st_size;
    }
    if (offline) {
        snprintf(err, errlen, "catalog %s is not in the cache and no server can be reached", hash);
        return -1;
    }
    int fd = temp_file(c, tmp, sizeof tmp);
    uint64_t got = 0;
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file in the cache: %s", strerror(errno));
        return -1;
    }
    enum fetch_status fs = fetch_object(f, hash, "C", fd, &got, err, errlen);
    close(fd);
    if (fs != FETCH_OK) {
        unlink(tmp);
        char why[1024];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "cannot fetch the catalog %s: %s", hash, why);
        return -1;
    }
    if (!(cat = catalog_open(tmp, repo, err, errlen))) {
        unlink(tmp);
        return -1;
    }
    catalog_close(cat);
    if (rename(tmp, out) < 0) {
        snprintf(err, errlen, "cannot store the catalog in the cache: %s", strerror(errno));
        unlink(tmp);
        return -1;
    }
    index_add(c, hash, KIND_CATALOG, got, ++c->seq, 1);
    c->used += got;
    return 0;
}

int cache_store_file(struct cache *c, const char *name, const unsigned char *data, size_t len)
{
    char tmp[4096], path[4096];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    int fd = temp_file(c, tmp, sizeof tmp);
    if (fd < 0)
        return -1;
    int ok = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int cache_load_file(struct cache *c, const char *name, unsigned char **data, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 65536, n = 0, got;
    unsigned char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap && cap < (64u << 20))
            buf = realloc(buf, cap *= 2);
        else if (n == cap)
            break;
    }
    fclose(f);
    *data = buf;
    *len = n;
    return 0;
}
