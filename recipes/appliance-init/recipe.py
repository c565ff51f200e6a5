class ApplianceInit(PackageRecipe):
    """The appliance's own boot scripts, run by busybox init: /etc/inittab and
    /etc/init.d/rcS (mount; at first boot, growing the root to the end of its disk
    with appliance-grow when the image has it, or, booted from the network, the data
    partition on /var/lib/appliance-os; modules, hostname, network loopback, the
    boot marker, then the site scripts in /etc/rc.d), /etc/mdev.conf (device node modes), and the
    network: /etc/rc.d/S10network asks for a DHCP lease on every network interface,
    and udhcpc's script applies it. /usr/bin/appliance answers what the appliance is
    ('appliance release') and holds ('appliance query': the inventory appbuild wrote).

    On a network-booted appliance (its OS a tagged version in an fs repository, mounted
    by the initramfs under a writable layer) it also says and chooses which version runs:
    'appliance status' (the version running, pinned by the image, the one the next boot
    runs and why, the one to roll back to, online or offline, and the repository's tags),
    'appliance update [TAG|latest]' (the next boot runs TAG; first it names the files you
    changed that TAG changes too: yours are kept, nothing is deleted) and 'appliance
    rollback' (the next boot runs the version booted before this one). A switch takes
    effect at the next boot. On an appliance that boots from its disk they say it is
    updated with a new image. They ask the repository through cvmfs2 --tags and --diff."""

    name = 'appliance-init'
    version = '1.0'

    def setup(r):
        r.addSource('inittab')
        r.addSource('rcS')
        r.addSource('S10network')
        r.addSource('udhcpc.script')
        r.addSource('mdev.conf')
        r.addSource('appliance')
        r.Install('inittab', '%(sysconfdir)s/inittab', mode=0o644)
        r.Install('rcS', '%(sysconfdir)s/init.d/rcS', mode=0o755)
        r.Install('mdev.conf', '%(sysconfdir)s/mdev.conf', mode=0o644)
        r.Install('S10network', '%(sysconfdir)s/rc.d/S10network', mode=0o755)
        r.Install('udhcpc.script', '%(datadir)s/udhcpc/default.script', mode=0o755)
        # 'appliance query': the image's inventory (written by appbuild into /usr/share/appbuild);
        # 'appliance status|update|rollback' on a network-booted appliance, with its cvmfs2
        r.Install('appliance', '%(bindir)s/appliance', mode=0o755)
        # init itself, and the applets rcS uses, come from busybox
        r.Requires('file: /sbin/init', '%(sysconfdir)s/init.d/rcS')
        r.Requires('file: /sbin/udhcpc', '%(sysconfdir)s/rc.d/S10network')
