/* The catalog: an SQLite database of the whole tree (see appbuilder/fs/catalog.py),
 * opened read-only. Inode numbers are the catalog's row ids (1 is the root). Schema 2
 * has the owner, group and device number of each entry (devices and FIFOs are
 * published); schema 1 has none (read as 0, root's). Catalogs never change once
 * written; a busy timeout covers another process (a tool mode) reading the same file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvmfs2.h"

#define COLUMNS_2 "inode, parent, name, mode, size, mtime, hash, symlink, nlink, uid, gid, rdev"
#define COLUMNS_1 "inode, parent, name, mode, size, mtime, hash, symlink, nlink, 0, 0, 0"

struct catalog {
    sqlite3 *db;
    const char *columns;
    sqlite3_stmt *by_inode, *by_name, *children;
    uint64_t count;
};

static void fill(sqlite3_stmt *s, struct entry *e)
{
    const char *text;
    memset(e, 0, sizeof *e);
    e->inode = sqlite3_column_int64(s, 0);
    e->parent = sqlite3_column_int64(s, 1);
    snprintf(e->name, sizeof e->name, "%s", (const char *)sqlite3_column_text(s, 2));
    e->mode = (uint32_t)sqlite3_column_int64(s, 3);
    e->size = sqlite3_column_int64(s, 4);
    e->mtime = sqlite3_column_int64(s, 5);
    if ((text = (const char *)sqlite3_column_text(s, 6)))
        snprintf(e->hash, sizeof e->hash, "%s", text);
    if ((text = (const char *)sqlite3_column_text(s, 7)))
        e->symlink = strdup(text);
    e->nlink = (uint32_t)sqlite3_column_int64(s, 8);
    e->uid = (uint32_t)sqlite3_column_int64(s, 9);
    e->gid = (uint32_t)sqlite3_column_int64(s, 10);
    e->rdev = (uint64_t)sqlite3_column_int64(s, 11);
}

void entry_clear(struct entry *e)
{
    free(e->symlink);
    e->symlink = NULL;
}

struct catalog *catalog_open(const char *path, const char *repo, char *err, size_t errlen)
{
    struct catalog *c = calloc(1, sizeof *c);
    sqlite3_stmt *s = NULL;

    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the catalog %s: %s", path, sqlite3_errmsg(c->db));
        goto fail;
    }
    sqlite3_busy_timeout(c->db, 10000);
    /* a damaged file fails here, or in one of the queries below */
    if (sqlite3_prepare_v2(c->db, "PRAGMA quick_check", -1, &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0) {
        snprintf(err, errlen, "the catalog is corrupt (%s)", s && sqlite3_column_text(s, 0) ?
                 (const char *)sqlite3_column_text(s, 0) : sqlite3_errmsg(c->db));
        goto fail;
    }
    sqlite3_finalize(s);
    s = NULL;
    char schema[32] = "", name[256] = "";
    if (sqlite3_prepare_v2(c->db, "SELECT key, value FROM properties", -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "the catalog is corrupt (no properties: %s)", sqlite3_errmsg(c->db));
        goto fail;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(s, 0), *v = (const char *)sqlite3_column_text(s, 1);
        if (k && v && strcmp(k, "schema") == 0)
            snprintf(schema, sizeof schema, "%s", v);
        if (k && v && strcmp(k, "repository") == 0)
            snprintf(name, sizeof name, "%s", v);
    }
    sqlite3_finalize(s);
    s = NULL;
    if (strcmp(schema, "1") == 0)
        c->columns = COLUMNS_1;
    else if (strcmp(schema, "2") == 0)
        c->columns = COLUMNS_2;
    else {
        snprintf(err, errlen, "the catalog has schema '%s', this client reads schemas 1 and 2", schema);
        goto fail;
    }
    if (strcmp(name, repo) != 0) {
        snprintf(err, errlen, "the catalog is of repository '%s', not '%s'", name, repo);
        goto fail;
    }
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM catalog WHERE inode = ?", c->columns);
    if (sqlite3_prepare_v2(c->db, sql, -1, &c->by_inode, NULL))
        goto corrupt;
    snprintf(sql, sizeof sql, "SELECT %s FROM catalog WHERE parent = ? AND name = ?", c->columns);
    if (sqlite3_prepare_v2(c->db, sql, -1, &c->by_name, NULL))
        goto corrupt;
    snprintf(sql, sizeof sql, "SELECT %s FROM catalog WHERE parent = ? AND inode != 1 ORDER BY name", c->columns);
    if (sqlite3_prepare_v2(c->db, sql, -1, &c->children, NULL) ||
        sqlite3_prepare_v2(c->db, "SELECT count(*) FROM catalog", -1, &s, NULL)) {
corrupt:
        snprintf(err, errlen, "the catalog is corrupt (%s)", sqlite3_errmsg(c->db));
        goto fail;
    }
    if (sqlite3_step(s) == SQLITE_ROW)
        c->count = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    struct entry root;
    if (catalog_get(c, 1, &root) != 0 || (root.mode & 0170000) != 0040000) {
        snprintf(err, errlen, "the catalog is corrupt (no root directory)");
        goto fail;
    }
    return c;
fail:
    if (s)
        sqlite3_finalize(s);
    catalog_close(c);
    return NULL;
}

static int one(sqlite3_stmt *s, struct entry *e)
{
    int rc = sqlite3_step(s), result;
    if (rc == SQLITE_ROW) {
        fill(s, e);
        result = 0;
    } else if (rc == SQLITE_DONE) {
        result = -ENOENT;
    } else {
        log_msg(LOG_ERR_, "catalog query failed: %s", sqlite3_errstr(rc));
        result = -EIO;
    }
    sqlite3_reset(s);
    return result;
}

int catalog_get(struct catalog *c, uint64_t inode, struct entry *e)
{
    sqlite3_bind_int64(c->by_inode, 1, (sqlite3_int64)inode);
    return one(c->by_inode, e);
}

int catalog_lookup(struct catalog *c, uint64_t parent, const char *name, struct entry *e)
{
    sqlite3_bind_int64(c->by_name, 1, (sqlite3_int64)parent);
    sqlite3_bind_text(c->by_name, 2, name, -1, SQLITE_STATIC);
    return one(c->by_name, e);
}

int catalog_list(struct catalog *c, uint64_t inode, int (*fn)(void *ctx, const struct entry *e), void *ctx)
{
    int rc, result = 0;
    struct entry e;
    sqlite3_bind_int64(c->children, 1, (sqlite3_int64)inode);
    while ((rc = sqlite3_step(c->children)) == SQLITE_ROW) {
        fill(c->children, &e);
        result = fn(ctx, &e);
        entry_clear(&e);
        if (result)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_msg(LOG_ERR_, "catalog listing failed: %s", sqlite3_errstr(rc));
        result = -EIO;
    }
    sqlite3_reset(c->children);
    return result;
}

uint64_t catalog_count(struct catalog *c)
{
    return c->count;
}

void catalog_close(struct catalog *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->by_inode);
    sqlite3_finalize(c->by_name);
    sqlite3_finalize(c->children);
    sqlite3_close(c->db);
    free(c);
}

/* ---------------------------------------------------------------- differences */

/* every entry with its path, sorted by path (SQLite's BINARY order: bytes, as strcmp) */
static sqlite3_stmt *walk(struct catalog *c, char *err, size_t errlen)
{
    char sql[1024];
    sqlite3_stmt *s = NULL;
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE tree(inode, path) AS ("
             " SELECT inode, '' FROM catalog WHERE inode = 1"
             " UNION ALL SELECT c.inode, tree.path || '/' || c.name FROM catalog c JOIN tree ON c.parent = tree.inode"
             " WHERE c.inode != 1)"
             " SELECT tree.path, x.* FROM tree JOIN (SELECT %s FROM catalog) x ON x.inode = tree.inode"
             " ORDER BY tree.path", c->columns);
    if (sqlite3_prepare_v2(c->db, sql, -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot list the catalog: %s", sqlite3_errmsg(c->db));
        return NULL;
    }
    return s;
}

/* fill() reads columns from 0; the walk has the path first */
static void fill_walked(sqlite3_stmt *s, struct entry *e)
{
    const char *text;
    memset(e, 0, sizeof *e);
    e->inode = sqlite3_column_int64(s, 1);
    e->mode = (uint32_t)sqlite3_column_int64(s, 4);
    if ((text = (const char *)sqlite3_column_text(s, 7)))
        snprintf(e->hash, sizeof e->hash, "%s", text);
    if ((text = (const char *)sqlite3_column_text(s, 8)))
        e->symlink = strdup(text);
    e->uid = (uint32_t)sqlite3_column_int64(s, 10);
    e->gid = (uint32_t)sqlite3_column_int64(s, 11);
    e->rdev = (uint64_t)sqlite3_column_int64(s, 12);
}

static int same(const struct entry *a, const struct entry *b)
{
    return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid && a->rdev == b->rdev &&
           strcmp(a->hash, b->hash) == 0 &&
           strcmp(a->symlink ? a->symlink : "", b->symlink ? b->symlink : "") == 0;
}

static int step(sqlite3_stmt *s, char **path, struct entry *e, char *err, size_t errlen)
{
    int rc = sqlite3_step(s);
    free(*path);
    *path = NULL;
    entry_clear(e);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW) {
        snprintf(err, errlen, "listing a catalog failed: %s", sqlite3_errstr(rc));
        return -1;
    }
    const char *p = (const char *)sqlite3_column_text(s, 0);
    *path = strdup(p && *p ? p : "/");  /* the root's path is "" in the walk (it sorts first) */
    fill_walked(s, e);
    return 1;
}

int catalog_diff(struct catalog *a, struct catalog *b, FILE *out, char *err, size_t errlen)
{
    sqlite3_stmt *sa = walk(a, err, errlen), *sb = sa ? walk(b, err, errlen) : NULL;
    char *pa = NULL, *pb = NULL;
    struct entry ea = {0}, eb = {0};
    int rc = -1;

    if (!sa || !sb)
        goto out;
    int ha = step(sa, &pa, &ea, err, errlen), hb = ha < 0 ? -1 : step(sb, &pb, &eb, err, errlen);
    while (ha > 0 || hb > 0) {
        if (ha < 0 || hb < 0)
            goto out;
        /* compare the walk's own keys (the root's is ""), print the paths */
        const char *ka = (const char *)sqlite3_column_text(sa, 0), *kb = (const char *)sqlite3_column_text(sb, 0);
        int cmp = ha <= 0 ? 1 : hb <= 0 ? -1 : strcmp(ka ? ka : "", kb ? kb : "");
        if (cmp < 0) {
            fprintf(out, "D %s\n", pa);
            ha = step(sa, &pa, &ea, err, errlen);
        } else if (cmp > 0) {
            fprintf(out, "A %s\n", pb);
            hb = step(sb, &pb, &eb, err, errlen);
        } else {
            if (!same(&ea, &eb))
                fprintf(out, "M %s\n", pa);
            ha = step(sa, &pa, &ea, err, errlen);
            hb = step(sb, &pb, &eb, err, errlen);
        }
    }
    if (ha < 0 || hb < 0)
        goto out;
    rc = 0;
out:
    free(pa);
    free(pb);
    entry_clear(&ea);
    entry_clear(&eb);
    if (sa)
        sqlite3_finalize(sa);
    if (sb)
        sqlite3_finalize(sb);
    return rc;
}
