class LibHello(PackageRecipe):
    """A small shared library with versioned symbols: the smallest real C library cook."""

    name = 'libhello'
    version = '1.0'

    def setup(r):
        r.addSource('hello.c')
        r.addSource('hello.h')
        r.addSource('libhello.map')
        r.addSource('Makefile')
        r.Make()
        r.MakeInstall('PREFIX=%(prefix)s LIBDIR=%(libdir)s INCLUDEDIR=%(includedir)s')
