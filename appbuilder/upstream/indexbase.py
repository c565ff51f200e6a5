"""What every upstream index shares: the package record, the protocol, merged-/usr paths, the cache.

See :mod:`appbuilder.upstream.index` for the indexes themselves.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

from appbuilder.upstream.gpgv import IndexVerificationError  # noqa: F401 - part of this module's interface
from appbuilder.upstream.relations import Atom, Relation

# bump when what the cache holds changes
INDEX_FORMAT = 3

# our architecture -> (Debian architecture, RPM architectures)
DEB_ARCH = {"x86_64": "amd64", "x86": "i386"}
__all__ = ["DEB_ARCH", "RPM_ARCHES", "IndexPackage", "IndexVerificationError", "UpstreamIndex", "merged_key",
           "file_digest", "cache_key", "load_cached", "store_cached"]
RPM_ARCHES = {"x86_64": ("x86_64", "noarch"), "x86": ("i686", "i586", "i486", "i386", "noarch")}


@dataclass(frozen=True)
class IndexPackage:
    """One package of an upstream index, with its relations parsed."""

    source: str
    origin: str
    kind: str
    name: str
    version: str
    arch: str
    essential: bool = False
    priority: str = ""
    provides: tuple[Atom, ...] = ()
    depends: tuple[Relation, ...] = ()
    pre_depends: tuple[Relation, ...] = ()
    conflicts: tuple[Relation, ...] = ()
    location: str = ""
    sha256: str = ""
    size: int = 0

    @property
    def key(self) -> str:
        return f"{self.name}={self.version}.{self.arch}"

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.arch}, {self.origin})"


class UpstreamIndex(Protocol):
    source: str
    kind: str
    priority: int
    arch: str
    label: str | None

    def describe(self) -> str: ...
    def by_name(self, name: str) -> list[IndexPackage]: ...
    def by_virtual(self, name: str) -> list[tuple[IndexPackage, Atom]]: ...
    def by_file(self, path: str) -> list[IndexPackage]: ...
    def by_soname(self, elf_class: str, soname: str) -> list[IndexPackage]: ...
    def essential(self) -> list[IndexPackage]: ...
    def fetch(self, packages: list[IndexPackage], dest: Path | None = None) -> list[Path]: ...
    def fetch_each(self, packages: list[IndexPackage]) -> Iterator[tuple[int, Path]]: ...


# ------------------------------------------------------------------ merged /usr

MERGED_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def merged_key(path: str) -> str:
    """A path as merged /usr sees it, without the leading slash: ``/bin/sh`` and
    ``/usr/bin/sh`` both give ``usr/bin/sh``; other paths are only stripped."""
    path = path.lstrip("/")
    top = path.split("/", 1)[0]
    return "usr/" + path if top in MERGED_DIRS else path


# ------------------------------------------------------------------ cache of parsed indexes


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def place_in(path: Path, dest: str | Path | None) -> Path:
    """*path* itself when *dest* is None, else a hard link (or copy) of it in the folder *dest*."""
    if dest is None:
        return path
    Path(dest).mkdir(parents=True, exist_ok=True)
    target = Path(dest) / path.name
    if not target.exists():
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return target


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(repr((INDEX_FORMAT,) + parts).encode()).hexdigest()


def load_cached(cache_dir: Path, key: str):
    """The value :func:`store_cached` kept under *key*; None when there is none (or it is damaged)."""
    path = cache_dir / f"{key}.cache"
    try:
        with open(path, "rb") as f:
            kind = f.read(1)
            if kind == _MARSHAL:
                return marshal.loads(f.read())
            if kind == _PICKLE:
                return pickle.load(f)
            raise ValueError(f"unknown cache entry kind {kind!r}")
    except FileNotFoundError:
        return None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError):
        path.unlink(missing_ok=True)  # damaged: parse again
        return None


def store_cached(cache_dir: Path, key: str, value, *, prefix: str) -> None:
    """Write the cache entry under a temporary name, then rename; older entries of the same
    *prefix* (the same source and architecture) are removed. Plain data (tuples, lists,
    dicts, strings, numbers: a parsed Debian index) is kept with :mod:`marshal`, several
    times faster to write than pickle; other values (records of an rpm-md index) are pickled."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        data = _MARSHAL + marshal.dumps(value)
    except ValueError:  # not plain data
        data = _PICKLE + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(data)
        final = cache_dir / f"{key}.cache"
        os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for old in [*cache_dir.glob("*.cache"), *cache_dir.glob("*.pickle")]:  # .pickle: before INDEX_FORMAT 2
        marker = cache_dir / f"{old.stem}.of"
        if old.name != f"{key}.cache" and marker.is_file() and marker.read_text() == prefix:
            old.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
    (cache_dir / f"{key}.of").write_text(prefix)


_MARSHAL, _PICKLE = b"M", b"P"  # the first byte of a cache entry: how the rest is written
