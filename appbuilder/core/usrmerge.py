"""Merged /usr: the top-level ``/bin``, ``/sbin`` and ``/lib*`` are links into ``/usr``.

Debian since 12 and every EL since 7 install this way, and their packages check it
(Debian's ``usr-is-merged`` refuses a root that is not merged). A package still names
``/bin/sh``; on a merged system the file is ``/usr/bin/sh``, so two packages holding
``/bin/x`` and ``/usr/bin/x`` write one file. Group resolution (path conflicts) and
root file system staging read package paths through :func:`merged_path`.
"""

from __future__ import annotations

from typing import Iterable

MERGED_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # top-level directories a merged /usr links
ALWAYS_MERGED = ("bin", "sbin", "lib")


def merged_path(path: str) -> str:
    """*path* as a merged-/usr system holds it: ``/bin/sh`` -> ``/usr/bin/sh``; others unchanged."""
    top = path[1:].split("/", 1)[0]
    return "/usr" + path if top in MERGED_DIRS and path.startswith("/") else path


def merged_links(paths: Iterable[str]) -> list[str]:
    """The top-level links (``bin``, ``lib64``, ...) a merged /usr needs for package *paths*."""
    used = {p[1:].split("/", 1)[0] for p in paths if p.startswith("/")}
    return [d for d in MERGED_DIRS if d in ALWAYS_MERGED or d in used]


def is_merged_dir(path: str) -> bool:
    """Whether *path* is one of the top-level directories that are links on a merged system."""
    return path.count("/") == 1 and path[1:] in MERGED_DIRS
