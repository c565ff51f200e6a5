class CvmfsClient(PackageRecipe):
    """cvmfs2, a read-only FUSE client for CernVM-FS-style repositories published with
    'appbuild fs publish', from our own sources (beside this recipe): it verifies the
    signed manifest, serves the tree from the SQLite catalog (owners, groups, devices
    and FIFOs as published), downloads a file's object when it is opened (HTTP, proxies
    and servers with CernVM-FS failover), checks its hash, and keeps it in a cache with
    a quota. Also /sbin/mount.cvmfs and /etc/cvmfs/default.conf.

    Trust: only keys listed for the repository are trusted (a whitelist, as CernVM-FS
    has): for REPO, /etc/cvmfs/keys/REPO.pub, keys/REPO/*.pub and keys/DOMAIN/*.pub
    (DOMAIN: REPO without its first label), or the files CVMFS_PUBLIC_KEY names in
    config.d/REPO.conf. A manifest or tag list is refused, the reason on the console and
    in the log, when its key is not listed for the repository, its signature is bad, it
    is another repository's, it has no expiry time or is past it, or it is older than
    the copy seen before (a replay: "replay: the manifest has revision 1 ..., older than
    the cached verified copy (revision 2 ...)"). A refused copy counts as that server
    failing: the next one is asked, and with none left the newest verified copy in the
    cache is used, offline, which is said (even past its expiry: it was verified when
    fetched).

    Tags: 'cvmfs2 -o tag=NAME REPO DIR' (or mount -t cvmfs -o tag=NAME) mounts the
    revision the signed tag list names NAME ('latest': the newest tag), online or from
    the cached list; the xattr user.tag says which. 'cvmfs2 --tags REPO' prints the
    verified tag list ("# REPO: tag list revision S signed ... expires ... (online from
    URL)", then "NAME REVISION CATALOG TIME" per tag); 'cvmfs2 --diff FROM TO REPO'
    prints "M /path", "A /path" or "D /path" for each entry that differs between two
    tags (not the time alone). Both run beside a mount of the same cache.

    The cache's share: it holds up to CVMFS_QUOTA_LIMIT MB (least recently used files
    go first) while the file system under CVMFS_CACHE_BASE has room, and always leaves
    1 MB free there. Its effective limit is the smaller of the quota and what it holds
    plus that file system's free space; at mount the log says when the disk, not the
    quota, is the limit ("the effective limit is X MB": the quota cannot be honoured),
    and df on the mount point shows the effective limit. A file that does not fit
    fails to open with ENOSPC and the log names the limit reached: "the cache is full
    (quota)" or "the disk is full".

    It links libfuse3, libsqlite3, libsodium (SHA-256 and Ed25519: a tenth of OpenSSL's
    libcrypto, which keeps the network-booting image small) and zlib from Debian's
    capsules; the image gets them through their sonames (automatic dependency
    discovery)."""

    name = 'cvmfs-client'
    version = '1.0'
    # the -dev capsules hold headers and link-time files; the runtime ones the libraries
    buildRequires = ['libfuse3-dev', 'libfuse3-3', 'libsqlite3-dev', 'libsqlite3-0',
                     'libsodium-dev', 'libsodium23', 'zlib1g-dev', 'zlib1g']

    def setup(r):
        for source in ('cvmfs2.h', 'main.c', 'config.c', 'log.c', 'http.c', 'download.c', 'cache.c',
                       'manifest.c', 'tags.c', 'trust.c', 'catalog.c', 'crypto.c', 'Makefile', 'mount.cvmfs',
                       'default.conf'):
            r.addSource(source)
        r.Make('CC="%(cc)s" CFLAGS="%(cflags)s" LDFLAGS="%(ldflags)s"')
        r.MakeInstall('PREFIX=%(prefix)s')
        r.MakeDirs('/cvmfs', '%(localstatedir)s/lib/cvmfs', '%(localstatedir)s/log/cvmfs',
                   '%(sysconfdir)s/cvmfs/config.d', '%(sysconfdir)s/cvmfs/keys')
