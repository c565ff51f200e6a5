"""Package relations as upstream distributions write them: Debian fields and RPM rich dependencies.

A relation is one of:

* :class:`Atom`: one package, virtual name, RPM capability or path, optionally with a
  version constraint (``libc6 (>= 2.34)``, ``python3:any``, ``bash >= 4``,
  ``libc.so.6(GLIBC_2.14)(64bit)``, ``/usr/bin/sh``);
* :class:`AnyOf`: Debian alternatives, ``usrmerge | usr-is-merged``; apt takes the first
  alternative that can be satisfied, and so does appbuild;
* :class:`Rich`: an RPM boolean ("rich") dependency, ``(a and b)``, ``(a or b)``,
  ``(a if b)``, ``(a if b else c)``, ``(a unless b)``, ``(a unless b else c)``,
  ``(a with b)``, ``(a without b)``, nested to any depth.

Debian fields are parsed with apt's own parser (``apt_pkg.parse_depends`` from
python3-apt), RPM entries with a small recursive-descent parser following rpm's grammar.
Versions compare as the distribution compares them: ``apt_pkg.version_compare`` for
Debian, ``rpm.labelCompare`` for RPM (epoch defaults to 0; a release is compared only
when both sides give one, as rpm does). ``str()`` of any relation gives the upstream
text back, so a message can quote the requirement as written. Text that cannot be
parsed is a :class:`RelationError` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator, Union

from appbuilder.core.errors import SourceError

DEB_OPS = ("<<", "<=", "=", ">=", ">>")
RPM_OPS = ("<", "<=", "=", ">=", ">")
RICH_OPS = ("and", "or", "if", "unless", "with", "without")
# apt_pkg.parse_depends gives "<" and ">" for "<<" and ">>"
_APT_OP = {"<": "<<", ">": ">>", "<=": "<=", ">=": ">=", "=": "=", "": ""}


class RelationError(SourceError):
    """A package relation cannot be parsed."""


_apt_ready = False


def _apt():
    global _apt_ready
    import apt_pkg
    if not _apt_ready:
        apt_pkg.init_system()
        _apt_ready = True
    return apt_pkg


def _evr(text: str) -> tuple[str, str, str | None]:
    epoch, sep, rest = text.partition(":")
    if not sep:
        epoch, rest = "0", text
    version, sep, release = rest.rpartition("-")
    if not sep:
        return epoch or "0", release, None
    return epoch or "0", version, release


def compare(scheme: str, a: str, b: str) -> int:
    """-1, 0 or 1 as version *a* is older than, equal to or newer than *b* in *scheme*
    (``deb``: dpkg's rules; ``rpm``: rpm's, ``[epoch:]version[-release]``; a release
    missing on either side is not compared)."""
    if scheme == "deb":
        result = _apt().version_compare(a, b)
    elif scheme == "rpm":
        import rpm
        ea, va, ra = _evr(a)
        eb, vb, rb = _evr(b)
        if ra is None or rb is None:
            ra = rb = None
        result = rpm.labelCompare((ea, va, ra), (eb, vb, rb))
    else:
        raise ValueError(f"unknown relation scheme {scheme!r}")
    return (result > 0) - (result < 0)


_SENSE = {
    "<<": (-1,), "<": (-1,), "<=": (-1, 0), "=": (0,), ">=": (0, 1), ">>": (1,), ">": (1,),
}


@dataclass(frozen=True)
class Atom:
    """One package relation: NAME [OP VERSION] [:ARCH qualifier, Debian only]."""

    scheme: str
    name: str
    op: str = ""
    version: str = ""
    arch: str = ""

    def allows(self, version: str | None) -> bool:
        """Whether a package (or Provides) of *version* meets this constraint. Without a
        constraint, anything does. An unversioned Provides (*version* None) meets a
        versioned Debian relation never (dpkg's rule) and an RPM one always (rpm's rule:
        an unversioned provide matches every version)."""
        if not self.op:
            return True
        if version is None or version == "":
            return self.scheme == "rpm"
        return compare(self.scheme, version, self.version) in _SENSE[self.op]

    def matches(self, provide: "Atom") -> bool:
        """Whether a Provides entry (or a package's own ``name = version``) meets this atom."""
        if provide.name != self.name:
            return False
        if not self.op:
            return True
        if not provide.op:
            return self.scheme == "rpm"
        if provide.op == "=":
            return self.allows(provide.version)
        # a ranged provide (rpm only, rare): overlap of the two ranges
        low = compare(self.scheme, provide.version, self.version)
        return low in _SENSE[self.op] or (
            ("<" in provide.op and ">" in self.op) if low < 0 else ("<" in self.op and ">" in provide.op))

    def __str__(self) -> str:
        if self.scheme == "deb":
            text = self.name + (f":{self.arch}" if self.arch else "")
            return text + (f" ({self.op} {self.version})" if self.op else "")
        return self.name + (f" {self.op} {self.version}" if self.op else "")


@dataclass(frozen=True)
class AnyOf:
    """Debian alternatives ``a | b | c``: the first one that can be satisfied wins."""

    atoms: tuple[Atom, ...]

    def __str__(self) -> str:
        return " | ".join(str(a) for a in self.atoms)


@dataclass(frozen=True)
class Rich:
    """An RPM rich dependency; for ``A if B else C`` the args are ``(A, B, C)``."""

    op: str
    args: tuple["Relation", ...]

    def __str__(self) -> str:
        if self.op in ("if", "unless"):
            text = f"{_arg(self.args[0])} {self.op} {_arg(self.args[1])}"
            if len(self.args) == 3:
                text += f" else {_arg(self.args[2])}"
            return f"({text})"
        return "(" + f" {self.op} ".join(_arg(a) for a in self.args) + ")"


Relation = Union[Atom, AnyOf, Rich]


def _arg(rel: Relation) -> str:
    return str(rel)


def atoms(rel: Relation) -> Iterator[Atom]:
    """Every atom a relation names, in the order written."""
    if isinstance(rel, Atom):
        yield rel
    elif isinstance(rel, AnyOf):
        yield from rel.atoms
    else:
        for arg in rel.args:
            yield from atoms(arg)


def satisfied(rel: Relation, have: Callable[[Atom], bool]) -> bool:
    """Whether *rel* holds when *have* tells which atoms are met (by what is installed)."""
    if isinstance(rel, Atom):
        return have(rel)
    if isinstance(rel, AnyOf):
        return any(have(a) for a in rel.atoms)
    op, args = rel.op, rel.args
    if op in ("and", "with"):  # "with" needs one package meeting both; approximated per atom
        return all(satisfied(a, have) for a in args)
    if op == "or":
        return any(satisfied(a, have) for a in args)
    if op == "without":
        return satisfied(args[0], have) and not satisfied(args[1], have)
    cond = satisfied(args[1], have)
    if op == "unless":
        cond = not cond
    if cond:
        return satisfied(args[0], have)
    return satisfied(args[2], have) if len(args) == 3 else True


# ------------------------------------------------------------------ Debian

_atom_cache: dict[tuple, Atom] = {}


def _deb_atom(name: str, version: str, op: str) -> Atom:
    key = ("deb", name, version, op)
    atom = _atom_cache.get(key)
    if atom is None:
        pkg, _, arch = name.partition(":")
        atom = Atom("deb", pkg, _APT_OP.get(op, op), version, arch)
        if len(_atom_cache) < 500_000:
            _atom_cache[key] = atom
    return atom


def parse_deb(text: str) -> list[Relation]:
    """A whole Debian relation field (``Depends``, ``Pre-Depends``, ``Provides``, ...):
    one :class:`Atom` per entry, or an :class:`AnyOf` for ``a | b``."""
    text = text.strip()
    if not text:
        return []
    try:
        parsed = _apt().parse_depends(text, False)
    except ValueError:
        raise RelationError(f"cannot parse relation {text!r}: not a Debian relation field") from None
    result: list[Relation] = []
    for group in parsed:
        if len(group) == 1:
            result.append(_deb_atom(*group[0]))
        else:
            result.append(AnyOf(tuple(_deb_atom(*alt) for alt in group)))
    return result


# ------------------------------------------------------------------ RPM

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+(?:\([^\s()]*(?:\([^\s()]*\))*[^\s()]*\)[^\s()]*)*)")


class _RichParser:
    """rpm's grammar: ``( ARG OP ARG [OP ARG ...] )`` with one operator per level (``and``,
    ``or``, ``with`` may repeat; ``if``/``unless`` take one argument and an optional
    ``else``); an ARG is a nested rich dependency or ``NAME [OP VERSION]``."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def fail(self, why: str):
        raise RelationError(f"cannot parse relation {self.text!r}: {why} at column {self.pos + 1}")

    def peek(self) -> str:
        m = _TOKEN.match(self.text, self.pos)
        return m.group(1) if m else ""

    def take(self) -> str:
        m = _TOKEN.match(self.text, self.pos)
        if not m:
            self.fail("unexpected end" if not self.text[self.pos:].strip() else "unexpected text")
        self.pos = m.end()
        return m.group(1)

    def rich(self) -> Rich:
        if self.take() != "(":
            self.fail("expected '('")
        args = [self.arg()]
        op = ""
        while True:
            tok = self.take()
            if tok == ")":
                break
            if tok not in RICH_OPS and tok != "else":
                self.fail(f"expected an operator ({', '.join(RICH_OPS)}), got {tok!r}")
            if tok == "else":
                if op not in ("if", "unless") or len(args) != 2:
                    self.fail("'else' only follows 'if' or 'unless'")
            elif op and tok != op:
                self.fail(f"'{op}' and '{tok}' mixed without parentheses")
            elif op in ("if", "unless", "without"):
                self.fail(f"'{op}' takes one right-hand argument")
            else:
                op = tok
            args.append(self.arg())
        if not op:
            self.fail("no operator in parentheses")
        return Rich(op, tuple(args))

    def arg(self) -> Relation:
        if self.peek() == "(":
            return self.rich()
        name = self.take()
        if name in (")", "else", "==") or name in RICH_OPS or name in RPM_OPS:
            self.fail(f"expected a name, got {name!r}")
        if self.peek() in RPM_OPS or self.peek() == "==":
            op = self.take()
            version = self.take()
            if version in ("(", ")") or version in RICH_OPS:
                self.fail(f"expected a version after {op!r}")
            return Atom("rpm", name, "=" if op == "==" else op, version)
        return Atom("rpm", name)


def parse_rpm(text: str) -> Relation:
    """One RPM requirement as written in a spec or in rpm-md (``foo``, ``foo >= 1.2-3``,
    ``libc.so.6(GLIBC_2.14)(64bit)``, ``/usr/bin/sh``, ``(a or (b and c >= 2))``)."""
    text = text.strip()
    if not text:
        raise RelationError("cannot parse relation '': empty")
    parser = _RichParser(text)
    if text.startswith("("):
        rel: Relation = parser.rich()
    else:
        rel = parser.arg()
    if text[parser.pos:].strip():
        parser.fail("trailing text")
    return rel


def rpm_atom(name: str, flags: str = "", epoch: str | None = None, version: str | None = None,
             release: str | None = None) -> Relation:
    """An rpm-md ``<rpm:entry name= flags= epoch= ver= rel=>`` as a relation (a rich
    dependency when the name is one)."""
    if name.startswith("("):
        return parse_rpm(name)
    if not flags:
        return Atom("rpm", name)
    op = {"EQ": "=", "LT": "<", "GT": ">", "LE": "<=", "GE": ">="}.get(flags)
    if op is None:
        raise RelationError(f"cannot parse relation {name!r}: unknown flags {flags!r}")
    evr = version or ""
    if epoch and epoch != "0":
        evr = f"{epoch}:{evr}"
    if release:
        evr = f"{evr}-{release}"
    return Atom("rpm", name, op, evr)
