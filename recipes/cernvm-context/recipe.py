class CernvmContext(PackageRecipe):
    """Contextualization at boot, as CernVM did: /usr/sbin/cernvm-context reads EC2-style
    user data (a config drive labelled cidata, or the EC2 metadata service), and applies
    its [cernvm] section: organisations, users, environment, cvmfs proxy and quota,
    repositories mounted under /cvmfs, services, and a contextualization command run
    as a user. An OVF environment (ovf-env.xml on a CD-ROM, as vSphere passes it) gives
    the same settings through the same code, and EC2 or OpenStack metadata the public
    keys of the login user (LOGIN_USER of /etc/appliance-release, made at boot when a
    key or a password hash is given; root stays locked). /etc/rc.d/S50cernvm-context
    runs it after the network is up; it also brings the services it can start
    (/etc/init.d/syslogd, /etc/init.d/crond)."""

    name = 'cernvm-context'
    version = '1.0'

    def setup(r):
        r.addSource('cernvm-context')
        r.addSource('syslogd.init')
        r.addSource('crond.init')
        r.Install('cernvm-context', '%(sbindir)s/cernvm-context', mode=0o755)
        r.Symlink('%(sbindir)s/cernvm-context', '%(sysconfdir)s/rc.d/S50cernvm-context')
        r.Install('syslogd.init', '%(initdir)s/syslogd', mode=0o755)
        r.Install('crond.init', '%(initdir)s/crond', mode=0o755)
        r.MakeDirs('/media/context')
        # the applets it runs (findfs, mount, mkpasswd, su, wget, timeout) are busybox's;
        # repositories are mounted with cvmfs-client's mount.cvmfs
        r.Requires('file: /sbin/findfs', '%(sbindir)s/cernvm-context')
        r.Requires('file: /bin/su', '%(sbindir)s/cernvm-context')
        r.Requires('file: /sbin/mount.cvmfs', '%(sbindir)s/cernvm-context')
