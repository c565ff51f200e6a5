loadSuperClass('cprogram=1.0')


class Greet(CProgramRecipe):
    name = 'greet'
    version = '0.3'
    extraCFlags = '-DGREETING=1'

    def extras(r):
        r.macros.greetdir = '%(datadir)s/greet'
        r.Create('%(greetdir)s/README', contents='greet is built from the cprogram superclass\n')
