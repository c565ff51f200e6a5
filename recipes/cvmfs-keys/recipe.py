class CvmfsKeys(PackageRecipe):
    """The repositories the appliance trusts: the public keys of their publishers
    (/etc/cvmfs/keys/NAME.pub, Ed25519 in PEM) and where each is served from
    (/etc/cvmfs/config.d/NAME.conf), as CernVM-FS's configuration packages ship them.
    The private keys stay with the publishers ('appbuild fs keygen' makes a pair)."""

    name = 'cvmfs-keys'
    version = '1.0'

    def setup(r):
        for repo in ('sft.cern.ch', 'grid.cern.ch'):
            r.addSource(f'keys/{repo}.pub')
            r.addSource(f'config.d/{repo}.conf')
            r.Install(f'{repo}.pub', f'%(sysconfdir)s/cvmfs/keys/{repo}.pub', mode=0o644)
            r.Install(f'{repo}.conf', f'%(sysconfdir)s/cvmfs/config.d/{repo}.conf', mode=0o644)
