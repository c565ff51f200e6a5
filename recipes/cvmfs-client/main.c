/* cvmfs2: mount one repository read-only with FUSE (low-level API), or tell its tags.
 *
 *   cvmfs2 [-f] [-d] [-c CONFIG_DIR] [-o tag=NAME,FUSE_OPTIONS] REPOSITORY MOUNTPOINT
 *   cvmfs2 [-c CONFIG_DIR] --tags REPOSITORY
 *   cvmfs2 [-c CONFIG_DIR] --diff FROM TO REPOSITORY
 *
 * At mount time the manifest is fetched and verified (trust.c: a key trusted for this
 * repository, a good signature, this repository's, not expired, not older than the
 * copy seen before; each refusal is said with its reason, on stderr and in the log),
 * and the catalog it names is fetched (or taken from the cache) and checked. With
 * -o tag=NAME (or CVMFS_REPOSITORY_TAG) the catalog is the one the tag list names for
 * NAME ("latest": the newest tag); the manifest is still fetched and checked. When no
 * server offers an acceptable copy (none can be reached, or every copy was refused)
 * the cached verified copy is used, offline, and that is said. Any other failure is
 * reported and nothing is mounted. Then the client detaches (unless -f) and serves:
 *
 *   lookup, getattr, readdir, readlink   from the catalog (no network); owner, group and
 *                                        device numbers as published (catalog schema 2)
 *   open                                 from the cache, else downloaded, verified, cached
 *   read                                 from the cached file
 *   getxattr user.revision, user.root_hash, user.hash, user.host, user.proxy, user.fqrn,
 *            user.tag (the tag mounted, with -o tag); listxattr names those this inode has
 *            (none with CVMFS_HIDE_MAGIC_XATTRS=yes, for a mount below overlayfs)
 *
 * The catalog stays the one of the mounted revision; a new revision is seen by the
 * next mount.
 *
 * The tool modes print, from the verified tag list (online, else the cached copy):
 *   --tags   "# REPO: tag list revision S signed ISO expires ISO (online from URL |
 *            offline: cached copy)", then "NAME REVISION CATALOGHASH ISO8601-UTC" per tag
 *   --diff   "M /path", "A /path" (only in TO), "D /path" (only in FROM), sorted: the
 *            entries that differ between two tags (type, mode, owner, group, device,
 *            content or link target; not the time alone)
 * They exit 1 with the reason on stderr when there is no acceptable tag list or a tag
 * is unknown, and may run while a mount of the same repository uses the same cache. */
#define FUSE_USE_VERSION 34

#include <errno.h>
#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cvmfs2.h"

static struct {
    const char *repo;
    struct config *cfg;
    struct fetcher fetcher;
    struct keyring keys;
    struct cache *cache;
    struct catalog *catalog;
    struct manifest manifest;
    uint64_t revision;              /* mounted: the manifest's, or the tag's */
    char root_hash[HASH_HEX + 1];   /* the mounted catalog */
    char tag[TAG_NAME_MAX + 1];     /* the mounted tag; "" without -o tag */
    int offline;
    double kcache;
    int hide_xattrs;                /* CVMFS_HIDE_MAGIC_XATTRS: listxattr names none */
} S;

struct open_file {
    int fd;
    char hash[HASH_HEX + 1];
};

/* ---------------------------------------------------------------- FUSE operations */

static void fill_attr(const struct entry *e, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = e->inode;
    /* the modes as published: the mount is read-only (writing fails with EROFS), and overlayfs,
     * with this mount below, copies a directory or file up with the mode it sees here */
    st->st_mode = e->mode;
    st->st_nlink = e->nlink ? e->nlink : 1;
    st->st_uid = e->uid;
    st->st_gid = e->gid;
    st->st_rdev = (dev_t)e->rdev;
    st->st_size = e->size;
    st->st_blksize = 4096;
    st->st_blocks = (e->size + 511) / 512;
    st->st_mtime = st->st_ctime = st->st_atime = e->mtime;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct entry e;
    struct fuse_entry_param p;
    int rc = catalog_lookup(S.catalog, parent, name, &e);

    memset(&p, 0, sizeof p);
    if (rc == -ENOENT) {  /* a negative entry the kernel may keep as long as the catalog lasts */
        p.ino = 0;
        p.entry_timeout = S.kcache;
        fuse_reply_entry(req, &p);
        return;
    }
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    p.ino = e.inode;
    p.generation = 1;
    p.attr_timeout = p.entry_timeout = S.kcache;
    fill_attr(&e, &p.attr);
    entry_clear(&e);
    fuse_reply_entry(req, &p);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct entry e;
    struct stat st;
    (void)fi;
    int rc = catalog_get(S.catalog, ino, &e);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    fill_attr(&e, &st);
    entry_clear(&e);
    fuse_reply_attr(req, &st, S.kcache);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct entry e;
    int rc = catalog_get(S.catalog, ino, &e);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    if (!S_ISLNK(e.mode) || !e.symlink)
        fuse_reply_err(req, EINVAL);
    else
        fuse_reply_readlink(req, e.symlink);
    entry_clear(&e);
}

struct dirbuf {
    char *data;
    size_t size;
    fuse_req_t req;
};

static void dirbuf_add(struct dirbuf *b, const char *name, fuse_ino_t ino, mode_t mode)
{
    struct stat st = {.st_ino = ino, .st_mode = mode};
    size_t old = b->size;
    b->size += fuse_add_direntry(b->req, NULL, 0, name, NULL, 0);
    b->data = realloc(b->data, b->size);
    fuse_add_direntry(b->req, b->data + old, b->size - old, name, &st, b->size);
}

static int add_child(void *ctx, const struct entry *e)
{
    dirbuf_add(ctx, e->name, e->inode, e->mode);
    return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct entry e;
    int rc = catalog_get(S.catalog, ino, &e);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    entry_clear(&e);
    if (!S_ISDIR(e.mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    struct dirbuf *b = calloc(1, sizeof *b);
    b->req = req;
    dirbuf_add(b, ".", ino, S_IFDIR);
    dirbuf_add(b, "..", e.parent ? e.parent : ino, S_IFDIR);
    rc = catalog_list(S.catalog, ino, add_child, b);
    if (rc) {
        free(b->data);
        free(b);
        fuse_reply_err(req, -rc);
        return;
    }
    fi->fh = (uintptr_t)b;
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct dirbuf *b = (struct dirbuf *)(uintptr_t)fi->fh;
    (void)ino;
    if ((size_t)off < b->size)
        fuse_reply_buf(req, b->data + off, b->size - off < size ? b->size - off : size);
    else
        fuse_reply_buf(req, NULL, 0);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dirbuf *b = (struct dirbuf *)(uintptr_t)fi->fh;
    (void)ino;
    free(b->data);
    free(b);
    fuse_reply_err(req, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct entry e;
    char err[1024] = "";
    int rc = catalog_get(S.catalog, ino, &e);

    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    entry_clear(&e);
    if (S_ISDIR(e.mode)) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (!S_ISREG(e.mode) || strlen(e.hash) != HASH_HEX) {
        fuse_reply_err(req, EIO);
        return;
    }
    int fd = cache_open_object(S.cache, e.hash, e.size);
    if (fd < 0) {
        fd = cache_fetch_object(S.cache, &S.fetcher, e.hash, e.size, err, sizeof err);
        if (fd < 0) {
            log_msg(LOG_ERR_, "cannot open inode %llu (%s, object %s): %s", (unsigned long long)ino, e.name, e.hash,
                    err);
            fuse_reply_err(req, -fd);
            return;
        }
        log_msg(LOG_DEBUG_, "fetched %s (%llu bytes)", e.name, (unsigned long long)e.size);
    }
    struct open_file *of = malloc(sizeof *of);
    of->fd = fd;
    memcpy(of->hash, e.hash, sizeof of->hash);
    fi->fh = (uintptr_t)of;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
    struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
    (void)ino;
    buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    buf.buf[0].fd = of->fd;
    buf.buf[0].pos = off;
    fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
    (void)ino;
    close(of->fd);
    cache_unpin(S.cache, of->hash);
    free(of);
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs st;
    uint64_t limit = cache_effective_limit(S.cache), used = cache_used(S.cache);
    (void)ino;
    memset(&st, 0, sizeof st);
    st.f_bsize = st.f_frsize = 4096;
    st.f_blocks = (limit ? limit : used) / 4096;
    st.f_bfree = st.f_bavail = limit > used ? (limit - used) / 4096 : 0;
    st.f_files = catalog_count(S.catalog);
    st.f_namemax = 255;
    fuse_reply_statfs(req, &st);
}

static const char *XATTRS[] = {"user.fqrn", "user.revision", "user.root_hash", "user.host", "user.proxy",
                               "user.hash", "user.tag", NULL};

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char value[1400];
    struct entry e;

    if (strcmp(name, "user.fqrn") == 0)
        snprintf(value, sizeof value, "%s", S.repo);
    else if (strcmp(name, "user.revision") == 0)
        snprintf(value, sizeof value, "%llu", (unsigned long long)S.revision);
    else if (strcmp(name, "user.root_hash") == 0)
        snprintf(value, sizeof value, "%s", S.root_hash);
    else if (strcmp(name, "user.tag") == 0 && S.tag[0])
        snprintf(value, sizeof value, "%s", S.tag);
    else if (strcmp(name, "user.host") == 0)
        snprintf(value, sizeof value, "%s", S.offline && S.fetcher.proxy < 0 ? "offline" : fetcher_host(&S.fetcher));
    else if (strcmp(name, "user.proxy") == 0)
        snprintf(value, sizeof value, "%s", fetcher_proxy(&S.fetcher));
    else if (strcmp(name, "user.hash") == 0) {
        if (catalog_get(S.catalog, ino, &e) || !e.hash[0]) {
            fuse_reply_err(req, ENODATA);
            return;
        }
        snprintf(value, sizeof value, "%s", e.hash);
        entry_clear(&e);
    } else {
        fuse_reply_err(req, ENODATA);
        return;
    }
    size_t n = strlen(value);
    if (size == 0)
        fuse_reply_xattr(req, n);
    else if (size < n)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, value, n);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char list[256];
    size_t n = 0;
    struct entry e;
    int has_hash = 0;
    if (!S.hide_xattrs && catalog_get(S.catalog, ino, &e) == 0) {
        has_hash = e.hash[0] != 0;
        entry_clear(&e);
    }
    /* only the names getxattr answers for this inode: overlayfs copies every listed one up */
    for (int i = 0; XATTRS[i] && !S.hide_xattrs; i++) {
        if (strcmp(XATTRS[i], "user.tag") == 0 && !S.tag[0])
            continue;
        if (strcmp(XATTRS[i], "user.hash") == 0 && !has_hash)
            continue;
        memcpy(list + n, XATTRS[i], strlen(XATTRS[i]) + 1);
        n += strlen(XATTRS[i]) + 1;
    }
    if (size == 0)
        fuse_reply_xattr(req, n);
    else if (size < n)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, list, n);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* reads go from the cache file to the kernel through a pipe, without a copy here */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
};

/* ---------------------------------------------------------------- trust */

/* what an offline copy's expiry means, for the message saying it is used */
static const char *offline_note(int64_t expires, char *buf, size_t len)
{
    char at[32];
    if (expires <= 0)
        snprintf(buf, len, " (it has no expiry time; it was accepted when fetched)");
    else if (expires <= (int64_t)time(NULL))
        snprintf(buf, len, " (it expired at %s; it was verified when fetched)", iso_time(expires, at));
    else
        buf[0] = 0;
    return buf;
}

/* the manifest: 0 (S.manifest set, S.offline when cached), or -1 with err */
static int load_manifest(const struct trust *t, int required, char *err, size_t errlen)
{
    char why[2048], note[128];
    int rc = trust_manifest(t, &S.manifest, why, sizeof why);
    if (rc == TRUST_FAILED) {
        if (required) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
        log_msg(LOG_WARN_, "%s; the tag list decides what is mounted", why);
        return 0;
    }
    if (rc == TRUST_OFFLINE) {
        if (required) {
            S.offline = 1;
            log_msg(LOG_WARN_, "%s; mounting revision %llu from the cache (offline)%s", why,
                    (unsigned long long)S.manifest.revision, offline_note(S.manifest.expires, note, sizeof note));
        } else {
            log_msg(LOG_WARN_, "%s; the cached manifest (revision %llu) is the newest known%s", why,
                    (unsigned long long)S.manifest.revision, offline_note(S.manifest.expires, note, sizeof note));
        }
    }
    return 0;
}

/* the tag list: 0 (offline set when it is the cached copy), or -1 with err */
static int load_tags(const struct trust *t, struct taglist *tl, int *offline, char *err, size_t errlen)
{
    char why[2048], note[128], at[32];
    int rc = trust_tags(t, tl, why, sizeof why);
    *offline = rc == TRUST_OFFLINE;
    if (rc == TRUST_FAILED) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (rc == TRUST_OFFLINE)
        log_msg(LOG_WARN_, "%s; using the cached tag list (revision %llu, signed %s) (offline)%s", why,
                (unsigned long long)tl->revision, iso_time(tl->timestamp, at),
                offline_note(tl->expires, note, sizeof note));
    return 0;
}

/* ---------------------------------------------------------------- tool modes */

static int tool_tags(const struct trust *t)
{
    struct taglist tl;
    char err[4096], signed_at[32], expires_at[32], at[32];
    int offline;
    if (load_tags(t, &tl, &offline, err, sizeof err) < 0) {
        log_msg(LOG_ERR_, "no tag list of %s: %s", S.repo, err);
        return 1;
    }
    char source[1500];
    if (offline)
        snprintf(source, sizeof source, "offline: cached copy");
    else
        snprintf(source, sizeof source, "online from %s", fetcher_host(t->fetcher));
    printf("# %s: tag list revision %llu signed %s expires %s (%s)\n", S.repo, (unsigned long long)tl.revision,
           iso_time(tl.timestamp, signed_at), tl.expires ? iso_time(tl.expires, expires_at) : "never", source);
    for (int i = 0; i < tl.n; i++)
        printf("%s %llu %s %s\n", tl.tags[i].name, (unsigned long long)tl.tags[i].revision, tl.tags[i].catalog,
               iso_time(tl.tags[i].timestamp, at));
    taglist_free(&tl);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* the catalog of a tag: cached, or fetched (even when the tag list is the cached copy) and checked */
static struct catalog *tag_catalog(const struct trust *t, const struct tag *tag, char *err, size_t errlen)
{
    char path[PATH_MAX], why[2048];
    if (cache_catalog(t->cache, t->fetcher, tag->catalog, S.repo, 0, path, sizeof path, why, sizeof why) < 0) {
        snprintf(err, errlen, "tag %s: %s", tag->name, why);
        return NULL;
    }
    struct catalog *c = catalog_open(path, S.repo, why, sizeof why);
    if (!c)
        snprintf(err, errlen, "tag %s: %s", tag->name, why);
    return c;
}

static int tool_diff(const struct trust *t, const char *from, const char *to)
{
    struct taglist tl;
    char err[4096];
    int offline, rc = 1;
    struct catalog *a = NULL, *b = NULL;
    const struct tag *ta, *tb;

    if (load_tags(t, &tl, &offline, err, sizeof err) < 0) {
        log_msg(LOG_ERR_, "no tag list of %s: %s", S.repo, err);
        return 1;
    }
    if (!(ta = taglist_get(&tl, from, err, sizeof err)) || !(tb = taglist_get(&tl, to, err, sizeof err)) ||
        !(a = tag_catalog(t, ta, err, sizeof err)) || !(b = tag_catalog(t, tb, err, sizeof err)) ||
        catalog_diff(a, b, stdout, err, sizeof err) < 0 || fflush(stdout) != 0)
        log_msg(LOG_ERR_, "cannot compare %s with %s: %s", from, to, err[0] ? err : strerror(errno));
    else
        rc = 0;
    catalog_close(a);
    catalog_close(b);
    taglist_free(&tl);
    return rc;
}

/* ---------------------------------------------------------------- mounting */

static void usage(FILE *out)
{
    fprintf(out, "usage: cvmfs2 [-f] [-d] [-c CONFIG_DIR] [-o tag=NAME,FUSE_OPTIONS] REPOSITORY MOUNTPOINT\n"
                 "       cvmfs2 [-c CONFIG_DIR] --tags REPOSITORY\n"
                 "       cvmfs2 [-c CONFIG_DIR] --diff FROM TO REPOSITORY\n"
                 "  -f  stay in the foreground    -d  debug messages\n"
                 "  -c  configuration directory (default /etc/cvmfs)\n"
                 "  -o tag=NAME  mount the revision tagged NAME (latest: the newest tag), not the newest revision\n"
                 "  --tags       print the repository's verified tag list\n"
                 "  --diff       print the paths that differ between two tags: M (modified), A (added), D (deleted)\n");
}

/* "tag=NAME" out of a comma-separated option list; the rest stays for FUSE */
static char *take_tag(const char *options, char *rest, size_t restlen)
{
    char buf[1024], *tag = NULL;
    snprintf(buf, sizeof buf, "%s", options ? options : "");
    rest[0] = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strncmp(tok, "tag=", 4) == 0) {
            free(tag);
            tag = strdup(tok + 4);
        } else {
            size_t n = strlen(rest);
            snprintf(rest + n, restlen - n, "%s%s", n ? "," : "", tok);
        }
    }
    return tag;
}

int main(int argc, char **argv)
{
    const char *config_dir = "/etc/cvmfs", *extra = NULL;
    int foreground = 0, debug = 0, opt, mode = 0;  /* 0: mount, 't': --tags, 'D': --diff */
    char err[4096] = "";
    const char *what = "mount";

    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"tags", no_argument, NULL, 't'},
                                             {"diff", no_argument, NULL, 'D'}, {0}};
    while ((opt = getopt_long(argc, argv, "fdc:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': foreground = 1; break;
        case 'd': debug = 1; break;
        case 'c': config_dir = optarg; break;
        case 'o': extra = optarg; break;
        case 't':
        case 'D':
            if (mode && mode != opt) {
                usage(stderr);
                return 2;
            }
            mode = opt;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("cvmfs2 (appbuild) %s\n", CVMFS_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != (mode == 't' ? 1 : mode == 'D' ? 3 : 2)) {
        usage(stderr);
        return 2;
    }
    S.repo = argv[mode == 'D' ? optind + 2 : optind];
    what = mode == 't' ? "list the tags of" : mode == 'D' ? "compare tags of" : "mount";
    char mountpoint[PATH_MAX];
    if (!mode && !realpath(argv[optind + 1], mountpoint)) {
        fprintf(stderr, "cvmfs2: %s: mount point %s: %s\n", S.repo, argv[optind + 1], strerror(errno));
        return 1;
    }
    char fuse_extra[1024];
    char *tag = take_tag(extra, fuse_extra, sizeof fuse_extra);
    if (!(S.cfg = config_load(config_dir, S.repo, err, sizeof err)))
        goto refuse;
    char *logfile = expand_repo(config_get(S.cfg, "CVMFS_USYSLOG", ""), S.repo);
    log_open(logfile, S.repo, 1, debug);
    free(logfile);
    if (!tag && !mode && config_get(S.cfg, "CVMFS_REPOSITORY_TAG", "")[0])
        tag = strdup(config_get(S.cfg, "CVMFS_REPOSITORY_TAG", ""));

    char *keyfiles = expand_repo(config_get(S.cfg, "CVMFS_PUBLIC_KEY", ""), S.repo);
    int rc = keyring_load(&S.keys, keyfiles, config_get(S.cfg, "CVMFS_KEYS_DIR", "/etc/cvmfs/keys"), S.repo, err,
                          sizeof err);
    free(keyfiles);
    if (rc < 0)
        goto refuse;

    const char *servers = config_get(S.cfg, "CVMFS_SERVER_URL", NULL);
    if (!servers) {
        snprintf(err, sizeof err, "CVMFS_SERVER_URL is not set (in %s/config.d/%s.conf or default.local)", config_dir,
                 S.repo);
        goto refuse;
    }
    char *expanded = expand_repo(servers, S.repo);
    rc = fetcher_init(&S.fetcher, expanded, config_get(S.cfg, "CVMFS_HTTP_PROXY", "DIRECT"), err, sizeof err);
    free(expanded);
    if (rc < 0)
        goto refuse;
    S.fetcher.timeout_proxy = (int)config_long(S.cfg, "CVMFS_TIMEOUT", 5);
    S.fetcher.timeout_direct = (int)config_long(S.cfg, "CVMFS_TIMEOUT_DIRECT", 10);
    S.fetcher.max_retries = (int)config_long(S.cfg, "CVMFS_MAX_RETRIES", 1);
    S.fetcher.reset_after = config_long(S.cfg, "CVMFS_PROXY_RESET_AFTER", 300);
    S.kcache = (double)config_long(S.cfg, "CVMFS_KCACHE_TIMEOUT", 60);
    const char *hide = config_get(S.cfg, "CVMFS_HIDE_MAGIC_XATTRS", "no");
    S.hide_xattrs = strcmp(hide, "yes") == 0 || strcmp(hide, "1") == 0 || strcmp(hide, "true") == 0;

    long quota = config_long(S.cfg, "CVMFS_QUOTA_LIMIT", 1000);
    char cachedir[PATH_MAX], base[PATH_MAX];
    const char *cache_base = config_get(S.cfg, "CVMFS_CACHE_BASE", "/var/lib/cvmfs");
    snprintf(base, sizeof base, "%s", cache_base);
    if (base[0] != '/' && realpath(cache_base, base) == NULL)
        snprintf(base, sizeof base, "%s", cache_base);
    snprintf(cachedir, sizeof cachedir, "%s/%s", base, S.repo);
    if (mode)
        S.cache = cache_open_shared(cachedir, err, sizeof err);
    else
        S.cache = cache_open(cachedir, quota > 0 ? (uint64_t)quota << 20 : 0, err, sizeof err);
    if (!S.cache)
        goto refuse;
    struct trust trust = {&S.fetcher, S.cache, &S.keys, S.repo};

    if (mode == 't')
        return tool_tags(&trust);
    if (mode == 'D')
        return tool_diff(&trust, argv[optind], argv[optind + 1]);

    if (load_manifest(&trust, !tag, err, sizeof err) < 0)
        goto refuse;
    S.revision = S.manifest.revision;
    snprintf(S.root_hash, sizeof S.root_hash, "%s", S.manifest.catalog);
    if (tag) {
        struct taglist tl;
        if (load_tags(&trust, &tl, &S.offline, err, sizeof err) < 0)
            goto refuse;
        const struct tag *chosen = taglist_get(&tl, tag, err, sizeof err);
        if (!chosen) {
            taglist_free(&tl);
            goto refuse;
        }
        S.revision = chosen->revision;
        snprintf(S.root_hash, sizeof S.root_hash, "%s", chosen->catalog);
        snprintf(S.tag, sizeof S.tag, "%s", chosen->name);
        taglist_free(&tl);
    }
    char catalog_file[PATH_MAX];
    /* even offline (the manifest or tag list from the cache) a catalog not cached is asked for: a server
     * that offers a refused manifest may still serve the objects, which are checked by their hash */
    if (cache_catalog(S.cache, &S.fetcher, S.root_hash, S.repo, 0, catalog_file, sizeof catalog_file, err,
                      sizeof err) < 0)
        goto refuse;
    if (!(S.catalog = catalog_open(catalog_file, S.repo, err, sizeof err)))
        goto refuse;

    char options[1200];
    snprintf(options, sizeof options, "ro,allow_other,default_permissions,fsname=cvmfs2,subtype=cvmfs%s%s",
             fuse_extra[0] ? "," : "", fuse_extra);
    char *fuse_argv[] = {argv[0], "-o", options, debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, fuse_argv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se) {
        snprintf(err, sizeof err, "cannot create the FUSE session (options: %s)", options);
        goto refuse;
    }
    if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, mountpoint) != 0) {
        snprintf(err, sizeof err, "cannot mount on %s (is the fuse module loaded, /dev/fuse there?)", mountpoint);
        fuse_session_destroy(se);
        goto refuse;
    }
    char tagged[TAG_NAME_MAX + 16] = "";
    if (S.tag[0])
        snprintf(tagged, sizeof tagged, "tag %s, ", S.tag);
    char mounted[2048];
    snprintf(mounted, sizeof mounted, "mounted %s %srevision %llu (catalog %.16s) on %s %s%s%s%s", S.repo, tagged,
             (unsigned long long)S.revision, S.root_hash, mountpoint,
             S.offline ? "from the cache (offline)" : "from ", S.offline ? "" : fetcher_host(&S.fetcher),
             S.offline || !fetcher_proxy(&S.fetcher)[0] ? "" : " via ", S.offline ? "" : fetcher_proxy(&S.fetcher));
    log_msg(LOG_INFO_, "%s", mounted);
    /* what was mounted, from where: one line on stdout, as CernVM-FS's mount says it */
    printf("cvmfs2[%s]: %s\n", S.repo, mounted);
    fflush(stdout);
    if (!foreground) {
        log_stderr_off();
        fuse_daemonize(0);
    }
    rc = fuse_session_loop(se);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    catalog_close(S.catalog);
    log_msg(LOG_INFO_, "unmounted %s", S.repo);
    return rc ? 1 : 0;

refuse:
    if (mode)
        log_msg(LOG_ERR_, "cannot %s %s: %s", what, S.repo, err);
    else
        log_msg(LOG_ERR_, "refusing to mount %s%s%s: %s", S.repo, tag ? " tag " : "", tag ? tag : "", err);
    return 1;
}
