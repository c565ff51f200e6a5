"""Whole upstream distributions as resolve sources: what a group may import packages from.

Each entry of the ``sources:`` setting is one distribution, opened for one of our
architectures as an :class:`UpstreamIndex`:

* ``kind: deb``: the machine's apt sources (:class:`~appbuilder.upstream.debindex.DebianIndex`):
  ``Packages`` for the Debian architecture (amd64 for x86_64, i386 for x86; ``all``
  packages are in both) and ``Contents`` for files and sonames;
* ``kind: rpm-md``: a yum/dnf repository (:class:`~appbuilder.upstream.rpmindex.RpmMdIndex`):
  ``primary`` and ``filelists``.

An index answers by package name, by virtual name (Provides), by file path and by
soname, and downloads the packages chosen, verified. Before it answers, every index
file is checked: a Debian list against the sha256 its ``InRelease`` gives and
``InRelease`` against the archive keys (apt checks only when it downloads); an rpm-md
repository's metadata against ``repomd.xml`` and, when the source names ``keys:``,
``repomd.xml.asc``. A failure is an :class:`IndexVerificationError` naming the file.

Parsed indexes are kept in ``repo/cache/upstream/`` keyed by the sha256 of the index
files they came from (and this code's version), so a second load skips the parsing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from appbuilder.core.errors import SourceError
from appbuilder.upstream.debindex import DebianIndex
from appbuilder.upstream.indexbase import (  # noqa: F401 - the interface, importable from here
    DEB_ARCH,
    IndexPackage,
    IndexVerificationError,
    UpstreamIndex,
    merged_key,
)
from appbuilder.upstream.lookaside import Lookaside
from appbuilder.upstream.rpmindex import RpmMdIndex


__all__ = ["DEB_ARCH", "DebianIndex", "IndexPackage", "IndexVerificationError", "RpmMdIndex", "UnknownSource",
           "UpstreamIndex", "merged_key", "open_sources"]


class UnknownSource(SourceError):
    """A group names a source the ``sources:`` setting does not declare."""


def open_sources(settings, arch: str, *, names: Sequence[str] | None = None, update: bool = False,
                 warn: Callable[[str], None] | None = None) -> list[UpstreamIndex]:
    """The indexes of the ``sources:`` setting (only *names*, when given) for our
    architecture *arch*, most preferred (lowest priority number) first."""
    configured: dict[str, dict] = settings.get("sources")
    if arch not in DEB_ARCH:
        raise SourceError(f"no upstream indexes for architecture {arch!r} (x86_64, x86)")
    wanted = list(configured) if names is None else list(names)
    for name in wanted:
        if name not in configured:
            raise UnknownSource(f"no source {name!r} in the sources: setting (repo/config.yaml); "
                                f"configured: {', '.join(sorted(configured)) or 'none'}")
    lookaside = Lookaside(settings.lookaside, settings.mirrors, warn=warn)
    cache_dir = settings.cache / "upstream"
    indexes: list[UpstreamIndex] = []
    for name in wanted:
        conf = configured[name]
        if conf["kind"] == "deb":
            indexes.append(DebianIndex(name, cache=settings.cache, arch=arch, priority=conf["priority"],
                                       lookaside=lookaside, cache_dir=cache_dir, update=update, warn=warn,
                                       label=conf.get("label")))
        else:
            repo = conf["repo"]
            if "://" not in repo and not Path(repo).is_absolute():
                repo = str(settings.workspace / repo)
            keys = [k if Path(k).is_absolute() else settings.workspace / k for k in conf.get("keys") or ()]
            indexes.append(RpmMdIndex(name, repo, arch=arch, priority=conf["priority"], lookaside=lookaside,
                                      cache_dir=cache_dir, keys=[Path(k) for k in keys], label=conf.get("label")))
    indexes.sort(key=lambda ix: (ix.priority, ix.source))
    return indexes
