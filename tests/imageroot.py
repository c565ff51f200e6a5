"""Reading a built raw image's root file system back, without mounting: the ext4 root is the
second MBR partition, copied out and read with debugfs."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path


def built_raw(stdout: str, group: str, arch: str = "x86_64") -> Path:
    """The raw image a build of *group* printed it wrote."""
    m = re.search(rf"^{group}=\S+\[is: {arch}\]: (\S+)$", stdout, re.M)
    assert m, stdout
    name = re.search(r"^  raw\s+(\S+)  \(", stdout[m.end():], re.M)
    assert name, stdout
    return Path(m.group(1)) / name.group(1)


def root_partition(raw: Path, dest: Path) -> Path:
    """The image's second MBR partition (the ext4 root), copied out."""
    with open(raw, "rb") as src:
        entry = src.read(512)[446 + 16: 446 + 32]
        first, count = struct.unpack("<II", entry[8:16])
        src.seek(first * 512)
        dest.write_bytes(src.read(count * 512))
    return dest


class ImageRoot:
    """An image's root file system, read with debugfs."""

    def __init__(self, raw: Path, work: Path):
        self.fs = root_partition(raw, work / f"{raw.stem}.ext4")
        self.work = work

    def debugfs(self, command: str) -> str:
        return subprocess.run(["debugfs", "-R", command, str(self.fs)], capture_output=True, text=True).stdout

    def cat(self, path: str) -> str:
        return self.debugfs(f'cat "{path}"')

    def stat(self, path: str) -> tuple[int, int, int] | None:
        """(uid, gid, permission bits) of *path*, None when it is absent."""
        out = self.debugfs(f'stat "{path}"')
        mode = re.search(r"Mode:\s+(\d+)", out)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", out)
        if not mode or not owner:
            return None
        return int(owner.group(1)), int(owner.group(2)), int(mode.group(1), 8) & 0o7777

    def link(self, path: str) -> str | None:
        """The target of the symbolic link *path* (None when it is not one)."""
        out = self.debugfs(f'stat "{path}"')
        if "Type: symlink" not in out:
            return None
        m = re.search(r'Fast link dest: "(.*)"', out)
        if m:
            return m.group(1)
        return self.cat(path) or None
