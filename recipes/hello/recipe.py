class Hello(PackageRecipe):
    """A program linking libhello, a shell script, a config file and a man page."""

    name = 'hello'
    version = '1.0'
    buildRequires = ['libhello:devel']

    def setup(r):
        r.addSource('main.c')
        r.addSource('hello-all.sh')
        r.addSource('hello.1')
        r.Run('%(cc)s %(cflags)s %(ldflags)s -o hello main.c -lhello')
        r.Install('hello', '%(bindir)s/hello')
        r.Install('hello-all.sh', '%(bindir)s/hello-all', mode=0o755)
        r.Install('hello.1', '%(mandir)s/man1/hello.1')
        r.Create('%(sysconfdir)s/hello.conf', contents='greeting_target = world\n')
