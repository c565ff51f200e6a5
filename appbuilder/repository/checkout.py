"""Write troves' files into a directory (a cook's sysroot of build requirements).

Paths are created inside the destination only: a parent that resolves outside it
(through a symlink some trove carries) is refused. Ownership is not applied and
device nodes are skipped, so this works unprivileged; images are staged differently
(as a tar stream carrying owners and devices, see ``appbuilder.assemble``).

Capsules carry their upstream modification times (``FileEntry.mtime``); they are
applied (to links themselves, not their targets; to directories after everything
inside them is written), so that ``rpm -V`` on a staged root finds what the package
says. Cooked files have mtime 0 and keep the time they were written.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterable

from appbuilder.core.errors import RepositoryError
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry, Trove


def _host_path(root: Path, real_root: str, path: str) -> Path:
    pure = PurePosixPath(path)
    if ".." in pure.parts:
        raise RepositoryError(f"refusing path with '..': {path}")
    host = root.joinpath(*pure.parts[1:])
    _check_inside(root, real_root, host.parent, path)
    return host


def _check_inside(root: Path, real_root: str, host: Path, path: str) -> str:
    """The real path of *host*, refused when a symlink leads it outside *root*."""
    real = os.path.realpath(host)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise RepositoryError(f"{path} would be written outside {root} (through a symlink)")
    return real


def materialize(store: ContentStore, troves: Iterable[Trove], dest: Path, *, relative_links: bool = False) -> int:
    """Write every file of *troves* under *dest*; returns how many entries were written.

    With *relative_links*, absolute symlink targets are rewritten relative to the link,
    so that they point inside *dest* rather than at the host (a sysroot: Debian's
    ``libfoo.so -> /usr/lib/x86_64-linux-gnu/libfoo.so.1`` must find the staged library).
    """
    dest.mkdir(parents=True, exist_ok=True)
    real_root = os.path.realpath(dest)
    entries: list[FileEntry] = sorted((f for t in troves for f in t.files), key=lambda f: f.path)
    count = 0
    dir_times: list[tuple[Path, int]] = []
    for f in entries:
        host = _host_path(dest, real_root, f.path)
        # through the real path: a symlink to a directory that a later entry creates
        Path(os.path.realpath(host.parent)).mkdir(parents=True, exist_ok=True)
        if f.type == "dir":
            if host.is_symlink():  # never chmod what a link points to outside
                _check_inside(dest, real_root, host, f.path)
            host.mkdir(exist_ok=True)
            os.chmod(host, f.mode)
            if f.mtime:
                dir_times.append((host, f.mtime))
        elif f.type in ("char", "block"):
            continue
        else:
            if host.is_symlink() or host.is_file():
                host.unlink()
            if f.type == "file":
                store.copy_to(f.sha256, host)
                os.chmod(host, f.mode)
            elif f.type == "symlink":
                target = f.target
                if relative_links and target.startswith("/"):
                    target = os.path.relpath(target, os.path.dirname(f.path))
                os.symlink(target, host)
            elif f.type == "hardlink":
                source = _host_path(dest, real_root, f.target)
                if source.is_file() and not source.is_symlink():
                    os.link(source, host)
                else:
                    store.copy_to(f.sha256, host)
                    os.chmod(host, f.mode)
            elif f.type == "fifo":
                os.mkfifo(host, f.mode)
                os.chmod(host, f.mode)  # not masked by the umask, like every other entry
            if f.mtime:
                os.utime(host, (f.mtime, f.mtime), follow_symlinks=False)
        count += 1
    for host, mtime in reversed(dir_times):  # deepest first: a parent's time is set last
        os.utime(host, (mtime, mtime), follow_symlinks=False)
    return count
