class GroupCernvmEl(GroupRecipe):
    """The CernVM appliance on an EL base ("a minimal SL-compatible OS"): group-cernvm's own
    packages (init, busybox, the file system client and its keys, contextualization, SSH)
    and kernel, with the operating system under them taken from an rpm-md repository: the
    source `el` of the `sources:` setting (a Scientific Linux, AlmaLinux or Rocky mirror;
    see repo/config.yaml). The C library comes from there by soname (Debian's is left out),
    and the packages it brings by their RPM Requires (glibc -> basesystem -> filesystem,
    the directory tree, and setup: /etc/passwd, /etc/group, /etc/shells, /etc/profile,
    in place of group-cernvm's base-files); any other library the repository lacks is
    looked up there too. Their scriptlets run at image time, rootless. x86_64 only (EL has
    no 32-bit base system). The cooked packages are built by the Debian 12 toolchain
    (glibc 2.36): an EL 9 mirror's C library (glibc 2.34) cannot meet the newer symbol
    versions they may need, so a real EL base also needs an EL toolchain group."""

    name = 'group-cernvm-el'
    version = '1.0'
    imageGroup = True
    hostname = 'cernvm'
    loginUser = 'cernvm'
    kernelModules = ('vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8', 'virtio_net', 'e1000', 'fuse', 'isofs')
    # search the EL repository for what the repository lacks, following the RPM Requires
    # (rich dependencies too) of what comes from there, and run the packages' scriptlets
    resolveSources = ('el',)
    upstreamRelations = True
    packageScripts = True

    def setup(r):
        # no base-files: the directories and /etc (accounts, shells, profile) are EL's
        # filesystem and setup packages', which the C library brings
        r.add('busybox')
        r.add('appliance-init')
        r.add('appliance-grow')
        r.add('cvmfs-client')
        r.add('cvmfs-keys')
        r.add('cernvm-context')
        r.add('dropbear-bin')
        r.add('appliance-sshd')
        r.add('linux-image-*-amd64' if r.arch == 'x86_64' else 'linux-image-*-686')
        # the C library is EL's: without Debian's in the way, the members' libc.so.6 and
        # ld-linux requirements are looked up in the `el` source
        r.remove('libc6')
