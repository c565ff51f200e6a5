"""Make the root file system: ``mke2fs -d`` from the staged root, then ``debugfs`` fix-ups.

No root, no loop device, no mount. ``mke2fs -d`` copies the staging directory into a
new ext4 file system (e2fsprogs 1.47.0 here takes a directory, not a tar stream);
then one ``debugfs -w`` script sets, for every path, the owner, group, mode and times
the trove manifests say, and creates device nodes. The UUID and directory hash seed
come from the group version and every time stamp (the superblock's through
``E2FSPROGS_FAKE_TIME``) from the image's SOURCE_DATE_EPOCH, so the same group version
always gives the same bytes. ``e2fsck -fn`` checks the result.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import tempfile
from pathlib import Path

from appbuilder.assemble.rootfs import ImageEntry, StagedRoot
from appbuilder.core.errors import AppbuildError

BLOCK = 4096
INODE_RATIO = 16384
INODE_SIZE = 256
TYPE_BITS = {"file": 0o100000, "dir": 0o040000, "symlink": 0o120000, "char": 0o020000,
             "block": 0o060000, "fifo": 0o010000}


def journal_bytes(size: int) -> int:
    """The journal mke2fs makes for a file system of *size* bytes (ext2fs_default_journal_size)."""
    blocks = size // BLOCK
    if blocks < 2048:
        return 0
    if blocks < 32768:
        return 1024 * BLOCK
    if blocks < 256 * 1024:
        return 4096 * BLOCK
    if blocks < 512 * 1024:
        return 8192 * BLOCK
    return 16384 * BLOCK


def needed_bytes(staged: StagedRoot) -> int:
    """Bytes of data blocks the staged tree needs in ext4 (before metadata and headroom)."""
    total = 0
    for e in staged.entries.values():
        if e.type == "file":
            host = staged.directory / e.path.lstrip("/")
            size = host.lstat().st_size if host.exists() else 0
            total += -(-size // BLOCK) * BLOCK
        elif e.type == "dir":
            total += BLOCK
    return total


def _q(path: str) -> str:
    if '"' in path or "\n" in path:
        raise AppbuildError(f"cannot write path {path!r} into the image (quote or newline in the name)")
    return f'"{path}"'


def fixup_script(entries: dict[str, ImageEntry], inodes: dict[str, int] | None = None) -> str:
    """debugfs commands giving every path its owner, mode and times; creating devices.

    *inodes* (path -> inode number in the image, :func:`inode_numbers`) lets each command
    name its inode directly: debugfs looks a path up by reading every directory on the way
    from its start, which in a directory of thousands of entries costs more than the rest."""
    inodes = inodes or {}
    lines: list[str] = []
    for e in sorted(entries.values(), key=lambda e: e.path):
        if e.type in ("char", "block"):
            parent, name = os.path.split(e.path)
            kind = "c" if e.type == "char" else "b"
            lines += [f"cd {_q(parent)}", f"mknod {_q(name)} {kind} {os.major(e.rdev)} {os.minor(e.rdev)}", "cd /"]
        p = f"<{inodes[e.path]}>" if e.path in inodes and e.type not in ("char", "block") else _q(e.path)
        full_mode = TYPE_BITS[e.type] | (e.mode & 0o7777)
        lines += [f"sif {p} mode 0{full_mode:o}", f"sif {p} uid {e.uid}", f"sif {p} gid {e.gid}"]
        lines += [f"sif {p} {field} @{e.mtime}" for field in ("mtime", "atime", "ctime", "crtime")]
    return "\n".join(lines) + "\n"


def inode_numbers(image: Path, entries: dict[str, ImageEntry], env: dict[str, str]) -> dict[str, int]:
    """The inode number of every path mke2fs wrote into *image* (one ``debugfs ls -p`` per
    directory, in one debugfs run); a path missing from the answer is named by its path."""
    dirs = sorted(p for p, e in entries.items() if e.type == "dir")
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as script:
        script.write("".join(f"ls -p {_q(d)}\n" for d in dirs))
    try:
        proc = subprocess.run(["debugfs", "-f", script.name, str(image)], capture_output=True, env=env)
    finally:
        os.unlink(script.name)
    numbers: dict[str, int] = {"/": 2}  # EXT2_ROOT_INO
    if proc.returncode != 0:
        return {}
    current, k = None, -1
    for raw in proc.stdout.split(b"\n"):
        if raw.startswith(b"debugfs: "):  # the echo of the next command: the next directory's listing
            k += 1
            current = dirs[k] if k < len(dirs) else None
            continue
        parts = raw.split(b"/")  # /INO/MODE/UID/GID/NAME/SIZE/ (a name holds no slash)
        if current is None or len(parts) < 7 or parts[0] or not parts[1].isdigit():
            continue
        name = parts[5].decode("utf-8", "surrogateescape")
        if name not in (".", ".."):
            numbers[posixpath.join(current, name)] = int(parts[1])
    return numbers


def make_ext4(staged: StagedRoot, image: Path, size: int, *, uuid: str, label: str, source_date_epoch: int) -> None:
    """Write an ext4 file system of *size* bytes holding the staged root into *image*."""
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": str(source_date_epoch)}
    with open(image, "wb") as f:
        f.truncate(size)
    mke2fs = [
        "mke2fs", "-q", "-F", "-t", "ext4", "-b", str(BLOCK), "-i", str(INODE_RATIO), "-I", str(INODE_SIZE),
        "-m", "1", "-U", uuid, "-L", label,
        "-E", f"hash_seed={uuid},root_owner=0:0,lazy_itable_init=1",
        "-d", str(staged.directory), str(image),
    ]
    proc = subprocess.run(mke2fs, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        if "Could not allocate" in msg or "No space left" in msg:
            raise AppbuildError(f"the root file system of {size >> 20} MiB is too small for the closure: {msg}")
        raise AppbuildError(f"mke2fs failed: {msg}")
    inodes = inode_numbers(image, staged.entries, env)
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as script:
        script.write(fixup_script(staged.entries, inodes))
    try:
        proc = subprocess.run(["debugfs", "-w", "-f", script.name, str(image)], capture_output=True, text=True, env=env)
    finally:
        os.unlink(script.name)
    errors = [line for line in proc.stderr.splitlines() if line and not line.startswith("debugfs ")]
    if proc.returncode != 0 or errors:
        raise AppbuildError("debugfs could not apply owners and modes:\n  " + "\n  ".join(errors[:10]))
    check = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True, env=env)
    if check.returncode != 0:
        raise AppbuildError(f"the new root file system does not check clean:\n{check.stdout[-2000:]}")
