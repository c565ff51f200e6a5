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
    the catalog: an SQLite database of the tree (paths, types, modes, owners, sizes,
    mtimes, symlinks, device numbers, content hashes), stored as an object too
    (:mod:`appbuilder.fs.catalog`).
``.cvmfstags``
    the tag list: names for revisions that stay (``--tag 1.0-1-2``: name, revision,
    catalog hash, time), signed; a tag never changes (:mod:`appbuilder.fs.tags`).
``.cvmfspublished``
    the manifest: the root catalog's hash and the revision, signed with the
    repository's Ed25519 key (:mod:`appbuilder.fs.manifest`, :mod:`appbuilder.fs.keys`);
    written last and atomically, after the tag list.

Manifest and tag list expire (30 days unless ``--valid-days`` says otherwise), so a
server cannot keep showing clients an old revision for ever; ``appbuild fs resign``
signs the current state again with a new expiry (run it from cron). Publishing again
makes a new revision, writing only objects that are not there yet; publishing a tree
that is published already changes nothing (:mod:`appbuilder.fs.publish`). Old
revisions' objects stay until ``appbuild fs gc`` deletes what neither the current nor
a tagged revision needs (:mod:`appbuilder.fs.gc`); ``appbuild fs tags`` lists the
tags, and :mod:`appbuilder.fs.check` (``appbuild fs check``) verifies a published
tree end to end, every tagged revision included, as the client would.
"""
