"""Trove versions and flavors: ``name=label/upstream-sourcecount-buildcount[flavor]``.

* A **label** names where a line of development lives, ``host@namespace:tag``
  (``cernvm@cvm:2``).
* A **revision** is ``upstream-sourcecount-buildcount``: the upstream version
  (``1.35.0``, or ``1.35.0-4`` for a capsule carrying an upstream release), how many
  times the recipe (its sources) changed for that upstream version, and how many times
  that source revision was built for this flavor.
* A **flavor** names the instruction set a trove was built for: ``is: x86_64``,
  ``is: x86``, or nothing for architecture-independent troves; before it, as conary
  wrote them, the use flags the recipe read while it was set up (``Use.ssl``), each
  with its sense: ``ssl`` (built with it: needs it), ``~ssl`` (prefers it), ``~!ssl``
  (built without it: prefers a system without it), ``!ssl`` (never with it), e.g.
  ``~!ipv6,ssl is: x86_64``. A flavor typed to pick troves (``add('x', flavor='ssl')``,
  ``x[ssl]``) is matched by conary's rules (:meth:`Flavor.score`).

Example: ``busybox=cernvm@cvm:2/1.35.0-1-3[is: x86_64]``,
``hello=cernvm@cvm:2/1.0-1-1[ssl is: x86_64]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appbuilder.core.arch import get_arch
from appbuilder.core.errors import AppbuildError, RepositoryError

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


REQUIRED, PREFERRED, PREFERNOT, DISALLOWED = "", "~", "~!", "!"
SENSES = (REQUIRED, PREFERRED, PREFERNOT, DISALLOWED)
_FLAG_RE = re.compile(r"^(~!|~|!)?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)$")
# conary's flavor scores: (sense of the flag in the asked flavor, in the trove's) -> score,
# None where the trove cannot be used (None as the first sense: the flag is not asked about)
_SCORES: dict[tuple[str | None, str], int | None] = {
    (None, REQUIRED): None, (None, DISALLOWED): 0, (None, PREFERRED): -1, (None, PREFERNOT): 1,
    (REQUIRED, REQUIRED): 2, (REQUIRED, DISALLOWED): None, (REQUIRED, PREFERRED): 1, (REQUIRED, PREFERNOT): None,
    (DISALLOWED, REQUIRED): None, (DISALLOWED, DISALLOWED): 2, (DISALLOWED, PREFERRED): None,
    (DISALLOWED, PREFERNOT): 1,
    (PREFERRED, REQUIRED): 1, (PREFERRED, DISALLOWED): None, (PREFERRED, PREFERRED): 2, (PREFERRED, PREFERNOT): -1,
    (PREFERNOT, REQUIRED): -2, (PREFERNOT, DISALLOWED): 1, (PREFERNOT, PREFERRED): -1, (PREFERNOT, PREFERNOT): 1,
}


@dataclass(frozen=True)
class Flavor:
    """The use flags a trove was built with and its instruction set.

    ``Flavor(None)`` is architecture-independent; ``flags`` holds ``(name, sense)`` pairs
    (sense ``''``, ``'~'``, ``'~!'`` or ``'!'``), kept sorted by name as conary prints them.
    """

    arch: str | None = None
    flags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.arch is not None:
            object.__setattr__(self, "arch", get_arch(self.arch).name)
        flags = tuple(sorted((str(n), str(s)) for n, s in self.flags))
        names = [n for n, _ in flags]
        for name, sense in flags:
            if sense not in SENSES or not _FLAG_RE.match(name):
                raise RepositoryError(f"bad flavor flag {sense}{name!r}: expected NAME, ~NAME, ~!NAME or !NAME")
        if len(set(names)) != len(names):
            raise RepositoryError(f"flavor names a flag twice: {', '.join(s + n for n, s in flags)}")
        object.__setattr__(self, "flags", flags)

    def __str__(self) -> str:
        use = ",".join(sense + name for name, sense in self.flags)
        arch = f"is: {self.arch}" if self.arch else ""
        return " ".join(p for p in (use, arch) if p)

    @classmethod
    def parse(cls, text: str) -> "Flavor":
        """Read a flavor as conary writes it: ``[ssl,~!ipv6 is: x86_64]``, ``is: x86``,
        ``!ssl``; also ``ssl,is: x86_64`` and a bare architecture name (``x86_64``)."""
        text = text.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1].strip()
        if not text:
            return cls(None)
        use, sep, arch = text.partition("is:")
        arch = arch.strip() or None if sep else None
        if arch is not None and not re.match(r"^[A-Za-z0-9_]+$", arch):
            raise RepositoryError(f"bad flavor {text!r}: after 'is:' comes one architecture "
                                  f"(sub-architecture flags such as x86(i686) are not supported)")
        use = use.strip().removeprefix("use:").strip().rstrip(",").strip()
        words = [w.strip() for w in use.split(",")] if use else []
        if not sep and len(words) == 1 and _is_arch(words[0]):
            return cls(words[0])  # a bare architecture name
        flags = []
        for word in words:
            m = _FLAG_RE.match(word)
            if not m:
                raise RepositoryError(f"bad flavor {text!r}: {word!r} is not a flag "
                                      f"(NAME, ~NAME, ~!NAME or !NAME, separated by commas, then 'is: ARCH')")
            flags.append((m.group(2), m.group(1) or REQUIRED))
        try:
            return cls(arch, tuple(flags))
        except AppbuildError as exc:
            raise RepositoryError(f"bad flavor {text!r}: {exc}") from None

    def __lt__(self, other: "Flavor") -> bool:
        return ((self.arch or ""), self.flags) < ((other.arch or ""), other.flags)

    @property
    def use(self) -> dict[str, str]:
        """The use flags, name -> sense."""
        return dict(self.flags)

    def installable_on(self, arch: str) -> bool:
        """A trove of this flavor may go into a system of *arch*."""
        return self.arch is None or self.arch == get_arch(arch).name

    def score(self, trove: "Flavor") -> int | None:
        """How well a trove of flavor *trove* fits this asked-for flavor, by conary's rules;
        None when it does not fit at all. Only the trove's flags count: a flag asked for that
        the trove's recipe never read does not matter. A trove built with a flag (``ssl``)
        fits only when the flag is asked for (``ssl`` or ``~ssl``); one built without it
        (``~!ssl``) fits unless the flag is required (``ssl``); ``!ssl`` excludes troves
        built with it. Architectures must be the same when both name one."""
        if self.arch and trove.arch and self.arch != trove.arch:
            return None
        asked = self.use
        total = 0
        for name, sense in trove.flags:
            s = _SCORES[(asked.get(name), sense)]
            if s is None:
                return None
            total += s
        return total

    def with_arch(self, arch: str | None) -> "Flavor":
        return Flavor(arch, self.flags)


def _is_arch(word: str) -> bool:
    try:
        get_arch(word)
    except AppbuildError:
        return False
    return True


def best_match(found: list["NVF"], asked: Flavor) -> "NVF | None":
    """The trove of *found* (oldest first) a flavor asks for, as conary picked it: the newest
    source revision with a trove that fits, then the best score, then the newest."""
    scored = [(n, asked.score(n.flavor), i) for i, n in enumerate(found)]
    scored = [t for t in scored if t[1] is not None]
    if not scored:
        return None
    last_seen: dict[tuple, int] = {}
    for n, _, i in scored:
        last_seen[(n.version.label, n.version.upstream, n.version.source_count)] = i

    def key(t):
        n, score, i = t
        return (last_seen[(n.version.label, n.version.upstream, n.version.source_count)], score, i)

    return max(scored, key=key)[0]


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

