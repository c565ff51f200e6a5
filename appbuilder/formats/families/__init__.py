"""The format families: one class per way of making a disk, found by ``family:`` in NAME.yaml.

=========  ==============================================  =====================
family     its disk                                        packaged formats
=========  ==============================================  =====================
raw        a sparse copy of the assembled disk             raw, ami
qcow2      ``qemu-img convert -O qcow2``                   qcow2
vmdk       monolithicSparse or streamOptimized VMDK        vmdk, vmdk-esx
ova        a streamOptimized VMDK and its OVF, in a tar    ova
vhd        fixed or dynamic VHD (qemu's ``vpc``)           vhd, vhd-dynamic
=========  ==============================================  =====================

A new format of an existing family is one data file; a new family is one module here
(a subclass of :class:`~appbuilder.formats.families.base.Format` with ``family="name"``,
imported below) and one data file. :func:`family` finds a class by name;
``describe()`` on a class gives its documentation.
"""

from __future__ import annotations

from pathlib import Path

from appbuilder.formats.families import qcow2, raw, vhd, vmdk  # noqa: F401  (each registers its classes)
from appbuilder.formats.families.base import FAMILIES, Format, FormatError


def family(name, path: Path | None = None) -> type[Format]:
    """The family class called *name*; refuses an unknown one naming the data file *path*."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise FormatError(f"{path}: unknown family {name!r}; known families: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def families() -> dict[str, type[Format]]:
    """Every family, by name."""
    return dict(sorted(FAMILIES.items()))
