/* The catalog: an SQLite database of the whole tree (see appbuilder/fs/catalog.py),
 * opened read-only. Inode numbers are the catalog's row ids (1 is the root). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvmfs2.h"

#define COLUMNS "inode, parent, name, mode, size, mtime, hash, symlink, nlink"

struct catalog {
    sqlite3 *db;
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
    if (strcmp(schema, "1") != 0) {
        snprintf(err, errlen, "the catalog has schema '%s', this client reads schema 1", schema);
        goto fail;
    }
    if (strcmp(name, repo) != 0) {
        snprintf(err, errlen, "the catalog is of repository '%s', not '%s'", name, repo);
        goto fail;
    }
    if (sqlite3_prepare_v2(c->db, "SELECT " COLUMNS " FROM catalog WHERE inode = ?", -1, &c->by_inode, NULL) ||
        sqlite3_prepare_v2(c->db, "SELECT " COLUMNS " FROM catalog WHERE parent = ? AND name = ?", -1, &c->by_name,
                           NULL) ||
        sqlite3_prepare_v2(c->db, "SELECT " COLUMNS " FROM catalog WHERE parent = ? AND inode != 1 ORDER BY name", -1,
                           &c->children, NULL) ||
        sqlite3_prepare_v2(c->db, "SELECT count(*) FROM catalog", -1, &s, NULL)) {
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
