class ApplianceInit(PackageRecipe):
    """The appliance's own boot scripts, run by busybox init: /etc/inittab and
    /etc/init.d/rcS (mount, modules, hostname, network loopback, the boot marker,
    then the site scripts in /etc/rc.d)."""

    name = 'appliance-init'
    version = '1.0'

    def setup(r):
        r.addSource('inittab')
        r.addSource('rcS')
        r.Install('inittab', '%(sysconfdir)s/inittab', mode=0o644)
        r.Install('rcS', '%(sysconfdir)s/init.d/rcS', mode=0o755)
        # init itself, and the applets rcS uses, come from busybox
        r.Requires('file: /sbin/init', '%(sysconfdir)s/init.d/rcS')
