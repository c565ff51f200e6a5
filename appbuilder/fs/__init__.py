"""A CernVM-FS-style repository: publish a directory tree as a static HTTP tree.

The experiment software an appliance runs is not in its image: it lives in a
repository on plain web servers, and the appliance's file system client
(``recipes/cvmfs-client``) downloads a file only when it is opened. ``appbuild fs
publish DIR --repo NAME --to OUT`` writes such a repository under ``OUT/NAME``:

``data/ab/cdef...``
    every file's content, zlib-compressed and named by the SHA-256 of the compressed
    bytes (:mod:`appbuilder.fs.objects`); immutable, so any proxy or CDN may cache it
    for ever.
``data/12/3456...C``
    the catalog: an SQLite database of the tree (paths, modes, sizes, mtimes,
    symlinks, content hashes), stored as an object too (:mod:`appbuilder.fs.catalog`).
``.cvmfspublished``
    the manifest: the root catalog's hash and the revision, signed with the
    repository's Ed25519 key (:mod:`appbuilder.fs.manifest`, :mod:`appbuilder.fs.keys`);
    the only file that changes, written last and atomically.

Publishing again makes a new revision and writes only objects that are not there
yet (:mod:`appbuilder.fs.publish`); :mod:`appbuilder.fs.check` verifies a published
tree end to end, as the client would.
"""
