"""Turn an install root into file entries: type, mode, owner, size, sha256, link target.

* Owners: everything is ``root:root`` unless the recipe says otherwise with
  ``r.Ownership()`` (the build ran as whoever cooked it; that is not what the
  installed system wants).
* Hard links: the first path (sorted) carries the content, the others are
  ``hardlink`` entries naming it.
* Directories are packaged only when they carry something: empty ones, and ones
  with a mode other than 0755 or another owner (conary's ``ExcludeDirectories``).
  Parents of files are created when a trove is installed.
* Configuration files: regular non-executable files under ``%(sysconfdir)s``, plus
  what ``r.Config()`` names.
* What cannot be packaged fails the build: names that are not UTF-8 or hold control
  characters (a newline would break every listing of the package), symlink targets
  alike, and sockets or other file types a package cannot carry.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from appbuilder.core.beneath import Beneath, Entry
from appbuilder.core.errors import BuildFailed
from appbuilder.repository.trove import FileEntry


@dataclass
class InstalledFile:
    """A file entry together with where its content is on the build host."""

    entry: FileEntry
    host_path: Path
    executable: bool
    inode: tuple[int, int] | None = None  # set for regular files with several links


@dataclass(frozen=True)
class FileRules:
    """Owners and configuration files; the patterns are searched in the path (compile them
    with :func:`appbuilder.core.pathpattern.path_regex`, conary's anchoring)."""

    ownership: tuple[tuple[str, str, re.Pattern], ...] = ()
    config: tuple[re.Pattern, ...] = ()
    sysconfdir: str = "/etc"

    def owner_of(self, path: str) -> tuple[str, str]:
        for owner, group, regex in self.ownership:
            if regex.search(path):
                return owner, group
        return "root", "root"

    def is_config(self, path: str, file_type: str, executable: bool) -> bool:
        if file_type != "file":
            return False
        if any(r.search(path) for r in self.config):
            return True
        return path.startswith(self.sysconfdir.rstrip("/") + "/") and not executable


def walk_install_root(root: Path, rules: FileRules) -> list[InstalledFile]:
    """Every packaged path under *root*, sorted by path.

    The tree is read through directory fds and never through a symlink (see
    :mod:`appbuilder.core.beneath`). Paths that cannot be packaged (a name that is not UTF-8
    or holds a control character, a socket or another unsupported file type) fail the
    build with :class:`BuildFailed` listing them, escaped.
    """
    found: list[InstalledFile] = []
    problems: list[str] = []
    with Beneath(root, label="install root", absolute=True, error=BuildFailed) as tree:
        for dir_path, dirfd, dir_st, entries in tree.walk():
            prefix = "" if dir_path == "/" else dir_path
            if prefix and _keep_dir(prefix, dir_st, entries, rules):
                found.append(_entry(root, dirfd, ".", prefix, dir_st, rules))
            for e in list(entries):
                path = f"{prefix}/{e.name}"
                problem = _problem(dirfd, e, path)
                if problem:
                    problems.append(problem)
                    if e.is_dir:
                        entries.remove(e)  # what is inside would only repeat the complaint
                elif not e.is_dir:
                    found.append(_entry(root, dirfd, e.name, path, e.st, rules))
    if problems:
        shown = problems[:MAX_PROBLEMS] + ([f"... and {len(problems) - MAX_PROBLEMS} more"]
                                           if len(problems) > MAX_PROBLEMS else [])
        raise BuildFailed("the install root holds paths that cannot be packaged:\n  " + "\n  ".join(shown))
    found.sort(key=lambda f: f.entry.path)
    return _resolve_hardlinks(found)


MAX_PROBLEMS = 20
_PACKAGED = (stat.S_ISREG, stat.S_ISDIR, stat.S_ISLNK, stat.S_ISFIFO, stat.S_ISCHR, stat.S_ISBLK)


def escape_path(path: str) -> str:
    """*path* printable on one line: bytes that are not UTF-8 as ``\\xff``, control
    characters as ``\\n``, ``\\t`` or ``\\x1b``, a backslash as ``\\\\``."""
    out = []
    for ch in path:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) == "Cc":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}"))
        else:
            out.append(ch)
    return "".join(out)


def _text_problem(text: str) -> str | None:
    """What is wrong with a file name or symlink target, or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        return "holds a control character"
    return None


def _problem(dirfd: int, e: Entry, path: str) -> str | None:
    """Why the entry at *path* cannot be packaged, or None."""
    shown = escape_path(path)
    why = _text_problem(e.name)
    if why:
        return f"{shown}: the file name {why}"
    mode = e.st.st_mode
    if not any(test(mode) for test in _PACKAGED):
        kind = "a socket" if stat.S_ISSOCK(mode) else f"of an unsupported type ({stat.filemode(mode)})"
        return f"{shown}: is {kind}; only files, directories, symlinks, fifos and device nodes can be packaged"
    if stat.S_ISLNK(mode):
        target = os.readlink(e.name, dir_fd=dirfd)
        why = _text_problem(target)
        if why:
            return f"{shown}: the symlink target {escape_path(target)} {why}"
    return None


def _keep_dir(path: str, st: os.stat_result, entries: list[Entry], rules: FileRules) -> bool:
    """Directories are packaged when empty, or not 0755, or not root's."""
    return not entries or stat.S_IMODE(st.st_mode) != 0o755 or rules.owner_of(path) != ("root", "root")


def _entry(root: Path, dirfd: int, name: str, path: str, st: os.stat_result, rules: FileRules) -> InstalledFile:
    """The entry for *name* in the directory *dirfd* (``.``: the directory itself), whose
    ``lstat`` is *st*; *path* is where it is in the image, below *root*."""
    mode = st.st_mode
    owner, group = rules.owner_of(path)
    executable = bool(mode & 0o111) and stat.S_ISREG(mode)
    kw = dict(path=path, mode=mode & 0o7777, owner=owner, group=group)
    host = root / path.lstrip("/")
    if stat.S_ISLNK(mode):
        entry = FileEntry(type="symlink", target=os.readlink(name, dir_fd=dirfd), **kw)
    elif stat.S_ISDIR(mode):
        entry = FileEntry(type="dir", **kw)
    elif stat.S_ISFIFO(mode):
        entry = FileEntry(type="fifo", **kw)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entry = FileEntry(type="char" if stat.S_ISCHR(mode) else "block", rdev=st.st_rdev, **kw)
    else:  # regular (walk_install_root refused anything else)
        entry = FileEntry(
            type="file", size=st.st_size, sha256=_sha256_at(dirfd, name, st, path),
            config=rules.is_config(path, "file", executable), **kw,
        )
        if st.st_nlink > 1:  # hard links are settled once all paths are known
            return InstalledFile(entry, host, executable, inode=(st.st_dev, st.st_ino))
    return InstalledFile(entry, host, executable)


def _sha256_at(dirfd: int, name: str, st: os.stat_result, path: str) -> str:
    """Hex SHA-256 of the regular file *name* in *dirfd*, the very one *st* describes."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    with os.fdopen(fd, "rb") as f:
        if not os.path.samestat(os.fstat(fd), st):
            raise BuildFailed(f"{escape_path(path)}: changed while the install root was read")
        return hashlib.file_digest(f, "sha256").hexdigest()


def _resolve_hardlinks(found: list[InstalledFile]) -> list[InstalledFile]:
    """Keep the content on the first path of each inode; later paths become links to it."""
    first: dict[tuple[int, int], str] = {}
    result = []
    for f in found:
        inode = f.inode
        if inode is None:
            result.append(f)
            continue
        if inode not in first:
            first[inode] = f.entry.path
            result.append(f)
            continue
        e = f.entry
        link = FileEntry(path=e.path, type="hardlink", mode=e.mode, owner=e.owner, group=e.group,
                         size=0, sha256=e.sha256, target=first[inode], config=e.config)
        result.append(InstalledFile(link, f.host_path, f.executable))
    return result
