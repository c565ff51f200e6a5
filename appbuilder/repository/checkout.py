"""Write troves' files into a directory (a cook's sysroot of build requirements).

Paths are created inside the destination only: a parent that resolves outside it
(through a symlink some trove carries) is refused. Ownership is not applied and
device nodes are skipped, so this works unprivileged; images are staged differently
(as a tar stream carrying owners and devices, see ``appbuilder.assemble``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterable

from appbuilder.errors import RepositoryError
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry, Trove


def _host_path(root: Path, real_root: str, path: str) -> Path:
    pure = PurePosixPath(path)
    if ".." in pure.parts:
        raise RepositoryError(f"refusing path with '..': {path}")
    host = root.joinpath(*pure.parts[1:])
    parent = os.path.realpath(host.parent)
    if parent != real_root and not parent.startswith(real_root + os.sep):
        raise RepositoryError(f"{path} would be written outside {root} (through a symlink)")
    return host


def materialize(store: ContentStore, troves: Iterable[Trove], dest: Path) -> int:
    """Write every file of *troves* under *dest*; returns how many entries were written."""
    dest.mkdir(parents=True, exist_ok=True)
    real_root = os.path.realpath(dest)
    entries: list[FileEntry] = sorted((f for t in troves for f in t.files), key=lambda f: f.path)
    count = 0
    for f in entries:
        host = _host_path(dest, real_root, f.path)
        host.parent.mkdir(parents=True, exist_ok=True)
        if f.type == "dir":
            host.mkdir(exist_ok=True)
            os.chmod(host, f.mode)
        elif f.type in ("char", "block"):
            continue
        else:
            if host.is_symlink() or host.is_file():
                host.unlink()
            if f.type == "file":
                store.copy_to(f.sha256, host)
                os.chmod(host, f.mode)
            elif f.type == "symlink":
                os.symlink(f.target, host)
            elif f.type == "hardlink":
                source = _host_path(dest, real_root, f.target)
                if source.is_file():
                    os.link(source, host)
                else:
                    store.copy_to(f.sha256, host)
                    os.chmod(host, f.mode)
            elif f.type == "fifo":
                os.mkfifo(host, f.mode)
        count += 1
    return count
