"""Dependency classes as objects: what each class means and how it is handled.

conary's pattern: a dependency's class is not a string that every stage tests for,
but an object in one registry (:data:`DEP_CLASSES`) that knows

* its **text**: how the part after ``class:`` splits into a name and flags, and how
  it is written back. Classes with flags (``soname``, ``abi``, ``python``) take the
  last parenthesised group as the flags, and write that group, even empty, whenever
  the name holds a parenthesis (``abi: odd(name)()``); the other classes have no
  flags, so the whole text is the name: ``rpm: perl(Foo::Bar)``, ``rpm:
  libc.so.6(GLIBC_2.34)(64bit)``, ``file: /usr/lib/a(b)`` read back as written;
* its **matching**: a provision of the same class and name meets a requirement when
  its flags include all of the requirement's (soname keeps the ELF class in the name,
  so ELF32 and ELF64 never meet each other);
* whether **the closure resolves it**: ``rpmlib`` and ``abi`` are met by the
  installer, never by adding a trove;
* how its **providers are found**, in a :class:`Lookup`: ``trove`` by trove name,
  ``file`` by the troves holding the path, the others by what troves provide. A
  repository is one lookup (:class:`RepositoryLookup`, with an architecture), a set
  of troves or upstream packages another (:class:`ProvisionIndex`);
* the **hints** that explain why nothing met a requirement when something almost did
  (``soname``: a library of the other ELF class, or without a symbol version).

The registry keeps the class names the SQLite index stores in its ``cls`` columns.
This module works on dependencies without importing :mod:`.deps` (which builds on it).
"""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Protocol, TypeVar

from appbuilder.core.arch import ARCHES
from appbuilder.core.errors import RepositoryError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Lookup(Protocol[T_co]):
    """Where the providers of a requirement are looked for (troves, upstream packages, paths)."""

    def by_name(self, name: str) -> list[T_co]:
        """The items called *name* (``trove:`` requirements)."""

    def by_owner(self, path: str) -> list[T_co]:
        """The items holding *path* (``file:`` requirements)."""

    def by_provides(self, req) -> list[T_co]:
        """The items with a provision that meets *req*."""


@dataclass(frozen=True, eq=False)
class DepClass:
    """One dependency class. Compared by identity: there is one object per class."""

    name: str
    meaning: str  # for the table in :mod:`appbuilder.repository.deps`
    example: str = ""  # a dependency of this class as written
    has_flags: bool = True
    resolved_by_closure: bool = True  # False: the installer meets it, the closure never adds a trove
    colour: str = "black"  # of its edges in dependency graph pictures
    provided_by_hand: bool = False  # a recipe may declare such a provision (r.Provides)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<dependency class {self.name}>"

    def __reduce__(self):  # pickled (process pools) as a reference to the registry's object
        return dep_class, (self.name,)

    # ------------------------------------------------------------------ text

    def split(self, text: str) -> tuple[str, frozenset[str]]:
        """The name and flags of *text*, what follows ``class:`` (stripped)."""
        if self.has_flags:
            return split_flags(text)
        return text, frozenset()

    def format(self, name: str, flags: frozenset[str]) -> str:
        """What follows ``class:``; :meth:`split` gives back *name* and *flags*."""
        if flags or (self.has_flags and ("(" in name or ")" in name)):
            return f"{name}({' '.join(sorted(flags))})"
        return name

    def check_flags(self, name: str, flags: frozenset[str]) -> None:
        if not self.has_flags:
            if flags:
                raise RepositoryError(f"{self.name}: dependencies have no flags, not ({' '.join(sorted(flags))}) "
                                      f"in {self.name}: {name}")
            return
        for flag in flags:
            if not isinstance(flag, str) or not flag or any(c.isspace() or c in "()" for c in flag):
                raise RepositoryError(f"bad dependency flag {flag!r} in {self.name}: {name}")

    # ------------------------------------------------------------------ matching

    def flags_meet(self, required: frozenset[str], provided: frozenset[str]) -> bool:
        """Whether a provision with *provided* flags meets a requirement with *required* ones."""
        return required <= provided

    def satisfies(self, req, provision) -> bool:
        """Whether *provision* meets *req* (a requirement of this class)."""
        return provision.kind is self and provision.name == req.name and self.flags_meet(req.flags, provision.flags)

    # ------------------------------------------------------------------ providers

    def find(self, lookup: Lookup[T], req) -> list[T]:
        """The items of *lookup* that meet *req*."""
        return lookup.by_provides(req)

    def candidates(self, repo, req, arch: str | None = None) -> list:
        """Troves of *repo* (a :class:`~appbuilder.repository.repo.Repository`) that meet
        *req*, installable on *arch* when given, oldest first."""
        return self.find(RepositoryLookup(repo, arch), req)

    def trove_named(self, req) -> str | None:
        """The trove *req* names, for classes that name troves."""
        return None

    # ------------------------------------------------------------------ hints

    def mismatch_hint(self, req, repo) -> str:
        """Something in *repo* answers to *req*'s name but can never meet it, or ''."""
        return ""

    def partial_hint(self, req, repo) -> str:
        """Something in *repo* meets *req* in part (by name, not every flag), or ''."""
        return ""


@dataclass(frozen=True, eq=False)
class TroveClass(DepClass):
    """``trove:``: met by a trove of that name."""

    def find(self, lookup: Lookup[T], req) -> list[T]:
        return lookup.by_name(req.name)

    def trove_named(self, req) -> str | None:
        return req.name


@dataclass(frozen=True, eq=False)
class FileClass(DepClass):
    """``file:``: met by a trove holding the path."""

    def find(self, lookup: Lookup[T], req) -> list[T]:
        return lookup.by_owner(req.name)


ELF_CLASSES = ("ELF32", "ELF64")
OTHER_ELF_CLASS = {"ELF32": "ELF64", "ELF64": "ELF32"}


@dataclass(frozen=True, eq=False)
class SonameClass(DepClass):
    """``soname:``: named ``ELFnn/library``; the flags are the machine and symbol versions."""

    def elf_class(self, dep) -> str | None:
        """``ELF64`` of ``soname: ELF64/libc.so.6``; None when the name has no ELF class."""
        head, sep, _ = dep.name.partition("/")
        return head if sep and head in ELF_CLASSES else None

    def library(self, dep) -> str:
        """``libc.so.6`` of ``soname: ELF64/libc.so.6``."""
        return dep.name.split("/", 1)[-1]

    def mismatch_hint(self, req, repo) -> str:
        elf = self.elf_class(req)
        if elf is None:
            return ""
        other = f"{OTHER_ELF_CLASS[elf]}/{self.library(req)}"
        near = repo.providers(dataclasses.replace(req, name=other, flags=frozenset()))
        if near:
            return (f"{near[-1].name} provides {other} for {near[-1].flavor or 'no arch'}: "
                    f"a library of the other ELF class cannot satisfy it")
        return ""

    def partial_hint(self, req, repo) -> str:
        # the library exists, without some symbol version
        bare = repo.providers(dataclasses.replace(req, flags=req.flags & set(ARCHES)))
        if bare:
            return f"{bare[-1].name} provides {req.name} but not every symbol version asked for"
        return ""


SONAME = SonameClass(
    "soname", "a shared library by ELF class and soname, flags name the machine and the symbol versions",
    example="soname: ELF64/libc.so.6(GLIBC_2.34 x86_64)", colour="blue", provided_by_hand=True)
FILE = FileClass("file", "a path that must exist, met by the trove holding it", example="file: /bin/sh",
                 has_flags=False, colour="darkgreen", provided_by_hand=True)
TROVE = TroveClass("trove", "another trove by name", example="trove: busybox:runtime", has_flags=False)
ABI = DepClass("abi", "the ELF ABI a binary runs on", example="abi: ELF64(SysV x86_64)",
               resolved_by_closure=False, colour="gray", provided_by_hand=True)
RPMLIB = DepClass("rpmlib", "an rpmlib feature an RPM capsule needs", example="rpmlib: PayloadIsZstd",
                  has_flags=False, resolved_by_closure=False, colour="gray")
RPM = DepClass("rpm", "an RPM capability appbuild has no class of its own for",
               example="rpm: perl(Foo::Bar)", has_flags=False, colour="firebrick")
DEB = DepClass("deb", "a Debian package relation appbuild has no class of its own for", example="deb: libz1",
               has_flags=False, colour="purple")
PYTHON = DepClass("python", "a Python module", example="python: json", colour="orange")
USERINFO = DepClass("userinfo", "a user account", example="userinfo: daemon", has_flags=False)
GROUPINFO = DepClass("groupinfo", "a group account", example="groupinfo: daemon", has_flags=False)

DEP_CLASSES: dict[str, DepClass] = {c.name: c for c in (
    SONAME, FILE, TROVE, ABI, RPMLIB, RPM, DEB, PYTHON, USERINFO, GROUPINFO)}


def dep_class(name: str) -> DepClass:
    """The class registered as *name*."""
    try:
        return DEP_CLASSES[name]
    except (KeyError, TypeError):
        raise RepositoryError(f"unknown dependency class {name!r}") from None


def split_flags(text: str) -> tuple[str, frozenset[str]]:
    """``name(flag flag)`` → name and flags: the flags are the last parenthesised group."""
    if text.endswith(")"):
        i = text.rfind("(")
        if i > 0:
            return text[:i], frozenset(text[i + 1:-1].split())
    return text, frozenset()


def class_table(width: int = 86) -> str:
    """The registry as a reStructuredText table: class, meaning (for deps.py's docstring)."""
    left = max(len(c.name) for c in DEP_CLASSES.values()) + 6
    rule = "=" * (left - 2) + "  " + "=" * (width - left)
    lines = [rule, "class".ljust(left) + "meaning", rule]
    for c in DEP_CLASSES.values():
        text = c.meaning
        if not c.resolved_by_closure:
            text += " (met by the installer: the closure never resolves it)"
        if c.example:
            text += ": ``" + c.example.replace(" ", "\0") + "``"  # the example stays on one line
        wrapped = [w.replace("\0", " ") for w in
                   textwrap.wrap(text, width - left, break_long_words=False, break_on_hyphens=False)]
        lines.append(f"``{c.name}``".ljust(left) + wrapped[0])
        lines += [" " * left + w for w in wrapped[1:]]
    lines.append(rule)
    return "\n".join(lines)


# ------------------------------------------------------------------ lookups


class RepositoryLookup:
    """A repository as a :class:`Lookup`, for one architecture (None: any)."""

    def __init__(self, repo, arch: str | None = None):
        self.repo = repo
        self.arch = arch

    def _installable(self, found: list) -> list:
        return found if self.arch is None else [n for n in found if n.flavor.installable_on(self.arch)]

    def by_name(self, name: str) -> list:
        return self.repo.versions(name, arch=self.arch)

    def by_owner(self, path: str) -> list:
        return self._installable(self.repo.owners(path))

    def by_provides(self, req) -> list:
        return self._installable(self.repo.providers(req))


class ProvisionIndex(Generic[T]):
    """A :class:`Lookup` over items held in memory (troves of a closure, upstream packages):
    their provisions indexed by class and name; names and paths through the callables given."""

    def __init__(self, *, by_name: Callable[[str], list[T]] | None = None,
                 by_owner: Callable[[str], list[T]] | None = None):
        self._provided: dict[tuple[str, str], list[tuple[frozenset[str], T]]] = {}
        self._by_name = by_name
        self._by_owner = by_owner

    def add(self, provision, item: T) -> None:
        self._provided.setdefault((provision.cls, provision.name), []).append((provision.flags, item))

    def update(self, provisions: Iterable, item: T) -> None:
        for p in provisions:
            self.add(p, item)

    def by_name(self, name: str) -> list[T]:
        return self._by_name(name) if self._by_name else []

    def by_owner(self, path: str) -> list[T]:
        return self._by_owner(path) if self._by_owner else []

    def by_provides(self, req) -> list[T]:
        meet = req.kind.flags_meet
        return [item for flags, item in self._provided.get((req.cls, req.name), ()) if meet(req.flags, flags)]
