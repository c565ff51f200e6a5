"""Troves: packages, their components, capsules and groups, as manifests of files.

A cooked package ``busybox`` is a trove whose members are its components
(``busybox:runtime``, ``busybox:doc``, ...); each component lists its files and its
dependencies. File contents are not part of a trove: a file entry names its content by
sha256 and the content store holds the bytes once, whichever troves share them.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from appbuilder.repository.deps import Dependency
from appbuilder.repository.versions import NVF, Flavor, Version

FILE_TYPES = ("file", "dir", "symlink", "hardlink", "char", "block", "fifo")

# kind of trove
PACKAGE = "package"  # a cooked or imported package; members are components
COMPONENT = "component"  # holds files
GROUP = "group"  # exact pins of other troves


@dataclass(frozen=True)
class FileEntry:
    """One path of a component, with everything needed to recreate it."""

    path: str
    type: str
    mode: int  # permission bits, including setuid/setgid/sticky
    owner: str = "root"
    group: str = "root"
    size: int = 0
    sha256: str | None = None  # content of regular files
    target: str | None = None  # symlink target, or the path a hardlink shares content with
    config: bool = False
    rdev: int = 0  # device number of char/block devices
    mtime: int = 0  # only capsules carry upstream mtimes; cooked files are clamped

    def __post_init__(self) -> None:
        if self.type not in FILE_TYPES:
            raise ValueError(f"bad file type {self.type!r} for {self.path}")
        if not self.path.startswith("/"):
            raise ValueError(f"file path must be absolute: {self.path!r}")

    @property
    def st_mode(self) -> int:
        """The full st_mode (type bits and permissions), as tar and mke2fs want it."""
        kind = {
            "file": stat.S_IFREG,
            "hardlink": stat.S_IFREG,
            "dir": stat.S_IFDIR,
            "symlink": stat.S_IFLNK,
            "char": stat.S_IFCHR,
            "block": stat.S_IFBLK,
            "fifo": stat.S_IFIFO,
        }[self.type]
        return kind | (self.mode & 0o7777)

    def describe(self) -> str:
        perms = stat.filemode(self.st_mode)
        extra = f" -> {self.target}" if self.type in ("symlink", "hardlink") else ""
        flags = " [config]" if self.config else ""
        return f"{perms} {self.owner:>8} {self.group:>8} {self.size:>10} {self.path}{extra}{flags}"


@dataclass
class Trove:
    """A versioned object in the repository."""

    name: str
    version: Version
    flavor: Flavor
    kind: str = COMPONENT
    files: list[FileEntry] = field(default_factory=list)
    provides: set[Dependency] = field(default_factory=set)
    requires: set[Dependency] = field(default_factory=set)
    members: list[NVF] = field(default_factory=list)
    # free-form facts: source name, build log blob, input hash, capsule data, reasons...
    info: dict = field(default_factory=dict)

    @property
    def nvf(self) -> NVF:
        return NVF(self.name, self.version, self.flavor)

    @property
    def package(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def component(self) -> str | None:
        return self.name.split(":", 1)[1] if ":" in self.name else None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files if f.type == "file")

    def __str__(self) -> str:
        return str(self.nvf)
