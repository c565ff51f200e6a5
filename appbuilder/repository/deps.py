"""Typed dependencies: what a trove provides and what it requires.

A dependency is a class, a name and a set of flags, written ``class: name(flag flag)``:

=============  =====================================================================
class          meaning
=============  =====================================================================
``soname``     a shared library by ELF class and soname, flags name the machine and the
               symbol versions: ``soname: ELF64/libc.so.6(GLIBC_2.34 x86_64)``
``file``       a path that must exist: ``file: /bin/sh``
``trove``      another trove by name: ``trove: busybox:runtime``
``abi``        the ELF ABI a binary runs on: ``abi: ELF64(SysV x86_64)``
``rpmlib``     an rpmlib feature an RPM capsule needs (satisfied by the installer)
``rpm``        an RPM capability appbuild has no class of its own for
``deb``        a Debian package relation appbuild has no class of its own for
``python``     a Python module
=============  =====================================================================

A requirement is met by a provision of the same class and name whose flags include
all of the requirement's flags: ``soname: ELF64/libc.so.6(GLIBC_2.2.5 x86_64)`` meets
``soname: ELF64/libc.so.6(x86_64)``, but ``soname: ELF32/libc.so.6(x86)`` does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appbuilder.core.errors import RepositoryError

DEP_CLASSES = ("soname", "file", "trove", "abi", "rpmlib", "rpm", "deb", "python", "userinfo", "groupinfo")

_DEP_RE = re.compile(r"^\s*([a-z]+):\s*(\S+?)(?:\((.*)\))?\s*$")


@dataclass(frozen=True, order=True)
class Dependency:
    cls: str
    name: str
    flags: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.cls not in DEP_CLASSES:
            raise RepositoryError(f"unknown dependency class {self.cls!r} in {self}")
        if not self.name or any(c.isspace() for c in self.name):
            raise RepositoryError(f"bad dependency name {self.name!r}")
        if not isinstance(self.flags, frozenset):
            object.__setattr__(self, "flags", frozenset(self.flags))

    def __str__(self) -> str:
        if self.flags:
            return f"{self.cls}: {self.name}({' '.join(sorted(self.flags))})"
        return f"{self.cls}: {self.name}"

    @classmethod
    def parse(cls, text: str) -> "Dependency":
        m = _DEP_RE.match(text)
        if not m:
            raise RepositoryError(f"bad dependency {text!r}: expected 'class: name(flags)'")
        dep_cls, name, flags = m.groups()
        return cls(dep_cls, name, frozenset((flags or "").split()))

    @property
    def flags_text(self) -> str:
        return " ".join(sorted(self.flags))

    def satisfied_by(self, provision: "Dependency") -> bool:
        return (
            provision.cls == self.cls
            and provision.name == self.name
            and self.flags <= provision.flags
        )


def soname(elf: str, name: str, machine: str, versions=()) -> Dependency:
    """``soname: ELF64/libfoo.so.1(x86_64 [symbol versions])``."""
    return Dependency("soname", f"{elf}/{name}", frozenset((machine, *versions)))


def file_dep(path: str) -> Dependency:
    return Dependency("file", path)


def trove_dep(name: str) -> Dependency:
    return Dependency("trove", name)
