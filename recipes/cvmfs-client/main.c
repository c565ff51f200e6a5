/* cvmfs2: mount one repository read-only with FUSE (low-level API).
 *
 *   cvmfs2 [-f] [-d] [-c CONFIG_DIR] [-o FUSE_OPTIONS] REPOSITORY MOUNTPOINT
 *
 * At mount time the manifest is fetched and verified against the trusted keys, and
 * the catalog it names is fetched (or taken from the cache) and checked; any
 * failure is reported and nothing is mounted. With no server reachable the last
 * verified manifest and its catalog in the cache are used (offline mode). Then the
 * client detaches (unless -f) and serves:
 *
 *   lookup, getattr, readdir, readlink   from the catalog (no network)
 *   open                                 from the cache, else downloaded, verified, cached
 *   read                                 from the cached file
 *   getxattr user.revision, user.root_hash, user.hash, user.host, user.proxy, user.fqrn
 *
 * The catalog stays the one of the mounted revision; a new revision is seen by the
 * next mount. */
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
    int offline;
    double kcache;
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
    st->st_mode = e->mode & ~0222;  /* read-only */
    st->st_nlink = e->nlink ? e->nlink : 1;
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
    int fd = cache_open_object(S.cache, e.hash);
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
                               "user.hash", NULL};

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char value[1400];
    struct entry e;

    if (strcmp(name, "user.fqrn") == 0)
        snprintf(value, sizeof value, "%s", S.repo);
    else if (strcmp(name, "user.revision") == 0)
        snprintf(value, sizeof value, "%llu", (unsigned long long)S.manifest.revision);
    else if (strcmp(name, "user.root_hash") == 0)
        snprintf(value, sizeof value, "%s", S.manifest.catalog);
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
    (void)ino;
    for (int i = 0; XATTRS[i]; i++) {
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

/* ---------------------------------------------------------------- mounting */

static int check_manifest(void *ctx, const unsigned char *data, size_t len, char *err, size_t errlen)
{
    (void)ctx;
    return manifest_verify(data, len, &S.keys, S.repo, &S.manifest, err, errlen);
}

/* the manifest to mount: from a server, or (no server reachable) the cached one */
static int load_manifest(char *err, size_t errlen)
{
    unsigned char *data = NULL, *cached = NULL;
    size_t len = 0, cached_len = 0;
    struct manifest remote, old;
    int have_old = 0;
    char why[1024];

    if (cache_load_manifest(S.cache, &cached, &cached_len) == 0) {
        have_old = manifest_verify(cached, cached_len, &S.keys, S.repo, &old, why, sizeof why) == 0;
        if (!have_old)
            log_msg(LOG_WARN_, "ignoring the cached manifest: %s", why);
    }
    enum fetch_status st = fetch_raw(&S.fetcher, "/.cvmfspublished", &data, &len, 1 << 20, check_manifest, NULL,
                                     why, sizeof why);
    if (st == FETCH_OK) {
        remote = S.manifest;
        if (have_old && old.revision > remote.revision) {
            log_msg(LOG_WARN_, "the server offers revision %llu, older than the cached %llu: keeping %llu",
                    (unsigned long long)remote.revision, (unsigned long long)old.revision,
                    (unsigned long long)old.revision);
            S.manifest = old;
        } else if (cache_store_manifest(S.cache, data, len) < 0) {
            log_msg(LOG_WARN_, "cannot keep the manifest in the cache (offline mounts will not work)");
        }
        free(data);
        free(cached);
        return 0;
    }
    if (st == FETCH_DATA_ERR || st == FETCH_LOCAL_ERR) {
        snprintf(err, errlen, "%s", why);
        free(cached);
        return -1;
    }
    if (!have_old) {
        snprintf(err, errlen, "no server can be reached (%s) and there is no cached manifest", why);
        free(cached);
        return -1;
    }
    log_msg(LOG_WARN_, "no server can be reached (%s); mounting revision %llu from the cache (offline)", why,
            (unsigned long long)old.revision);
    S.manifest = old;
    S.offline = 1;
    free(cached);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: cvmfs2 [-f] [-d] [-c CONFIG_DIR] [-o FUSE_OPTIONS] REPOSITORY MOUNTPOINT\n"
                 "  -f  stay in the foreground    -d  debug messages\n"
                 "  -c  configuration directory (default /etc/cvmfs)\n");
}

int main(int argc, char **argv)
{
    const char *config_dir = "/etc/cvmfs", *extra = NULL;
    int foreground = 0, debug = 0, opt;
    char err[2048] = "";

    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'}, {0}};
    while ((opt = getopt_long(argc, argv, "fdc:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': foreground = 1; break;
        case 'd': debug = 1; break;
        case 'c': config_dir = optarg; break;
        case 'o': extra = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("cvmfs2 (appbuild) %s\n", CVMFS_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    S.repo = argv[optind];
    char mountpoint[PATH_MAX];
    if (!realpath(argv[optind + 1], mountpoint)) {
        fprintf(stderr, "cvmfs2: %s: mount point %s: %s\n", S.repo, argv[optind + 1], strerror(errno));
        return 1;
    }
    if (!(S.cfg = config_load(config_dir, S.repo, err, sizeof err)))
        goto refuse;
    char *logfile = expand_repo(config_get(S.cfg, "CVMFS_USYSLOG", ""), S.repo);
    log_open(logfile, S.repo, 1, debug);
    free(logfile);

    char *keyfiles = expand_repo(config_get(S.cfg, "CVMFS_PUBLIC_KEY", ""), S.repo);
    int rc = keyring_load(&S.keys, keyfiles, config_get(S.cfg, "CVMFS_KEYS_DIR", "/etc/cvmfs/keys"), err, sizeof err);
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

    long quota = config_long(S.cfg, "CVMFS_QUOTA_LIMIT", 1000);
    char cachedir[PATH_MAX], base[PATH_MAX];
    const char *cache_base = config_get(S.cfg, "CVMFS_CACHE_BASE", "/var/lib/cvmfs");
    snprintf(base, sizeof base, "%s", cache_base);
    if (base[0] != '/' && realpath(cache_base, base) == NULL)
        snprintf(base, sizeof base, "%s", cache_base);
    snprintf(cachedir, sizeof cachedir, "%s/%s", base, S.repo);
    if (!(S.cache = cache_open(cachedir, quota > 0 ? (uint64_t)quota << 20 : 0, err, sizeof err)))
        goto refuse;

    if (load_manifest(err, sizeof err) < 0)
        goto refuse;
    char catalog_file[PATH_MAX];
    if (cache_catalog(S.cache, &S.fetcher, S.manifest.catalog, S.repo, S.offline, catalog_file, sizeof catalog_file,
                      err, sizeof err) < 0)
        goto refuse;
    if (!(S.catalog = catalog_open(catalog_file, S.repo, err, sizeof err)))
        goto refuse;

    char options[1024];
    snprintf(options, sizeof options, "ro,allow_other,default_permissions,fsname=cvmfs2,subtype=cvmfs%s%s",
             extra ? "," : "", extra ? extra : "");
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
    log_msg(LOG_INFO_, "mounted %s revision %llu (catalog %.16s) on %s %s%s%s%s", S.repo,
            (unsigned long long)S.manifest.revision, S.manifest.catalog, mountpoint,
            S.offline ? "from the cache (offline)" : "from ", S.offline ? "" : fetcher_host(&S.fetcher),
            S.offline || !fetcher_proxy(&S.fetcher)[0] ? "" : " via ", S.offline ? "" : fetcher_proxy(&S.fetcher));
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
    log_msg(LOG_ERR_, "refusing to mount %s: %s", S.repo, err);
    return 1;
}
