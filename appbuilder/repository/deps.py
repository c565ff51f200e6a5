"""Typed dependencies: what a trove provides and what it requires.

A dependency is a class, a name and a set of flags, written ``class: name(flag flag)``.
Each class is an object of :mod:`appbuilder.repository.depclasses` (``dep.kind``) that
knows how its text reads, what meets it, whether the closure resolves it and where its
providers are found:

{classes}

A requirement is met by a provision of the same class and name whose flags include
all of the requirement's flags: ``soname: ELF64/libc.so.6(GLIBC_2.2.5 x86_64)`` meets
``soname: ELF64/libc.so.6(x86_64)``, but ``soname: ELF32/libc.so.6(x86)`` does not.

Classes without flags read everything after ``class:`` as the name, so an RPM
capability keeps its parentheses: ``rpm: perl(Foo::Bar)``. Classes with flags take the
last parenthesised group as the flags, and write it (empty if need be) whenever the
name holds a parenthesis, so that every dependency reads back as it was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appbuilder.core.errors import RepositoryError
from appbuilder.repository.depclasses import (  # noqa: F401  (the classes are used through this module)
    ABI,
    DEB,
    DEP_CLASSES,
    FILE,
    GROUPINFO,
    PYTHON,
    RPM,
    RPMLIB,
    SONAME,
    TROVE,
    USERINFO,
    DepClass,
    Lookup,
    ProvisionIndex,
    RepositoryLookup,
    class_table,
    dep_class,
    split_flags,
)

if __doc__:
    __doc__ = __doc__.replace("{classes}", class_table())

_DEP_RE = re.compile(r"^\s*([a-z]+):\s*(\S(?:.*\S)?)\s*$")


@dataclass(frozen=True, order=True)
class Dependency:
    cls: str  # the class's registered name (a DepClass is accepted too); the class itself is .kind
    name: str
    flags: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if isinstance(self.cls, DepClass):
            object.__setattr__(self, "cls", self.cls.name)
        if not isinstance(self.flags, frozenset):
            object.__setattr__(self, "flags", frozenset(self.flags))
        if self.cls not in DEP_CLASSES:
            raise RepositoryError(f"unknown dependency class {self.cls!r} in {self}")
        if not self.name or any(c.isspace() for c in self.name):
            raise RepositoryError(f"bad dependency name {self.name!r}")
        self.kind.check_flags(self.name, self.flags)

    @property
    def kind(self) -> DepClass:
        """The dependency class (see :mod:`~appbuilder.repository.depclasses`)."""
        return DEP_CLASSES[self.cls]

    def __str__(self) -> str:
        kind = DEP_CLASSES.get(self.cls)
        if kind is None:  # only while refusing an unknown class
            return f"{self.cls}: {self.name}" + (f"({self.flags_text})" if self.flags else "")
        return f"{self.cls}: {kind.format(self.name, self.flags)}"

    @classmethod
    def parse(cls, text: str) -> "Dependency":
        m = _DEP_RE.match(text)
        if not m:
            raise RepositoryError(f"bad dependency {text!r}: expected 'class: name(flags)'")
        dep_cls, body = m.groups()
        kind = DEP_CLASSES.get(dep_cls)
        name, flags = kind.split(body) if kind else split_flags(body)
        if not name or any(c.isspace() for c in name):
            raise RepositoryError(f"bad dependency {text!r}: expected 'class: name(flags)'")
        return cls(dep_cls, name, flags)

    @property
    def flags_text(self) -> str:
        return " ".join(sorted(self.flags))

    def satisfied_by(self, provision: "Dependency") -> bool:
        return self.kind.satisfies(self, provision)


def soname(elf: str, name: str, machine: str, versions=()) -> Dependency:
    """``soname: ELF64/libfoo.so.1(x86_64 [symbol versions])``."""
    return Dependency(SONAME, f"{elf}/{name}", frozenset((machine, *versions)))


def file_dep(path: str) -> Dependency:
    return Dependency(FILE, path)


def trove_dep(name: str) -> Dependency:
    return Dependency(TROVE, name)
