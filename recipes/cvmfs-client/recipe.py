class CvmfsClient(PackageRecipe):
    """cvmfs2, a read-only FUSE client for CernVM-FS-style repositories published with
    'appbuild fs publish', from our own sources (beside this recipe): it verifies the
    signed manifest against /etc/cvmfs/keys, serves the tree from the SQLite catalog,
    downloads a file's object when it is opened (HTTP, proxies and servers with
    CernVM-FS failover), checks its hash, and keeps it in a cache with a quota. Also
    /sbin/mount.cvmfs and /etc/cvmfs/default.conf.

    The cache's share: it holds up to CVMFS_QUOTA_LIMIT MB (least recently used files
    go first) while the file system under CVMFS_CACHE_BASE has room, and always leaves
    1 MB free there. Its effective limit is the smaller of the quota and what it holds
    plus that file system's free space; at mount the log says when the disk, not the
    quota, is the limit ("the effective limit is X MB": the quota cannot be honoured),
    and df on the mount point shows the effective limit. A file that does not fit
    fails to open with ENOSPC and the log names the limit reached: "the cache is full
    (quota)" or "the disk is full".

    It links libfuse3, libsqlite3, OpenSSL's libcrypto (SHA-256 with the CPU's SHA
    instructions, Ed25519) and zlib from Debian's capsules; the image gets them through
    their sonames (automatic dependency discovery)."""

    name = 'cvmfs-client'
    version = '1.0'
    # the -dev capsules hold headers and link-time files; the runtime ones the libraries
    buildRequires = ['libfuse3-dev', 'libfuse3-3', 'libsqlite3-dev', 'libsqlite3-0',
                     'libssl-dev', 'libssl3', 'zlib1g-dev', 'zlib1g']

    def setup(r):
        for source in ('cvmfs2.h', 'main.c', 'config.c', 'log.c', 'http.c', 'download.c', 'cache.c',
                       'manifest.c', 'catalog.c', 'crypto.c', 'Makefile', 'mount.cvmfs', 'default.conf'):
            r.addSource(source)
        r.Make('CC="%(cc)s" CFLAGS="%(cflags)s" LDFLAGS="%(ldflags)s"')
        r.MakeInstall('PREFIX=%(prefix)s')
        r.MakeDirs('/cvmfs', '%(localstatedir)s/lib/cvmfs', '%(localstatedir)s/log/cvmfs',
                   '%(sysconfdir)s/cvmfs/config.d', '%(sysconfdir)s/cvmfs/keys')
