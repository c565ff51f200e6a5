"""Safe unpacking of source archives.

Every member of an archive is checked before anything is written: no absolute paths,
no ``..`` components, no symbolic or hard links that point outside the directory
being unpacked into, no device nodes. Only then is the archive unpacked, by GNU tar
inside the build sandbox (or by :mod:`zipfile` for zip archives), without the
archive's owners.
"""

from __future__ import annotations

import posixpath
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import zstandard

from appbuilder.errors import UnsafeArchive

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Runner = Callable[[Sequence[str], Path], None]


MAX_LINK_DEPTH = 40


class _Resolver:
    """Resolves paths inside the archive, following the archive's own symlinks."""

    def __init__(self, symlinks: dict[str, str]):
        self.symlinks = symlinks

    def resolve(self, path: str, depth: int = 0) -> str | None:
        """The path *path* really names, relative to the unpack directory, or None if outside."""
        if depth > MAX_LINK_DEPTH:
            return None
        stack: list[str] = []
        for comp in path.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not stack:
                    return None
                stack.pop()
                continue
            stack.append(comp)
            current = "/".join(stack)
            target = self.symlinks.get(current)
            if target is not None:
                if target.startswith("/"):
                    return None
                resolved = self.resolve(posixpath.join(posixpath.dirname(current), target), depth + 1)
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
    resolver = _Resolver(symlinks)
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
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            members = []
            for info in z.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                kind = "symlink" if is_link else ("dir" if info.is_dir() else "file")
                target = z.read(info).decode() if is_link else None
                members.append((info.filename.rstrip("/") or ".", kind, target))
            return "zip", members
    try:
        with _open_tar(path) as tar:
            return "tar", [(m.name, _tar_kind(m), m.linkname if (m.issym() or m.islnk()) else None) for m in tar]
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
        raise UnsafeArchive(f"{path.name}: not a readable tar or zip archive ({exc})") from None


def unpack(path: Path, dest: Path, run: Runner) -> list[str]:
    """Check and unpack *path* into *dest*; *run* runs tar in the build sandbox."""
    kind, members = list_archive(path)
    names = check_members(path.name, members)
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        with zipfile.ZipFile(path) as z:
            z.extractall(dest)
    else:
        run(["tar", "-x", "--no-same-owner", "--no-same-permissions", "--delay-directory-restore",
             "-f", str(path), "-C", str(dest)], dest)
    return names
