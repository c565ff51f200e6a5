"""What the assembly tests share: troves of hand-made file entries, the real tools run on
files in ``tmp_path``, and readers of what those tools print."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry, Trove
from appbuilder.repository.versions import Flavor, Version

MIB = 1 << 20
EPOCH = 1_700_000_000  # 2023-11-14 22:13:20 UTC
VERSION = Version.parse("cernvm@cvm:2/1.0-1-1")
UUID = "6f1b3c0e-8d0b-4a8e-9a5e-2f64d1c0a001"
TOOL_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "TZ": "UTC", "LC_ALL": "C"}


def trove(name: str, *files: FileEntry, arch: str = "x86_64") -> Trove:
    return Trove(name, VERSION, Flavor(arch), files=list(files))


def run(*argv, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a real tool; text output; fails the test with its output when it fails."""
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=kw.pop("env", TOOL_ENV), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


# ------------------------------------------------------------------ ext4, read back with debugfs


@dataclass
class Inode:
    type: str  # debugfs's words: regular, directory, symlink, character special, block special, FIFO
    mode: int  # permission bits (with setuid, setgid, sticky)
    uid: int
    gid: int
    times: dict[str, tuple[int, int]]  # ctime/atime/mtime/crtime -> (seconds, extra field)
    device: tuple[int, int] | None = None
    link: str | None = None
    ino: int = 0
    links: int = 0


def debugfs_stat(image: Path, path: str) -> Inode:
    """``debugfs -R 'stat PATH'`` of *image*, parsed."""
    out = run("debugfs", "-R", f'stat "{path}"', image).stdout
    head = re.search(r"Inode: (\d+)\s+Type: (.+?)\s+Mode:\s+(\d+)", out)
    assert head, f"debugfs has no inode {path} in {image.name}:\n{out}"
    owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", out)
    times = {m.group(1): (int(m.group(2), 16), int(m.group(3), 16))
             for m in re.finditer(r"^\s*(ctime|atime|mtime|crtime): 0x([0-9a-f]+):([0-9a-f]+)", out, re.M)}
    device = re.search(r"Device major/minor number: (\d+):(\d+)", out)
    link = re.search(r'Fast link dest: "(.*)"', out)
    links = re.search(r"Links: (\d+)", out)
    return Inode(head.group(2), int(head.group(3), 8), int(owner.group(1)), int(owner.group(2)), times,
                 (int(device.group(1)), int(device.group(2))) if device else None, link.group(1) if link else None,
                 int(head.group(1)), int(links.group(1)))


# ------------------------------------------------------------------ cpio archives


@dataclass
class NewcMember:
    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    rdev: tuple[int, int]
    data: bytes


def newc_members(raw: bytes) -> list[NewcMember]:
    """The members of a ``newc`` cpio archive, in archive order, up to the trailer (every
    header field, so times and owners can be checked exactly; ``cpio -t`` shows only dates)."""
    members, pos = [], 0
    while True:
        assert raw[pos:pos + 6] == b"070701", f"no newc header at offset {pos}"
        f = [int(raw[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        name_start = pos + 110
        name = raw[name_start: name_start + f[11] - 1].decode()
        data_start = name_start + f[11] + (-(110 + f[11]) % 4)
        data = raw[data_start: data_start + f[6]]
        pos = data_start + f[6] + (-f[6] % 4)
        if name == "TRAILER!!!":
            return members
        members.append(NewcMember(name, f[0], f[1], f[2], f[3], f[4], f[5], (f[9], f[10]), data))


def cpio_listing(raw: bytes) -> dict[str, list[str]]:
    """``cpio -itv --numeric-uid-gid`` of an uncompressed archive: name -> the listing's fields."""
    proc = subprocess.run(["cpio", "-itv", "--numeric-uid-gid"], input=raw, capture_output=True, env=TOOL_ENV)
    assert proc.returncode == 0, proc.stderr.decode()
    listing = {}
    for line in proc.stdout.decode().splitlines():
        fields = line.split()
        # mode nlink uid gid size|"major," minor month day year name [-> target]
        name_at = 9 if fields[4].endswith(",") else 8
        listing[fields[name_at]] = fields
    return listing


# ------------------------------------------------------------------ the host's kernel modules


@dataclass(frozen=True)
class HostModules:
    """A kernel's module tree on this machine (``/lib/modules/VERSION``), read with kmod's tools."""

    version: str

    @property
    def root(self) -> Path:
        return Path("/lib/modules") / self.version

    def path(self, name: str) -> str:
        """The module's file (``modinfo -n``) as a kernel package lists it: /lib/modules/VERSION/..."""
        found = run("modinfo", "-k", self.version, "-n", name).stdout.strip()
        return str(self.root / found.split(f"/modules/{self.version}/", 1)[1])

    def field(self, name: str, field: str) -> str:
        return run("modinfo", "-k", self.version, "-F", field, name).stdout.strip()

    def depends(self, name: str) -> list[str]:
        return [d.replace("-", "_") for d in self.field(name, "depends").split(",") if d]

    def hard_closure(self, names: list[str]) -> set[str]:
        """*names* and, recursively, what ``depends=`` names (as kmod reads it)."""
        seen: set[str] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += self.depends(n)
        return seen


def kernel_troves(store: ContentStore, host: HostModules, modules: list[str], *, index: bool = False) -> list[Trove]:
    """A kernel package made of this machine's module files: the image (a stand-in: nothing
    reads it here), its config, the named modules, and with *index* the module index files
    (``modules.dep``, ``modules.softdep``, ``modules.alias``) as distribution kernels may ship them."""
    v = host.version
    files = [
        FileEntry(f"/boot/vmlinuz-{v}", "file", 0o644, size=16, sha256=store.put_bytes(b"bzImage stand-in")),
        FileEntry(f"/boot/config-{v}", "file", 0o644, size=17, sha256=store.put_bytes(b"CONFIG_RD_ZSTD=y\n")),
        FileEntry(f"/lib/modules/{v}", "dir", 0o755),
    ]
    for name in modules:
        path = host.path(name)
        files.append(FileEntry(path, "file", 0o644, size=os.path.getsize(path), sha256=store.put_file(path)))
    if index:
        for n in ("modules.dep", "modules.softdep", "modules.alias"):
            p = host.root / n
            files.append(FileEntry(str(p), "file", 0o644, size=p.stat().st_size, sha256=store.put_file(p)))
    return [trove("linux-image:runtime", *files)]
