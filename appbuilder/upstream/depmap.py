"""Upstream dependency forms mapped onto appbuild's dependency classes.

RPM (the forms rpmbuild's dependency generators write):

=====================================  ==================================================
RPM                                    appbuild
=====================================  ==================================================
``libc.so.6()(64bit)``                 ``soname: ELF64/libc.so.6(x86_64)``
``libc.so.6(GLIBC_2.14)(64bit)``       ``soname: ELF64/libc.so.6(GLIBC_2.14 x86_64)``
``libc.so.6`` / ``libc.so.6(GLIBC_2.0)``  ``soname: ELF32/libc.so.6([GLIBC_2.0] x86)``
``/bin/sh``                            ``file: /bin/sh``
``rpmlib(PayloadIsZstd)``              ``rpmlib: PayloadIsZstd`` (the installer's business)
``rtld(GNU_HASH)`` (required)          the dynamic loader of the package's architecture,
                                       ``soname: ELF64/ld-linux-x86-64.so.2(x86_64)``
anything else (``bash``, ``perl(Foo)``)  ``rpm: NAME``
=====================================  ==================================================

Several RPM entries for one soname (one per symbol version) become one dependency whose
flags list all the versions, which is the form appbuild's ELF scan produces; so an RPM
program's ``libhello.so.1()(64bit)`` is met by a cooked ``libhello`` and a cooked
program's soname requirement by an RPM library. Version constraints (``bash >= 4``) are
not part of a dependency: they are kept in the trove's info as the upstream text.
Boolean ("rich") dependencies such as ``(a or b)`` are kept in the info only.

Debian: ``Provides`` names become ``deb: NAME``; ``Depends``/``Pre-Depends`` are parsed
for display (see :func:`deb_relations`) but are not resolver requirements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from appbuilder.core.arch import Arch
from appbuilder.repository.deps import (
    DEB,
    RPM,
    RPMLIB,
    SONAME,
    Dependency,
    file_dep,
    soname,
)

_SONAME_RE = re.compile(
    r"^(?P<so>[^()\s/]+\.so(?:\.[^()\s]*)?)(?:\((?P<ver>[^()\s]*)\))?(?P<bits>\(64bit\))?$"
)
_RPMLIB_RE = re.compile(r"^rpmlib\((?P<feature>[^()\s]+)\)$")

# RPM sense flags (rpmds.h)
RPMSENSE_LESS, RPMSENSE_GREATER, RPMSENSE_EQUAL = 0x02, 0x04, 0x08
RPMSENSE_RPMLIB = 1 << 24


@dataclass(frozen=True)
class RpmDep:
    """One RPM dependency entry as the header or primary.xml writes it."""

    name: str
    flags: int = 0  # RPMSENSE_* bits
    version: str = ""  # "[epoch:]version[-release]" or ""

    def __str__(self) -> str:
        op = sense_operator(self.flags)
        return f"{self.name} {op} {self.version}" if op and self.version else self.name


def sense_operator(flags: int) -> str:
    cmp = flags & (RPMSENSE_LESS | RPMSENSE_GREATER | RPMSENSE_EQUAL)
    return {
        RPMSENSE_LESS: "<", RPMSENSE_GREATER: ">", RPMSENSE_EQUAL: "=",
        RPMSENSE_LESS | RPMSENSE_EQUAL: "<=", RPMSENSE_GREATER | RPMSENSE_EQUAL: ">=",
    }.get(cmp, "")


def map_rpm(name: str, *, required: bool, arch: Arch | None) -> Dependency | None:
    """One RPM capability → a dependency, or None when it has no appbuild form.

    *arch* is the package's architecture (None for noarch); it decides which dynamic
    loader a ``rtld(GNU_HASH)`` requirement means.
    """
    if not name or any(c.isspace() for c in name) or name.startswith("("):
        return None  # rich dependency: kept as text only
    if name.startswith("/"):
        return file_dep(name)
    m = _RPMLIB_RE.match(name)
    if m:
        return Dependency(RPMLIB, m.group("feature"))
    m = _SONAME_RE.match(name)
    if m:
        if m.group("bits"):
            elf, machine = "ELF64", "x86_64"
        else:
            elf, machine = "ELF32", "x86"
        return soname(elf, m.group("so"), machine, [m.group("ver")] if m.group("ver") else [])
    if required and name.startswith("rtld(") and arch is not None:
        return soname(arch.elf, arch.loader_soname, arch.name)
    return Dependency(RPM, name)


def merge_sonames(deps: Iterable[Dependency]) -> set[Dependency]:
    """One soname dependency per ELF class and soname, its flags the union of all entries."""
    merged: dict[str, set[str]] = {}
    others: set[Dependency] = set()
    for d in deps:
        if d.kind is SONAME:
            merged.setdefault(d.name, set()).update(d.flags)
        else:
            others.add(d)
    return others | {Dependency(SONAME, name, frozenset(flags)) for name, flags in merged.items()}


def map_rpm_deps(entries: Iterable[RpmDep], *, required: bool, arch: Arch | None) -> tuple[set[Dependency], list[str]]:
    """Map RPM entries; returns (dependencies, the entries that have no appbuild form)."""
    deps: list[Dependency] = []
    unmapped: list[str] = []
    for e in entries:
        if e.flags & RPMSENSE_RPMLIB and not e.name.startswith("rpmlib("):
            deps.append(Dependency(RPMLIB, e.name.replace(" ", "_")))
            continue
        d = map_rpm(e.name, required=required, arch=arch)
        if d is None:
            unmapped.append(str(e))
        else:
            deps.append(d)
    return merge_sonames(deps), unmapped


# ------------------------------------------------------------------ Debian


_DEB_REL_RE = re.compile(r"^\s*(?P<name>[a-z0-9][a-z0-9+.-]*)(?::(?P<arch>[a-z0-9-]+))?\s*(?:\((?P<ver>[^)]*)\))?")


def deb_relations(text: str | None) -> list[str]:
    """A Debian relationship field as its comma-separated items, whitespace normalised."""
    if not text:
        return []
    return [" ".join(item.split()) for item in text.split(",") if item.strip()]


def deb_names(text: str | None) -> list[str]:
    """Package names in a relationship field (``Provides: libz1, foo (= 1)`` → libz1, foo)."""
    names = []
    for item in deb_relations(text):
        for alternative in item.split("|"):
            m = _DEB_REL_RE.match(alternative)
            if m:
                names.append(m.group("name"))
    return names


def deb_provides(package: str, provides_field: str | None) -> set[Dependency]:
    """``deb: PACKAGE`` and one ``deb:`` dependency per ``Provides`` name."""
    return {Dependency(DEB, package)} | {Dependency(DEB, n) for n in deb_names(provides_field)}
