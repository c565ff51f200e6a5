# A superclass of the recipe library: a program made of one C file, NAME.c beside the
# recipe that uses it, installed as %(bindir)s/NAME. Users set cflags or add files.
class CProgramRecipe(CPackageRecipe):
    name = 'cprogram'
    version = '1.0'
    abstractBaseClass = 1

    extraCFlags = ''

    def setup(r):
        r.addSource(r.name + '.c')
        r.Run('%(cc)s %(cflags)s ' + r.extraCFlags + ' %(ldflags)s -o %(name)s %(name)s.c')
        r.Install('%(name)s', '%(bindir)s/%(name)s', mode=0755)
        r.extras()

    def extras(r):
        pass
