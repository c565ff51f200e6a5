class Busybox(PackageRecipe):
    """BusyBox, statically linked, built from Debian's source package with Debian's
    own 'static' configuration (the one busybox-static ships): the shell, init,
    mount, switch_root, module tools, mdev, udhcpc and wget of the appliance."""

    name = 'busybox'
    version = '1.35.0'
    license = 'GPL-2.0-only'

    def setup(r):
        r.addDebianSource('busybox', '1:1.35.0-4+deb12u1',
                          sha256='9c01fe128b0eeded371c70e37d474fdb5055f71b5d0a778db44c6b0c62d3a7fa')
        # busybox builds with -Os of its own; keep only the architecture and debug flags
        r.macros.optflags = ''
        r.Run('mkdir -p b && cat debian/config/os/linux debian/config/pkg/static > b/.config')
        r.Run('yes "" | make -C b -f %(builddir)s/Makefile KBUILD_SRC=%(builddir)s silentoldconfig',
              env={'KCONFIG_NOTIMESTAMP': '1'})
        flags = ('SKIP_STRIP=y KCONFIG_NOTIMESTAMP=1 BB_EXTRA_VERSION="appbuild %(version)s" '
                 'CONFIG_EXTRA_CFLAGS="%(cflags)s" CONFIG_EXTRA_LDFLAGS="%(ldflags)s"')
        r.Make('-C b busybox ' + flags)
        r.Make('-C b busybox.links ' + flags, parallel=False)
        r.Install('b/busybox', '%(essentialbindir)s/busybox', mode=0o755)
        # one symlink per applet, as 'busybox --install -s' would make at run time
        r.Run('for link in $(cat b/busybox.links); do '
              'mkdir -p "%(destdir)s${link%/*}"; '
              '[ "$link" = /bin/busybox ] || ln -s /bin/busybox "%(destdir)s$link"; done')
        r.Install('debian/busybox-static.lintian-overrides', '%(thisdocdir)s/lintian-overrides')
