"""An rpm-md repository (what yum and dnf read) as a resolve source.

:class:`RpmMdIndex` reads the repository through :mod:`appbuilder.upstream.rpmmd`:
``repodata/repomd.xml`` (signed: when the source names ``keys:``, ``repomd.xml.asc``
must be a good signature by one of them, checked with gpgv), then ``primary``, each
metadata file checked against the checksum repomd.xml gives. Only the packages of our
architecture (x86_64 or i686 and its older names) and ``noarch`` are kept.

Answers:

* by name and by capability: every ``Provides`` entry, so ``config(setup)``,
  ``perl(Foo)`` and ``webserver`` are virtual names;
* by soname: the provides rpmbuild writes for libraries, ``libz.so.1()(64bit)`` for
  ELF64, ``libz.so.1`` for ELF32;
* by file: the files primary lists (``/etc``, bin directories), then, only when that
  finds nothing, ``filelists`` (read once, on first need); merged /usr aliases
  (``/bin/sh`` is ``/usr/bin/sh``).

``Requires(pre)`` entries are the package's ``pre_depends``; ``Conflicts`` and
``Obsoletes`` its ``conflicts``; ``rpmlib(...)`` requirements are the installer's
business and left out. Rich dependencies (``(a or b)``) are parsed. The parsed primary
is cached (``repo/cache/upstream/``) under the sha256 of the checked repomd.xml.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

from appbuilder.upstream.depmap import RpmDep, sense_operator
from appbuilder.upstream.indexbase import (
    RPM_ARCHES,
    IndexPackage,
    IndexVerificationError,
    cache_key,
    file_digest,
    load_cached,
    merged_key,
    place_in,
    store_cached,
)
from appbuilder.upstream.lookaside import Lookaside
from appbuilder.upstream.relations import Atom, Relation, RelationError, compare, parse_rpm
from appbuilder.upstream.rpmmd import RPMSENSE_SCRIPT_PRE, RepoPackage, RpmMdRepository


def _relation(dep: RpmDep) -> Relation:
    if dep.name.startswith("("):
        return parse_rpm(dep.name)
    op = sense_operator(dep.flags)
    return Atom("rpm", dep.name, op if dep.version else "", dep.version if op else "")


class RpmMdIndex:
    """One rpm-md repository for one of our architectures."""

    kind = "rpm"

    def __init__(self, source: str, repo: str, *, arch: str, priority: int = 20, lookaside: Lookaside,
                 cache_dir: Path | None = None, keys: list[Path] | tuple = (), label: str | None = None):
        if arch not in RPM_ARCHES:
            raise IndexVerificationError(f"no RPM architecture for {arch!r} (x86_64, x86)")
        self.source = source
        self.arch = arch
        self.priority = priority
        self.label = label
        self.location = repo
        self.lookaside = lookaside
        self.cache_dir = cache_dir
        self.repo = RpmMdRepository(repo, lookaside, keys=list(keys)).load(primary=False)
        arches = RPM_ARCHES[arch]
        self._origin = f"{repo.rstrip('/')}/repodata primary"
        # the parsed primary, cached under the sha256 of the (checked) repomd.xml naming it; the
        # primary file is checked against repomd.xml every time, cached or not
        meta = self.repo.metadata["primary"]
        self.repo.local_file(meta["href"], meta["type"], meta["checksum"], what="primary metadata")
        key = cache_key("rpm-md", arch, self.repo.repomd_sha256)
        raw = load_cached(cache_dir, key) if cache_dir else None
        if raw is None:
            raw = [p for p in self.repo.load_primary() if p.arch in arches]
            if cache_dir:
                store_cached(cache_dir, key, raw, prefix="rpm-" + hashlib.sha256(
                    f"{source} {repo} {arch}".encode()).hexdigest()[:16])
        self._raw: list[RepoPackage] = raw
        self._packages: list[IndexPackage] = []
        self._by_name: dict[str, list[int]] = {}
        self._provides: dict[str, list[tuple[int, Atom]]] = {}
        self._files: dict[str, list[int]] = {}
        self._filelists: dict[str, list[int]] | None = None
        for raw in self._raw:
            ix = len(self._packages)
            pkg = self._make(raw)
            self._packages.append(pkg)
            self._by_name.setdefault(pkg.name, []).append(ix)
            for atom in pkg.provides:
                self._provides.setdefault(atom.name, []).append((ix, atom))
            for path in raw.files:
                self._files.setdefault(merged_key(path), []).append(ix)

    def _make(self, raw: RepoPackage) -> IndexPackage:
        try:
            requires = [d for d in raw.requires if not d.name.startswith("rpmlib(")]
            return IndexPackage(
                source=self.source, origin=self._origin, kind="rpm", name=raw.name,
                version=(f"{raw.epoch}:" if raw.epoch and raw.epoch != "0" else "") + f"{raw.version}-{raw.release}",
                arch=raw.arch,
                provides=tuple(a for a in map(_relation, raw.provides) if isinstance(a, Atom)),
                depends=tuple(_relation(d) for d in requires if not d.flags & RPMSENSE_SCRIPT_PRE),
                pre_depends=tuple(_relation(d) for d in requires if d.flags & RPMSENSE_SCRIPT_PRE),
                conflicts=tuple(_relation(d) for d in (*raw.conflicts, *raw.obsoletes)),
                location=raw.location, sha256=raw.checksum if raw.checksum_type == "sha256" else "",
                size=raw.size)
        except RelationError as exc:
            raise RelationError(f"{self._origin}: {raw.nevra}: {exc}") from None

    # ------------------------------------------------------------------ queries

    def describe(self) -> str:
        parts = "primary+filelists" if "filelists" in self.repo.metadata else "primary"
        return f"{self.source} ({self.location.rstrip('/')}/repodata {parts})"

    def __repr__(self) -> str:
        return f"<RpmMdIndex {self.describe()}>"

    def _newest_first(self, ixs) -> list[IndexPackage]:
        pkgs = [self._packages[ix] for ix in dict.fromkeys(ixs)]
        return sorted(pkgs, key=functools.cmp_to_key(lambda a, b: compare("rpm", b.version, a.version)))

    def by_name(self, name: str) -> list[IndexPackage]:
        return self._newest_first(self._by_name.get(name, ()))

    def by_virtual(self, name: str) -> list[tuple[IndexPackage, Atom]]:
        return [(self._packages[ix], atom) for ix, atom in self._provides.get(name, ())]

    def by_file(self, path: str) -> list[IndexPackage]:
        key = merged_key(path)
        found = self._files.get(key)
        if not found:
            found = self._filelist_index().get(key, [])
        return self._newest_first(found)

    def _filelist_index(self) -> dict[str, list[int]]:
        if self._filelists is None:
            by_nevra = {raw.nevra: ix for ix, raw in enumerate(self._raw)}
            index: dict[str, list[int]] = {}
            for nevra, files in self.repo.filelists().items():
                ix = by_nevra.get(nevra)
                if ix is None:
                    continue
                for path in files:
                    index.setdefault(merged_key(path), []).append(ix)
            self._filelists = index
        return self._filelists

    def by_soname(self, elf_class: str, soname: str) -> list[IndexPackage]:
        name = f"{soname}()(64bit)" if elf_class == "ELF64" else soname
        return self._newest_first(ix for ix, _ in self._provides.get(name, ()))

    def essential(self) -> list[IndexPackage]:
        return []

    def names(self) -> list[str]:
        return sorted(self._by_name)

    # ------------------------------------------------------------------ downloads

    def fetch(self, packages: list[IndexPackage], dest: Path | None = None) -> list[Path]:
        """The .rpm files of *packages*, verified against primary's checksum (local
        repositories are read in place, remote ones through the lookaside cache)."""
        raw_by_key = {self._packages[ix].key: self._raw[ix] for ix in range(len(self._packages))}
        paths = []
        for pkg in packages:
            raw = raw_by_key.get(pkg.key)
            if raw is None:
                raise IndexVerificationError(f"{pkg.key} is not a package of {self.describe()}")
            path, check = self.repo.package_file(raw)
            if check is not None:
                actual = file_digest(path)
                if actual != check:
                    raise IndexVerificationError(f"{path}: sha256 {actual} does not match the primary metadata "
                                                 f"({check})")
            paths.append(place_in(path, dest))
        return paths

    def fetch_each(self, packages: list[IndexPackage]) -> Iterator[tuple[int, Path]]:
        """(position in *packages*, verified file) of each package, in order."""
        yield from enumerate(self.fetch(packages))
