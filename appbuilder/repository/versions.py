"""Trove versions and flavors: ``name=label/upstream-sourcecount-buildcount[flavor]``.

* A **label** names where a line of development lives, ``host@namespace:tag``
  (``cernvm@cvm:2``).
* A **revision** is ``upstream-sourcecount-buildcount``: the upstream version
  (``1.35.0``, or ``1.35.0-4`` for a capsule carrying an upstream release), how many
  times the recipe (its sources) changed for that upstream version, and how many times
  that source revision was built for this flavor.
* A **flavor** names the instruction set a trove was built for: ``is: x86_64``,
  ``is: x86``, or nothing for architecture-independent troves.

Example: ``busybox=cernvm@cvm:2/1.35.0-1-3[is: x86_64]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appbuilder.core.arch import get_arch
from appbuilder.core.errors import RepositoryError

_LABEL_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:[A-Za-z0-9._-]+$")
_UPSTREAM_RE = re.compile(r"^[A-Za-z0-9._+~:-]+$")


def check_label(label: str) -> str:
    if not _LABEL_RE.match(label):
        raise RepositoryError(f"bad label {label!r}: expected host@namespace:tag, e.g. cernvm@cvm:2")
    return label


def check_upstream(upstream: str) -> str:
    if not upstream or not _UPSTREAM_RE.match(upstream):
        raise RepositoryError(
            f"bad upstream version {upstream!r}: use letters, digits and . _ + ~ : - only"
        )
    return upstream


@dataclass(frozen=True)
class Version:
    """``label/upstream-sourcecount-buildcount``."""

    label: str
    upstream: str
    source_count: int
    build_count: int

    def __post_init__(self) -> None:
        check_label(self.label)
        check_upstream(self.upstream)
        if self.source_count < 1 or self.build_count < 1:
            raise RepositoryError(f"bad version counts in {self}")

    @property
    def revision(self) -> str:
        return f"{self.upstream}-{self.source_count}-{self.build_count}"

    def __str__(self) -> str:
        return f"{self.label}/{self.revision}"

    @classmethod
    def parse(cls, text: str) -> "Version":
        """Parse ``label/upstream-source-build``."""
        label, sep, revision = text.partition("/")
        if not sep:
            raise RepositoryError(f"bad version {text!r}: expected label/upstream-source-build")
        parts = revision.rsplit("-", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise RepositoryError(f"bad version {text!r}: expected label/upstream-source-build")
        return cls(label, parts[0], int(parts[1]), int(parts[2]))

    def __lt__(self, other: "Version") -> bool:
        return self._key() < other._key()

    def _key(self) -> tuple:
        return (self.label, self.upstream, self.source_count, self.build_count)

    def matches(self, partial: str) -> bool:
        """Whether a user-typed version names this one.

        Accepts a full version, a revision (``1.0-1-2``), ``upstream-source``, or an
        upstream version alone (``1.0``).
        """
        if "/" in partial:
            return str(self) == partial
        return partial in (self.revision, f"{self.upstream}-{self.source_count}", self.upstream)


@dataclass(frozen=True)
class Flavor:
    """The instruction set of a trove; ``Flavor(None)`` is architecture-independent."""

    arch: str | None = None

    def __post_init__(self) -> None:
        if self.arch is not None:
            object.__setattr__(self, "arch", get_arch(self.arch).name)

    def __str__(self) -> str:
        return f"is: {self.arch}" if self.arch else ""

    @classmethod
    def parse(cls, text: str) -> "Flavor":
        text = text.strip().strip("[]").strip()
        if not text:
            return cls(None)
        if text.startswith("is:"):
            text = text[3:].strip()
        return cls(text)

    def __lt__(self, other: "Flavor") -> bool:
        return (self.arch or "") < (other.arch or "")

    def installable_on(self, arch: str) -> bool:
        """A trove of this flavor may go into a system of *arch*."""
        return self.arch is None or self.arch == get_arch(arch).name


@dataclass(frozen=True)
class TroveSpec:
    """What a user typed to name troves: ``name[=version][[flavor]]``."""

    name: str
    version: str | None = None
    flavor: Flavor | None = None

    @classmethod
    def parse(cls, text: str) -> "TroveSpec":
        flavor = None
        m = re.match(r"^(.*?)\[(.*)\]$", text.strip())
        if m:
            text, flavor = m.group(1), Flavor.parse(m.group(2))
        name, _, version = text.partition("=")
        if not name:
            raise RepositoryError(f"bad trove spec {text!r}: expected name[=version][[is: arch]]")
        return cls(name, version or None, flavor)

    def __str__(self) -> str:
        text = self.name
        if self.version:
            text += f"={self.version}"
        if self.flavor is not None:
            text += f"[{self.flavor}]"
        return text


@dataclass(frozen=True, order=True)
class NVF:
    """The exact identity of one trove: name, version, flavor."""

    name: str
    version: Version
    flavor: Flavor

    def __str__(self) -> str:
        return f"{self.name}={self.version}[{self.flavor}]"

    @classmethod
    def parse(cls, text: str) -> "NVF":
        """The NVF printed as ``name=label/upstream-source-build[flavor]``."""
        spec = TroveSpec.parse(text)
        if not spec.version or spec.flavor is None:
            raise RepositoryError(f"bad trove identity {text!r}: expected name=label/version[flavor]")
        return cls(spec.name, Version.parse(spec.version), spec.flavor)

    @property
    def package(self) -> str:
        """The package a component belongs to (``busybox`` for ``busybox:runtime``)."""
        return self.name.split(":", 1)[0]

