class BaseFiles(PackageRecipe):
    """The directory skeleton of the appliance (FHS), and the few files every system
    has: /etc/profile, /etc/shells, /etc/issue, the /etc/mtab link."""

    name = 'base-files'
    version = '1.0'

    def setup(r):
        r.MakeDirs('/bin', '/sbin', '/usr/bin', '/usr/sbin', '/usr/lib', '/usr/share', '/lib', '/etc',
                   '/dev', '/proc', '/sys', '/run', '/mnt', '/media', '/opt', '/srv', '/home', '/boot',
                   '/var/log', '/var/lib', '/var/cache', '/var/spool', '/etc/rc.d')
        r.MakeDirs('/tmp', '/var/tmp', mode=0o1777)
        r.MakeDirs('/root', mode=0o700)
        r.addSource('profile')
        r.Install('profile', '%(sysconfdir)s/profile', mode=0o644)
        r.Create('%(sysconfdir)s/shells', contents='/bin/sh\n/bin/ash\n')
        r.Create('%(sysconfdir)s/issue', contents='CernVM appliance (built by appbuild) \\n \\l\n\n')
        r.Symlink('/proc/self/mounts', '%(sysconfdir)s/mtab')
