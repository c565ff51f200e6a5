class GroupDebianMinimal(GroupRecipe):
    """A minimal Debian system, top-down: it names only systemd as init and a kernel;
    everything else (Debian's Essential set, systemd's libraries, what the kernel's
    postinst needs) is found by resolution against the Debian archive (the machine's
    own apt sources) and imported as capsules. The packages' maintainer scripts run at
    image time, rootless, so accounts, alternatives and generated files are Debian's
    own. The image boots to systemd's multi-user target; appbuild's boot marker unit
    says so on the console."""

    name = 'group-debian-minimal'
    version = '12'
    imageGroup = True
    hostname = 'debian'
    # search the Debian archive for what the repository lacks, following Debian's own
    # Depends and Pre-Depends, from Debian's Essential set up
    resolveSources = ('debian',)
    upstreamRelations = True
    upstreamBase = 'essential'
    # maintainer scripts run at image time; /bin, /sbin and /lib are links into /usr
    packageScripts = True
    mergedUsr = True
    # /boot is a FAT partition
    kernelModules = ('vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8')

    def setup(r):
        r.add('systemd-sysv')
        r.add('linux-image-amd64' if r.arch == 'x86_64' else 'linux-image-686')
