"""Capsules: upstream binary packages (RPM, DEB) imported unmodified as appbuild troves.

An imported package ``NAME`` becomes a package trove with one component, ``NAME:rpm``
or ``NAME:deb``, holding every file of the package (conary's PureCapsuleComponents).
Its version carries the upstream version (``label/[epoch:]version-release-S-B``), its
flavor the package's architecture, and its dependencies are mapped onto appbuild's
dependency classes so that capsules and cooked packages resolve against each other.

Modules:

* :mod:`~appbuilder.capsule.model`: :class:`Capsule` (a package read, not yet committed)
* :mod:`~appbuilder.capsule.payload`: the checks every extracted member passes; storing contents
* :mod:`~appbuilder.capsule.scan`: appbuild's own dependency scan of capsule contents
* :mod:`~appbuilder.capsule.rpmsig`: trusted keys, header reading, signature checks
* :mod:`~appbuilder.capsule.rpm`: an .rpm file read with the rpm bindings
* (:mod:`~appbuilder.upstream.depmap` maps RPM and Debian dependency forms → ``Dependency``;
  :mod:`~appbuilder.upstream.rpmmd` reads rpm-md repositories)
* :mod:`~appbuilder.capsule.rpmselect`: which packages of a repository (``--only`` closures)
* :mod:`~appbuilder.capsule.deb`: a .deb file read with dpkg-deb
* :mod:`~appbuilder.capsule.debapt`: Debian packages by name through the machine's apt
* :mod:`~appbuilder.capsule.importer`: committing capsules (versions, no-ops, labels)
* :mod:`~appbuilder.capsule.rpmdb`: the RPM database of a root staged from RPM capsules
"""

# bump when the mapping of a package onto a trove changes: re-importing the same file
# then makes a new build instead of being a no-op
CAPSULE_FORMAT = 3  # 3: a shared object without a soname in a library directory provides its file name
