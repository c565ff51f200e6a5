"""Safe unpacking of source archives.

Every member of an archive is checked before anything is written: no absolute paths,
no ``..`` components, no symbolic or hard links that point outside the directory
being unpacked into, no device nodes. Only then is the archive unpacked, by GNU tar
inside the build sandbox (or by :mod:`zipfile` for zip archives), without the
archive's owners. An archive whose files would expand past a limit (16 GiB unless
``cook: max_unpacked_size`` in ``repo/config.yaml`` says otherwise) is refused too.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import zstandard

from appbuilder.core.errors import UnsafeArchive

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Runner = Callable[[Sequence[str], Path], None]


MAX_LINK_DEPTH = 40


class LinkResolver:
    """Resolves paths in a tree known as a list of entries, following the tree's own symlinks.

    By default (an archive being unpacked) a path that leaves the tree, through ``..``
    or an absolute link, resolves to None. With *rooted* the tree is a root file system
    seen from inside (a build root): absolute link targets start again at its top and
    ``..`` stops there, as the kernel does for a process whose root it is.
    """

    def __init__(self, symlinks: dict[str, str], *, rooted: bool = False):
        self.symlinks = symlinks
        self.rooted = rooted

    def resolve(self, path: str, depth: int = 0) -> str | None:
        """The path *path* really names, relative to the top, or None if outside (or a loop)."""
        if depth > MAX_LINK_DEPTH:
            return None
        stack: list[str] = []
        for comp in path.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if stack:
                    stack.pop()
                elif not self.rooted:
                    return None
                continue
            stack.append(comp)
            current = "/".join(stack)
            target = self.symlinks.get(current)
            if target is not None:
                if target.startswith("/"):
                    if not self.rooted:
                        return None
                    base = target
                else:
                    base = posixpath.join(posixpath.dirname(current), target)
                resolved = self.resolve(base, depth + 1)
                if resolved is None:
                    return None
                stack = resolved.split("/") if resolved else []
        return "/".join(stack)


def check_members(archive: str, members: Iterable[tuple[str, str, str | None]]) -> list[str]:
    """Validate ``(name, kind, link target)`` triples; returns the member names.

    *kind* is ``file``, ``dir``, ``symlink``, ``hardlink`` or ``device``. Symbolic
    links are followed as the archive itself defines them, so a chain of links that
    are each harmless alone cannot lead outside either.
    """
    members = list(members)
    symlinks: dict[str, str] = {}
    for name, kind, target in members:
        where = f"{archive}: member {name!r}"
        if name.startswith("/"):
            raise UnsafeArchive(f"{where} has an absolute path; refusing to unpack")
        if ".." in name.split("/"):
            raise UnsafeArchive(f"{where} has a '..' component; refusing to unpack")
        if kind == "device":
            raise UnsafeArchive(f"{where} is a device node; refusing to unpack")
        if kind == "symlink":
            if not target or target.startswith("/"):
                raise UnsafeArchive(f"{where} is a symlink to the absolute path {target!r}, outside the build directory")
            symlinks[posixpath.normpath(name)] = target
    resolver = LinkResolver(symlinks)
    names: list[str] = []
    for name, kind, target in members:
        where = f"{archive}: member {name!r}"
        norm = posixpath.normpath(name)
        if resolver.resolve(posixpath.dirname(norm)) is None:
            raise UnsafeArchive(f"{where} would be written through a symlink that points outside the build directory")
        if kind == "symlink" and resolver.resolve(posixpath.join(posixpath.dirname(norm), target)) is None:
            raise UnsafeArchive(f"{where} is a symlink to {target!r}, which points outside the build directory")
        if kind == "hardlink" and (not target or target.startswith("/") or resolver.resolve(target) is None):
            raise UnsafeArchive(f"{where} is a hard link to {target!r}, outside the build directory")
        names.append(norm)
    return names


def _tar_kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hardlink"
    if m.isdir():
        return "dir"
    if m.ischr() or m.isblk():
        return "device"
    return "file"


def _open_tar(path: Path) -> tarfile.TarFile:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == ZSTD_MAGIC:
        reader = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        return tarfile.open(fileobj=reader, mode="r|")
    return tarfile.open(path, mode="r:*")


def list_archive(path: Path) -> tuple[str, list[tuple[str, str, str | None]]]:
    """The archive's type (``tar`` or ``zip``) and its members."""
    kind, members, _ = _list(path)
    return kind, members


def _list(path: Path) -> tuple[str, list[tuple[str, str, str | None]], int]:
    """Type, members and the number of bytes the archive's files expand to."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            members = []
            for info in z.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                kind = "symlink" if is_link else ("dir" if info.is_dir() else "file")
                target = z.read(info).decode() if is_link else None
                members.append((info.filename.rstrip("/") or ".", kind, target))
            return "zip", members, sum(i.file_size for i in z.infolist())
    try:
        with _open_tar(path) as tar:
            members, total = [], 0
            for m in tar:
                members.append((m.name, _tar_kind(m), m.linkname if (m.issym() or m.islnk()) else None))
                total += m.size if m.isreg() else 0
            return "tar", members, total
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
        raise UnsafeArchive(f"{path.name}: not a readable tar or zip archive ({exc})") from None


def unpack(path: Path, dest: Path, run: Runner, *, inside: Callable[[Path], str] = str,
           limit: int | None = None) -> list[str]:
    """Check and unpack *path* into *dest*; *run* runs tar in the build sandbox, where
    *inside* maps host paths to what the sandbox sees. An archive whose files add up to
    more than *limit* bytes is refused before anything is written."""
    kind, members, total = _list(path)
    names = check_members(path.name, members)
    if limit is not None and total > limit:
        raise UnsafeArchive(
            f"{path.name} expands to {total:,} bytes, more than the limit of {limit:,} "
            f"(cook: max_unpacked_size in repo/config.yaml); refusing to unpack"
        )
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        _extract_zip(path, dest)
    else:
        run(["tar", "-x", "--no-same-owner", "--no-same-permissions", "--delay-directory-restore",
             "-f", inside(path), "-C", inside(dest)], dest)
    return names


def _extract_zip(path: Path, dest: Path) -> None:
    """Write a zip archive's (checked) members beneath *dest*, never through a symlink that
    was there before (:mod:`appbuilder.core.beneath`); links in the archive stay links."""
    from appbuilder.core.beneath import Beneath

    with zipfile.ZipFile(path) as z, Beneath(dest, label="source directory", error=UnsafeArchive) as tree:
        for info in z.infolist():
            mode = (info.external_attr >> 16) & 0o7777
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                tree.symlink(z.read(info).decode(), info.filename)
            elif info.is_dir():
                tree.mkdirs(info.filename)
            else:
                tree.mkdirs(posixpath.dirname(info.filename))
                fd = tree.open_file(info.filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, (mode or 0o644) & 0o777)
                with os.fdopen(fd, "wb") as out, z.open(info) as member:
                    shutil.copyfileobj(member, out, 1 << 20)
