"""Policies that tidy the install root before it is packaged (conary's destdir policy).

* :func:`remove_non_package_files`: conary's ``RemoveNonPackageFiles`` list (libtool
  ``.la`` archives, ``perllocal.pod``, backup files, ...).
* :func:`normalize_man_pages`: conary's ``NormalizeManPages``: pages uncompressed, the
  install root's path removed from them, ``.so`` pages made symlinks, every page
  gzipped reproducibly, symlinks pointed at the compressed names, modes 0644.
* :func:`normalize_info_pages`: conary's ``NormalizeInfoPages``: the ``dir`` index
  removed, info pages gzipped reproducibly.

They run in appbuild on the host, on a tree the build wrote, through
:class:`~appbuilder.core.beneath.Beneath`: a symlink leading out of the install root
fails the cook, and nothing outside is read or written. Compression is Python's
``gzip`` at level 9 with no name and a zero time stamp (``gzip -n -9``), so the same
page always gives the same bytes.
"""

from __future__ import annotations

import bz2
import gzip
import os
import posixpath
import re
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from appbuilder.core.beneath import Beneath
from appbuilder.core.errors import BuildFailed
from appbuilder.core.pathpattern import path_regex
from appbuilder.recipe.macros import Macros

# conary's RemoveNonPackageFiles list (macros expanded; conary's filter anchoring), but
# with the temporary directories anchored at the root: conary's '(/var)?/tmp/' also
# matched a 'tmp' directory anywhere
NON_PACKAGE_FILES = (
    r"\.la$",
    r"%(prefix)s/(lib|%(lib)s)/python.*/site-packages/.*\.a$",
    r"perllocal\.pod$",
    r"\.packlist$",
    r"\.cvsignore$",
    r"\.orig$",
    r"%(sysconfdir)s.*/rc[0-6].d/[KS].*$",
    "~$",
    r".*/\.#.*",
    "/tmp/",
    "/var/tmp/",
)
MAN_DIRS = ("%(mandir)s", "%(x11prefix)s/man", "%(krbprefix)s/man")
_SO_LINE = re.compile(rb"^\.so (.*\...*)$")
_COMMENT = re.compile(rb"^\.\\\"")


@dataclass
class Tidied:
    """What the destdir policies did, by in-image path, for the build log."""

    removed: list[str] = field(default_factory=list)
    compressed: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)  # .so pages made symlinks


def compress(data: bytes) -> bytes:
    """*data* gzipped like ``gzip -n -9``: the same input always gives the same bytes."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def _excepted(path: str, exceptions: list[re.Pattern]) -> bool:
    return any(r.search(path) for r in exceptions)


def _tree(root: Path) -> Beneath:
    return Beneath(root, label="install root", absolute=True, error=BuildFailed)


def _listing(tree: Beneath, top: str) -> list[tuple[str, list[tuple[str, os.stat_result]]]]:
    """``(directory, [(name, lstat)])`` for every directory below *top* (none if absent)."""
    try:
        st = tree.lstat(top)
    except (FileNotFoundError, NotADirectoryError):
        return []
    if not stat.S_ISDIR(st.st_mode):
        return []
    return [(d, [(e.name, e.st) for e in entries]) for d, _fd, _st, entries in tree.walk(top)]


def remove_non_package_files(root: Path, macros: Macros, exceptions: list[re.Pattern]) -> list[str]:
    """Remove what conary's ``RemoveNonPackageFiles`` removed; returns the paths."""
    patterns = [path_regex(macros.expand(p)) for p in NON_PACKAGE_FILES]
    removed = []
    with _tree(root) as tree:
        for dir_path, _fd, _st, entries in tree.walk():
            prefix = "" if dir_path == "/" else dir_path
            for e in list(entries):
                path = f"{prefix}/{e.name}"
                if not any(r.search(path) for r in patterns) or _excepted(path, exceptions):
                    continue
                if e.is_dir:
                    tree.rmtree(path)
                    entries.remove(e)
                else:
                    tree.unlink(path)
                removed.append(path)
    return removed


def _uncompressed(data: bytes, name: str, path: str) -> bytes | None:
    try:
        if name.endswith(".gz"):
            return gzip.decompress(data)
        if name.endswith(".bz2"):
            return bz2.decompress(data)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise BuildFailed(f"{path}: cannot be uncompressed ({exc})") from None
    return None


def normalize_man_pages(root: Path, macros: Macros, exceptions: list[re.Pattern], done: Tidied) -> None:
    """conary's ``NormalizeManPages`` over ``%(mandir)s`` (and the X11 and Kerberos ones)."""
    destdir = macros.destdir.strip("/")
    with _tree(root) as tree:
        for top in dict.fromkeys(macros.expand(d) for d in MAN_DIRS):
            listing = _listing(tree, top)
            if not listing:
                continue
            # 1. uncompress, fix modes and text
            for dir_path, entries in listing:
                if not _excepted(dir_path + "/", exceptions):
                    tree.chmod(dir_path, 0o755, follow=False)
                for name, st in entries:
                    path = f"{dir_path}/{name}"
                    if not stat.S_ISREG(st.st_mode) or _excepted(path, exceptions):
                        continue
                    data = tree.read_bytes(path)
                    plain = _uncompressed(data, name, path)
                    if plain is not None:
                        tree.unlink(path)
                        path = path.rsplit(".", 1)[0]
                        data = plain
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        data = data.decode("iso-8859-1").encode("utf-8")
                    if destdir:
                        data = data.replace(b"/" + destdir.encode(), b"").replace(destdir.encode(), b"")
                    tree.write_bytes(path, data, 0o644)
            # 2. '.so page' files become symlinks, 3. every page is compressed,
            # 4. symlinks point at the compressed names
            for dir_path, _entries in _listing(tree, top):
                section = posixpath.basename(dir_path)
                for name in sorted(tree.listdir(dir_path)):
                    path = f"{dir_path}/{name}"
                    if _excepted(path, exceptions):
                        continue
                    st = tree.lstat(path)
                    if stat.S_ISREG(st.st_mode) and _so_link(tree, dir_path, name, section, done):
                        continue
                for name in sorted(tree.listdir(dir_path)):
                    path = f"{dir_path}/{name}"
                    if _excepted(path, exceptions):
                        continue
                    st = tree.lstat(path)
                    if stat.S_ISREG(st.st_mode):
                        data = tree.read_bytes(path)
                        tree.unlink(path)
                        tree.write_bytes(path + ".gz", compress(data), 0o644)
                        done.compressed.append(path + ".gz")
                    elif stat.S_ISLNK(st.st_mode):
                        target = tree.readlink(path)
                        new_target = target if target.endswith(".gz") else target + ".gz"
                        new_path = path if path.endswith(".gz") else path + ".gz"
                        tree.unlink(path)
                        tree.symlink(posixpath.normpath(new_target), new_path)


def _so_link(tree: Beneath, dir_path: str, name: str, section: str, done: Tidied) -> bool:
    """Make the page *name* a symlink when all it holds is ``.so other.N`` (and the other
    page exists); True when it did."""
    path = f"{dir_path}/{name}"
    head = tree.read_bytes(path)[:512]
    lines = [line for line in head.split(b"\n") if line.strip() and not _COMMENT.search(line)]
    if len(lines) != 1:
        return False
    match = _SO_LINE.search(lines[0].rstrip())
    if not match:
        return False
    parts = match.group(1).decode("utf-8", "replace").split("/")
    if len(parts) == 1 or parts[-2] == section:
        target = parts[-1]
    else:
        target = f"../{parts[-2]}/{parts[-1]}"
    if not tree.lexists(posixpath.normpath(f"{dir_path}/{target}")):
        return False
    tree.unlink(path)
    tree.symlink(target, path)
    done.linked.append(path)
    return True


def normalize_info_pages(root: Path, macros: Macros, exceptions: list[re.Pattern], done: Tidied) -> None:
    """conary's ``NormalizeInfoPages``: remove ``%(infodir)s/dir``, gzip the pages."""
    infodir = macros.infodir.rstrip("/")
    with _tree(root) as tree:
        try:
            st = tree.lstat(infodir)
        except (FileNotFoundError, NotADirectoryError):
            return
        if not stat.S_ISDIR(st.st_mode):
            return
        index = f"{infodir}/dir"
        if tree.lexists(index) and not _excepted(index, exceptions):
            tree.unlink(index)
            done.removed.append(index)
        for name in sorted(tree.listdir(infodir)):
            path = f"{infodir}/{name}"
            st = tree.lstat(path)
            if not stat.S_ISREG(st.st_mode) or _excepted(path, exceptions):
                continue
            data = tree.read_bytes(path)
            plain = _uncompressed(data, name, path)
            if plain is not None:
                data = plain
                base = path.rsplit(".", 1)[0]
            else:
                base = path
            tree.unlink(path)
            tree.write_bytes(base + ".gz", compress(data), stat.S_IMODE(st.st_mode))
            done.compressed.append(base + ".gz")
