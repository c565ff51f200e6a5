"""The cache of root file systems: a rebuild of identical inputs reuses the ext4 partition.

An image's ext4 partition is a function of what it is made from: the member troves (every
file's path, content digest, mode, owner and time), the generated files (passwd, fstab,
os-release, the SBOMs, the dpkg database...), the paths left out, merged /usr, the
image's SOURCE_DATE_EPOCH, whether package scripts run and the hostname they see, the
partition's size, appbuild's own code and the host tools that write the partition
(``mke2fs``, ``debugfs``, ``depmod``, librpm). The hash of all of these is the *key*; after
a build the partition is kept under ``cache/rootfs/KEY-SIZE.ext4`` beside ``KEY.json`` (the
partition's sha256 and what the disk layout needs: the root's minimum size and the installed
size). A later build whose inputs hash to the same key, ``--force`` rebuilds included,
skips staging, package scripts and ``mke2fs`` and writes the kept partition into its disk:
the same bytes it would have made (images are bit-reproducible), as osbuild reuses a
pipeline's tree by its id or mkosi's ``Incremental=`` its cached tree.

What is read back is verified: a kept partition whose sha256 differs from its record (a
flipped bit, a truncated file) is deleted and the image built from scratch, with a line in
the build log. Writes go to a temporary name renamed into place (the record last), so a
killed build leaves a complete entry or none. Only the newest ``cache.root_filesystems``
partitions are kept (least recently used go first); 0 turns the cache off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import appbuilder
from appbuilder.core.fileio import sha256_file
from appbuilder.repository.trove import Trove

FORMAT = "appbuild rootfs cache 1"
TOOLS = ("mke2fs", "debugfs", "depmod")  # host programs whose output lands in the partition


@dataclass(frozen=True)
class CachedRoot:
    """What a kept partition's record says besides the partition itself."""

    root_minimum: int  # bytes the ext4 partition needs (the disk layout's input)
    installed_size: int


@functools.lru_cache(maxsize=1)
def code_and_tools_digest() -> str:
    """sha256 over appbuild's own code and the host tools that write the partition."""
    h = hashlib.sha256(FORMAT.encode() + b"\0")
    package = Path(appbuilder.__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for tool in TOOLS:
        found = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        h.update(f"{tool}\0{sha256_file(found) if found else 'absent'}\0".encode())
    try:
        import rpm

        h.update(f"rpm\0{rpm.__version__}\0".encode())
    except ImportError:
        h.update(b"rpm\0absent\0")
    return h.hexdigest()


def tree_key(group: Trove, troves: list[Trove], generated: list[tuple[str, bytes, int]], *, skip: set[str],
             merged_usr: bool, source_date_epoch: int, scripts: bool, hostname: str, extra: dict) -> str:
    """The hash of everything the staged root (after package scripts) is made from."""
    h = hashlib.sha256()

    def put(*parts) -> None:
        h.update(json.dumps(parts, sort_keys=True, default=str).encode() + b"\n")

    put("code", code_and_tools_digest())
    put("group", str(group.nvf), group.info)
    put("settings", sorted(skip), merged_usr, source_date_epoch, scripts, hostname, extra)
    for t in sorted(troves, key=lambda t: (str(t.nvf), str(t.flavor))):
        put("trove", str(t.nvf), str(t.flavor), t.info)
        # one document per trove (one encoder run, not one per file: tens of thousands of files)
        put("files", [[f.path, f.type, f.mode, f.owner, f.group, f.mtime, f.sha256, f.target, f.rdev, f.size]
                      for f in sorted(t.files, key=lambda f: f.path)])
    for path, content, mode in sorted(generated):
        put("generated", path, hashlib.sha256(content).hexdigest(), mode)
    return h.hexdigest()


class RootCache:
    """Kept ext4 partitions by key (see the module's docstring)."""

    def __init__(self, directory: Path, keep: int):
        self.directory = Path(directory)
        self.keep = keep

    @property
    def enabled(self) -> bool:
        return self.keep > 0

    def _record_path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def _ext4_path(self, key: str, size: int) -> Path:
        return self.directory / f"{key}-{size}.ext4"

    def _record(self, key: str) -> dict | None:
        try:
            record = json.loads(self._record_path(key).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return None
        return record

    def lookup(self, key: str) -> CachedRoot | None:
        """The record of *key*, or None."""
        record = self._record(key) if self.enabled else None
        try:
            return CachedRoot(int(record["root_minimum"]), int(record["installed_size"])) if record else None
        except (KeyError, TypeError, ValueError):
            return None

    def partition(self, key: str, size: int, say=lambda message: None) -> Path | None:
        """The kept partition of *key* made *size* bytes big, verified; None if there is none
        (a damaged one is deleted, and *say* tells)."""
        record = self._record(key) if self.enabled else None
        digest = (record or {}).get("partitions", {}).get(str(size))
        path = self._ext4_path(key, size)
        if not digest or not path.is_file():
            return None
        if path.stat().st_size != size or sha256_file(path) != digest:
            say(f"the kept root file system {path.name} is damaged (its sha256 is not the recorded one): "
                f"deleted, building it again")
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used
        return path

    def store(self, key: str, cached: CachedRoot, partition: Path, *, digest: str | None = None) -> None:
        """Keep *partition* (moved in) as *key*'s partition of its size, then drop the least
        recently used. *digest*: the partition's sha256, if the caller has it already."""
        if not self.enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        size = partition.stat().st_size
        digest = digest or sha256_file(partition)
        target = self._ext4_path(key, size)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            os.replace(partition, tmp)
        except OSError:  # another file system: copy, keeping holes
            with open(partition, "rb") as src, open(tmp, "wb") as dst:
                _copy_sparse(src, dst, size)
            partition.unlink()
        os.replace(tmp, target)
        record = self._record(key) or {"format": FORMAT, "partitions": {}}
        record.update(root_minimum=cached.root_minimum, installed_size=cached.installed_size)
        record["partitions"][str(size)] = digest
        where = self._record_path(key)
        tmp_record = where.with_name(f".{where.name}.{os.getpid()}.tmp")
        tmp_record.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp_record, where)
        self.prune()

    def prune(self) -> None:
        """Keep the newest ``keep`` partitions; records left without one go too."""
        kept = sorted(self.directory.glob("*.ext4"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[self.keep:]:
            old.unlink(missing_ok=True)
        alive = {p.name.split("-", 1)[0] for p in self.directory.glob("*.ext4")}
        for record in self.directory.glob("*.json"):
            if record.stem not in alive:
                record.unlink(missing_ok=True)
        for stale in self.directory.glob(".*.tmp"):
            try:
                pid = int(stale.name.rsplit(".", 2)[-2])
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError):
                stale.unlink(missing_ok=True)
            except PermissionError:
                pass


def _copy_sparse(src, dst, size: int) -> None:
    """Copy *size* bytes, leaving holes where the source has them."""
    fd = src.fileno()
    offset = 0
    while offset < size:
        try:
            data = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:
            break
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        src.seek(data)
        dst.seek(data)
        remaining = hole - data
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            dst.write(chunk)
            remaining -= len(chunk)
        offset = hole
    dst.truncate(size)
