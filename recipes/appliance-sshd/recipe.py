class ApplianceSshd(PackageRecipe):
    """The way in over the network: /etc/rc.d/S60sshd starts dropbear (Debian's
    dropbear-bin, a small SSH server) after contextualization (S50cernvm-context has put
    the keys and password hashes given at boot in place). Host keys are made at first
    boot in /etc/dropbear (Ed25519 and ECDSA at once, others when a client asks for
    them) and their fingerprints are shown on the console. Root never logs in over SSH
    (dropbear -w) and stays locked. When no user can log in (no key and no password
    was given), the console says how to give one."""

    name = 'appliance-sshd'
    version = '1.0'

    def setup(r):
        r.addSource('sshd.init')
        r.Install('sshd.init', '%(sysconfdir)s/rc.d/S60sshd', mode=0o755)
        r.MakeDirs('%(sysconfdir)s/dropbear', mode=0o700)
        # the server and its key tool come from dropbear-bin, the applets from busybox
        r.Requires('file: /usr/sbin/dropbear', '%(sysconfdir)s/rc.d/S60sshd')
        r.Requires('file: /usr/bin/dropbearkey', '%(sysconfdir)s/rc.d/S60sshd')
