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
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from appbuilder.fileio import sha256_file
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
    ownership: tuple[tuple[str, str, re.Pattern], ...] = ()
    config: tuple[re.Pattern, ...] = ()
    sysconfdir: str = "/etc"

    def owner_of(self, path: str) -> tuple[str, str]:
        for owner, group, regex in self.ownership:
            if regex.fullmatch(path):
                return owner, group
        return "root", "root"

    def is_config(self, path: str, file_type: str, executable: bool) -> bool:
        if file_type != "file":
            return False
        if any(r.fullmatch(path) for r in self.config):
            return True
        return path.startswith(self.sysconfdir.rstrip("/") + "/") and not executable


def walk_install_root(root: Path, rules: FileRules) -> list[InstalledFile]:
    """Every packaged path under *root*, sorted by path."""
    found: list[InstalledFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = "/" + os.path.relpath(dirpath, root) if dirpath != str(root) else ""
        rel_dir = "" if rel_dir == "/." else rel_dir
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            host = Path(dirpath, name)
            found.append(_entry(host, f"{rel_dir}/{name}", rules))
        for name in dirnames:
            host = Path(dirpath, name)
            if host.is_symlink():
                continue
            st = host.lstat()
            owner = rules.owner_of(f"{rel_dir}/{name}")
            if not os.listdir(host) or (st.st_mode & 0o7777) != 0o755 or owner != ("root", "root"):
                found.append(_entry(host, f"{rel_dir}/{name}", rules))
    found.sort(key=lambda f: f.entry.path)
    return _resolve_hardlinks(found)


def _entry(host: Path, path: str, rules: FileRules) -> InstalledFile:
    st = host.lstat()
    mode = st.st_mode
    owner, group = rules.owner_of(path)
    executable = bool(mode & 0o111) and stat.S_ISREG(mode)
    kw = dict(path=path, mode=mode & 0o7777, owner=owner, group=group)
    if stat.S_ISLNK(mode):
        entry = FileEntry(type="symlink", target=os.readlink(host), **kw)
    elif stat.S_ISDIR(mode):
        entry = FileEntry(type="dir", **kw)
    elif stat.S_ISFIFO(mode):
        entry = FileEntry(type="fifo", **kw)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entry = FileEntry(type="char" if stat.S_ISCHR(mode) else "block", rdev=st.st_rdev, **kw)
    elif stat.S_ISREG(mode):
        entry = FileEntry(
            type="file", size=st.st_size, sha256=sha256_file(host),
            config=rules.is_config(path, "file", executable), **kw,
        )
        if st.st_nlink > 1:  # hard links are settled once all paths are known
            return InstalledFile(entry, host, executable, inode=(st.st_dev, st.st_ino))
    else:
        raise ValueError(f"{path}: unsupported file type {stat.filemode(mode)}")
    return InstalledFile(entry, host, executable)


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
