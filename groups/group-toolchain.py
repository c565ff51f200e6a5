class GroupToolchain(GroupRecipe):
    """The build root every cook runs in: a pinned Debian 12 toolchain, imported from
    the Debian archive as capsules, never the build machine's own compiler.

    It holds what conary's and Debian's build-essential promise a recipe without
    declaring it: a POSIX shell and bash, coreutils, sed, grep, awk, find, diff, tar
    and the (de)compressors, patch, make, file, pkg-config, GCC 12 (C and C++) with
    binutils and the C library's development files, the 32-bit multilib parts that
    'gcc -m32' needs for x86 cooks, and perl with dpkg-dev for unpacking Debian
    source packages. Anything else a recipe uses must be in its buildRequires.

    The group is resolved for the build machine (x86_64), which builds for both
    arches: x86 cooks compile with -m32 against lib32gcc-12-dev and
    libc6-dev-i386. Every package is named here, libraries included, so that this
    file is the complete, reviewable list of what a build root holds; resolution
    only checks that nothing is missing. 'appbuild import upstream' imports exactly
    these packages (repo/config.yaml: 'group: group-toolchain'); a new Debian point
    release gives a new group version, and every recipe cooks again against it.
    """

    name = 'group-toolchain'
    version = '12'
    # links Debian's maintainer scripts make with update-alternatives (the package
    # archives do not carry them)
    links = {
        '/usr/bin/awk': 'mawk',
        '/usr/bin/cc': 'gcc',
        '/usr/bin/c++': 'g++',
    }

    packages = (
        # shells and the POSIX userland
        'dash', 'bash', 'coreutils', 'sed', 'grep', 'mawk', 'findutils', 'diffutils',
        'debianutils', 'libc-bin', 'file', 'libmagic1', 'libmagic-mgc',
        # archives and compressors
        'tar', 'gzip', 'bzip2', 'xz-utils', 'zstd', 'patch',
        # make, pkg-config
        'make', 'pkgconf', 'pkgconf-bin', 'libpkgconf3',
        # GCC 12 and binutils
        'gcc', 'gcc-12', 'cpp', 'cpp-12', 'gcc-12-base', 'g++', 'g++-12', 'libstdc++-12-dev',
        'libgcc-12-dev', 'libcc1-0', 'libisl23', 'libmpc3', 'libmpfr6', 'libgmp10',
        'binutils', 'binutils-common', 'binutils-x86-64-linux-gnu', 'libbinutils', 'libctf0',
        'libctf-nobfd0', 'libgprofng0', 'libjansson4',
        # the C library and its development files
        'libc6', 'libc6-dev', 'libc-dev-bin', 'linux-libc-dev', 'libcrypt-dev', 'libcrypt1',
        'libgcc-s1', 'libstdc++6', 'libgomp1', 'libitm1', 'libatomic1', 'libquadmath0',
        # -m32 for x86 cooks
        'gcc-multilib', 'gcc-12-multilib', 'lib32gcc-12-dev', 'libc6-dev-i386', 'libc6-i386',
        'lib32gcc-s1', 'lib32stdc++6', 'lib32gomp1', 'lib32itm1', 'lib32atomic1', 'lib32quadmath0',
        # perl and dpkg-dev: dpkg-source unpacks Debian source packages
        'perl', 'perl-base', 'perl-modules-5.36', 'libperl5.36', 'libdpkg-perl', 'dpkg', 'dpkg-dev',
        'libdb5.3', 'libgdbm6', 'libgdbm-compat4',
        # libraries the tools above link
        'zlib1g', 'libzstd1', 'libbz2-1.0', 'liblzma5', 'libmd0', 'libselinux1', 'libpcre2-8-0',
        'libacl1', 'libattr1', 'libtinfo6', 'liblz4-1',
    )

    def setup(r):
        for package in r.packages:
            r.add(package)
