# An AutoPackageRecipe as conary's documentation taught them: unpack names the sources,
# configure passes a switch, make and make install are the implicit ones.
class AutoHello(AutoPackageRecipe):
    name = 'autohello'
    version = '1.0'

    def unpack(r):
        r.addSource('configure', mode=0755)
        r.addSource('Makefile.in')
        r.addSource('autohello.c')

    def configure(r):
        r.Configure('--enable-greeting')
