"""The manifest of one image build: ``GROUP/REVISION/ARCH/manifest.json`` in the image store.

Written beside the images (together with ``build.log``) as the last step of a build,
atomically (a temporary file, fsync, rename), so a directory holding a manifest holds
every file it names. It records what the image is and how it was made::

    group, trove, version, revision, arch   what was built (the group trove's identity)
    members                                  every pin of the group trove (name=version[flavor])
    group_info                               the group trove's recorded settings (kernel modules,
                                             users, hostname, source_date_epoch, input hash ...):
                                             with the pins, what rebuilds the version when the
                                             repository no longer has its group trove
    named                                    what the group recipe asked for by name
    formats                                  format -> the files it consists of
    files                                    file name -> {sha256, size}
    builder                                  appbuild's version (and git commit, if known)
    kernel, installed_size, disk_size, source_date_epoch
    devices                                  kernel modules kept: "initramfs" (disk drivers), "root"
                                             (/etc/modules: network drivers, the group's), "missing"
                                             ({target, module} the device table asks for, the kernel lacks)
    built, updated                           UTC times of the first and the latest build
    builds                                   one entry per build that wrote into the directory
    build_log                                "build.log": the progress lines of those builds
    provenance                               NAME.provenance.json: the in-toto statement of the build
                                             (SLSA provenance, see ``provenance.py``); in files too
    sboms                                    NAME.spdx.json, NAME.cdx.json: the SBOMs the image carries
                                             (``assemble/sbom.py``); in files too

A later build of the same group version into the same directory (more formats, or a
``--force`` rebuild) merges into the manifest; a rebuilt file must have the recorded
sha256 (:func:`mismatches`), which is how "rebuilding a version gives the same bytes"
is checked rather than assumed. Release state (published, current, withdrawn) is not
kept here: it belongs to each download server's index (see ``release_index.py``).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appbuilder import __version__
from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import sha256_file, write_atomic

MANIFEST = "manifest.json"
BUILD_LOG = "build.log"
SCHEMA = 1


def utc_now() -> str:
    """The current time as ``2024-05-01T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def builder_identity() -> dict:
    """appbuild's version, plus the git commit of its source tree when it runs from a checkout
    (``__version__`` alone does not change with every commit that changes image bytes)."""
    identity = {"name": "appbuild", "version": __version__}
    source = Path(__file__).resolve().parent.parent.parent
    if (source / ".git").exists():
        try:
            proc = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                  text=True, timeout=10)
            if proc.returncode == 0:
                identity["commit"] = proc.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return identity


@dataclass
class Manifest:
    group: str  # group-cernvm
    trove: str  # group-cernvm=cernvm@cvm:2/1.0-1-1[is: x86_64]
    version: str  # cernvm@cvm:2/1.0-1-1
    arch: str
    members: list[str] = field(default_factory=list)
    group_info: dict = field(default_factory=dict)
    named: list[str] = field(default_factory=list)
    formats: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)  # name -> {"sha256", "size"}
    builder: dict = field(default_factory=dict)
    kernel: str = ""
    installed_size: int = 0
    disk_size: int = 0
    source_date_epoch: int = 0
    devices: dict = field(default_factory=dict)
    built: str = ""
    updated: str = ""
    builds: list[dict] = field(default_factory=list)
    build_log: str = BUILD_LOG
    provenance: str | None = None  # the in-toto statement beside the images (provenance.py), in files too
    sboms: list[str] = field(default_factory=list)  # NAME.spdx.json, NAME.cdx.json beside the images, in files too
    schema: int = SCHEMA

    @property
    def revision(self) -> str:
        return self.version.rsplit("/", 1)[-1]

    @property
    def size(self) -> int:
        return sum(f["size"] for f in self.files.values())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["revision"] = self.revision
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "manifest") -> "Manifest":
        try:
            if data.get("schema") != SCHEMA:
                raise AppbuildError(f"{where}: unknown manifest schema {data.get('schema')!r} (expected {SCHEMA})")
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            manifest = cls(**known)
            for name, entry in manifest.files.items():
                if not (isinstance(entry.get("sha256"), str) and isinstance(entry.get("size"), int)):
                    raise AppbuildError(f"{where}: file {name} lacks sha256 or size")
            return manifest
        except (TypeError, AttributeError) as exc:
            raise AppbuildError(f"{where}: not a valid image manifest ({exc})") from None

    def package_pins(self) -> dict[str, str]:
        """package name -> revision, of every package (not component) member."""
        pins = {}
        for member in self.members:
            name, _, rest = member.partition("=")
            if ":" in name:
                continue
            pins[name] = rest.split("[", 1)[0].rsplit("/", 1)[-1]
        return pins

    def merge(self, newer: "Manifest") -> "Manifest":
        """This manifest with the formats and files of a later build of the same version added."""
        if newer.trove != self.trove:
            raise AppbuildError(f"cannot merge the manifest of {newer.trove} into that of {self.trove}")
        merged = Manifest(**{**asdict(newer), "built": self.built or newer.built})
        merged.formats = {**self.formats, **newer.formats}
        merged.files = {**self.files, **newer.files}
        merged.builds = [*self.builds, *newer.builds]
        return merged


def load(directory: Path) -> Manifest | None:
    """The manifest in *directory*, or None when it has none."""
    path = Path(directory) / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AppbuildError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AppbuildError(f"{path}: expected a JSON object")
    return Manifest.from_dict(data, str(path))


def save(directory: Path, manifest: Manifest) -> Path:
    path = Path(directory) / MANIFEST
    write_atomic(path, (json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n").encode())
    return path


def file_records(paths: list[Path]) -> dict[str, dict]:
    return {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size} for p in paths}


def mismatches(recorded: Manifest, files: dict[str, dict]) -> list[str]:
    """Files of a new build whose bytes differ from what *recorded* says that version's are."""
    out = []
    for name, entry in sorted(files.items()):
        old = recorded.files.get(name)
        if old and old["sha256"] != entry["sha256"]:
            out.append(f"{name}: recorded sha256 {old['sha256']} ({old['size']} bytes), "
                       f"now {entry['sha256']} ({entry['size']} bytes)")
    return out


@dataclass
class PackageChange:
    name: str
    old: str | None  # revision, None when added
    new: str | None  # revision, None when removed

    @property
    def kind(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "changed"


def diff(old: Manifest, new: Manifest) -> tuple[list[PackageChange], int]:
    """Packages that changed between two recorded images, and how many stayed the same."""
    a, b = old.package_pins(), new.package_pins()
    changes = [PackageChange(n, a.get(n), b.get(n)) for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
    return changes, len(set(a) & set(b)) - sum(1 for c in changes if c.kind == "changed")
