"""Debian binary packages by name, through the machine's apt, for amd64 and i386.

``PKG`` means the machine's architecture (amd64), ``PKG:i386`` the 32-bit build. apt
runs privately (:mod:`appbuilder.upstream.apt`): its own lists under the cache
(``apt-bin/``), an empty dpkg status, and ``APT::Architectures`` set to amd64 and i386,
so i386 packages download without ``dpkg --add-architecture`` and the machine's apt is
never changed.

The version and sha256 apt's (signed) index gives for a package are looked up first:
a package already imported is then a no-op without a download, and one already in the
lookaside cache is not fetched again (but checked against that sha256 each time: a
damaged copy is removed and downloaded again). Downloads (``apt-get download``) are
checked against that sha256 and kept in the lookaside cache.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appbuilder.capsule.deb import parse_control
from appbuilder.capsule.model import CapsuleError
from appbuilder.core.fileio import sha256_file
from appbuilder.upstream.apt import APT_DIR, PrivateApt
from appbuilder.upstream.lookaside import Lookaside

ARCHITECTURES = ("amd64", "i386")
_SPEC_RE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.-]+)(?::(?P<arch>[a-z0-9]+))?(?:=(?P<version>\S+))?$")


@dataclass(frozen=True)
class DebSpec:
    name: str
    arch: str  # Debian architecture
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> "DebSpec":
        m = _SPEC_RE.match(text)
        if not m:
            raise CapsuleError(f"bad Debian package name {text!r}: expected PACKAGE[:ARCH][=VERSION]")
        arch = m.group("arch") or ARCHITECTURES[0]
        if arch not in ARCHITECTURES + ("all",):
            raise CapsuleError(f"{text}: architecture {arch!r} is not one appbuild imports (amd64, i386)")
        return cls(m.group("name"), arch, m.group("version"))

    def __str__(self) -> str:
        return f"{self.name}:{self.arch}" + (f"={self.version}" if self.version else "")


@dataclass(frozen=True)
class DebRecord:
    """What apt's index says about one package."""

    spec: DebSpec
    version: str
    arch: str
    sha256: str
    size: int
    filename: str  # pool path, for messages only
    depends: str = ""  # the Depends field, as apt's index gives it

    def direct_depends(self) -> list[DebSpec]:
        """The first alternative of each Depends entry, for the same architecture."""
        specs = []
        for entry in filter(None, (e.strip() for e in self.depends.split(","))):
            name = entry.split("|", 1)[0].split("(", 1)[0].strip().split(":", 1)[0]
            specs.append(DebSpec(name, self.spec.arch))
        return specs


class DebianArchive:
    def __init__(self, cache: Path, lookaside: Lookaside, *, apt_dir: Path = APT_DIR,
                 warn: Callable[[str], None] | None = None):
        self.apt = PrivateApt(Path(cache) / "apt-bin", kind="deb", architectures=ARCHITECTURES,
                              status="private", apt_dir=apt_dir, contents=True)  # shared with DebianIndex
        self.lookaside = lookaside
        self.warn = warn
        self._updated = False

    def update(self) -> None:
        if not self._updated:
            self.apt.update(index_glob="*_Packages*", warn=self.warn)
            self._updated = True

    def lookup(self, specs: list[DebSpec]) -> list[DebRecord]:
        """The candidate (newest, or the asked) version of each spec in apt's index, in one query."""
        self.update()
        targets = [f"{s.name}:{s.arch}" + (f"={s.version}" if s.version else "") for s in specs]
        proc = self.apt.run("apt-cache", "show", "--no-all-versions", *targets)
        found: dict[tuple[str, str], dict[str, str]] = {}
        for stanza in proc.stdout.split("\n\n"):
            if stanza.strip():
                fields = parse_control(stanza.strip())
                found.setdefault((fields.get("Package", ""), fields.get("Architecture", "")), fields)
        records = []
        for spec in specs:
            fields = found.get((spec.name, spec.arch)) or found.get((spec.name, "all"))
            if fields is None:
                reason = "; ".join(line for line in proc.stderr.splitlines() if line.startswith("E:")) or "not found"
                raise CapsuleError(f"Debian package {spec} is not in the machine's apt archives ({reason})")
            try:
                records.append(DebRecord(spec, fields["Version"], fields["Architecture"], fields["SHA256"].lower(),
                                         int(fields.get("Size", 0)), fields.get("Filename", ""),
                                         fields.get("Depends", "")))
            except KeyError as exc:
                raise CapsuleError(f"apt's index entry for {spec} lacks {exc}") from None
        return records

    def fetch(self, record: DebRecord) -> Path:
        """The verified .deb of *record*, from the lookaside cache or downloaded into it."""
        hit, damaged = self.lookaside.lookup(record.sha256)
        if hit:
            return hit
        try:
            return self._download(record)
        except CapsuleError as exc:
            if damaged:
                raise CapsuleError(f"the cached copy of {record.spec} was damaged ({damaged}) and removed; "
                                   f"downloading it again failed: {exc}") from None
            raise

    def _download(self, record: DebRecord) -> Path:
        self.lookaside.tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=self.lookaside.tmp, prefix="apt-download-"))
        try:
            target = f"{record.spec.name}:{record.arch}={record.version}"
            proc = self.apt.run("apt-get", "download", target, cwd=work)
            debs = list(work.glob("*.deb"))
            if proc.returncode != 0 or len(debs) != 1:
                detail = (proc.stderr or proc.stdout).strip()[-1500:]
                raise CapsuleError(f"apt-get download {target} failed: {detail}")
            actual = sha256_file(debs[0])
            if actual != record.sha256:
                raise CapsuleError(f"{debs[0].name}: checksum mismatch: apt's index says sha256 "
                                   f"{record.sha256}, the download has {actual}")
            name = debs[0].name.replace("%3a", ":")
            return self.lookaside.add(debs[0], record.sha256, name, move=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
