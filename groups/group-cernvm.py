class GroupCernvm(GroupRecipe):
    """The CernVM appliance: just enough OS. A kernel and the modules the appliance
    uses, a static busybox cooked from Debian's source, the base files and our own
    init; the file system client that brings the experiment software (cvmfs-client,
    with the keys and servers of the repositories it trusts) and the contextualization
    agent. Everything they need (the C library, libfuse3, SQLite, libsodium, zlib for
    the client) is found by dependency resolution."""

    name = 'group-cernvm'
    version = '1.0'
    imageGroup = True
    hostname = 'cernvm'
    # an SSH key or password given at boot (metadata, OVF environment, user data) is for this user
    loginUser = 'cernvm'
    # kept in the root file system (with their dependencies) and loaded at boot
    kernelModules = ('vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8', 'virtio_net', 'e1000', 'fuse', 'isofs')

    def setup(r):
        r.add('base-files')
        r.add('busybox')
        r.add('appliance-init')
        r.add('appliance-grow')
        r.add('cvmfs-client')
        r.add('cvmfs-keys')
        r.add('cernvm-context')
        # the way in: a small SSH server from the Debian archive, started by appliance-sshd
        r.add('dropbear-bin')
        r.add('appliance-sshd')
        # the kernel comes from the Debian archive (appbuild import deb linux-image-...)
        r.add('linux-image-*-amd64' if r.arch == 'x86_64' else 'linux-image-*-686')
