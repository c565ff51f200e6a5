"""The image store: every built image under ``GROUP/REVISION/ARCH/``.

``images/`` by default (``APPBUILD_IMAGES`` or ``--output`` move it). Images are
written to a temporary directory inside the store and moved into place file by file
only when complete, so a reader never finds a half-written image under a final name;
an existing image is replaced only when asked to (``--force``). Leftover temporary
directories of interrupted builds are removed by the next build.

Every build into the store is recorded: ``manifest.json`` and ``build.log`` beside the
images (see ``manifest.py``), the manifest written last. :meth:`ImageStore.entries`
lists what the store holds (``appbuild images``), newest version first.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import write_atomic
from appbuilder.store import manifest as mf
from appbuilder.store.manifest import Manifest

TMP_PREFIX = ".tmp-"
LOCK_NAME = ".store.lock"
NETWORK = "network"  # ARCH/network: the network-booting images of a version (appbuild group-NAME --boot network)


def revision_key(revision: str) -> tuple:
    """Sort key of ``upstream-source-build`` revisions: numbers compare as numbers."""
    parts = revision.rsplit("-", 2)
    upstream = parts[0]
    natural = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", upstream) if p)
    counts = tuple(int(p) if p.isdigit() else 0 for p in parts[1:])
    return (natural, counts)


@dataclass
class StoredImage:
    """One ``GROUP/REVISION/ARCH`` directory of the store and its manifest (None: unrecorded)."""

    group: str
    revision: str
    arch: str
    directory: Path
    manifest: Manifest | None


class ImageStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def directory(self, group: str, revision: str, arch: str, *, network: bool = False) -> Path:
        """Where the images of one version for *arch* go (*network*: the network-booting ones)."""
        return self.root / group / revision / arch / (NETWORK if network else "")

    # ------------------------------------------------------------ reading

    def entries(self, group: str | None = None) -> list[StoredImage]:
        """Every recorded build (of *group*), newest version first, arches in name order."""
        out = []
        if not self.root.is_dir():
            return out
        groups = [self.root / group] if group else sorted(self.root.iterdir())
        for gdir in groups:
            if not gdir.is_dir() or gdir.name.startswith("."):
                continue
            for rdir in sorted((d for d in gdir.iterdir() if d.is_dir() and not d.name.startswith(".")),
                               key=lambda d: revision_key(d.name), reverse=True):
                for adir in sorted(d for d in rdir.iterdir() if d.is_dir() and not d.name.startswith(".")):
                    # the network-booting images of a version sit in ARCH/network, with their own record
                    network = mf.load(adir / NETWORK) if (adir / NETWORK).is_dir() else None
                    manifest = mf.load(adir)
                    if manifest is not None or network is None:
                        out.append(StoredImage(gdir.name, rdir.name, adir.name, adir, manifest))
                    if network is not None:
                        out.append(StoredImage(gdir.name, rdir.name, f"{adir.name}/{NETWORK}", adir / NETWORK, network))
        return out

    def find(self, group: str, revision: str, arch: str | None = None) -> list[StoredImage]:
        """The recorded builds of one group version (one per arch), or an error naming what there is."""
        revision = revision.rsplit("/", 1)[-1]  # a full version label/revision names its revision
        rdir = self.root / group / revision
        listed = rdir.is_dir() and not revision.startswith(".")
        adirs = sorted(d for d in rdir.iterdir() if d.is_dir() and not d.name.startswith(".")) if listed else []
        found = [StoredImage(group, revision, d.name, d, m) for d in adirs
                 if (arch is None or d.name == arch) and (m := mf.load(d)) is not None]
        if not found:
            known = sorted({e.revision for e in self.entries(group) if e.manifest}, key=revision_key, reverse=True)
            where = f" for {arch}" if arch else ""
            hint = f"; recorded versions: {', '.join(known)}" if known else f"; the store at {self.root} has none"
            raise AppbuildError(f"no recorded image {group}={revision}{where}{hint}")
        return found

    def manifest(self, group: str, revision: str, arch: str) -> Manifest | None:
        return mf.load(self.directory(group, revision, arch))

    # ------------------------------------------------------------ recording

    @contextmanager
    def lock(self):
        """Serialise recording into the store (two builds of one version at once)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_NAME, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def record(self, directory: Path, manifest: Manifest, log_lines: list[str],
               documents: Callable[[Manifest], dict[str, bytes]] | None = None) -> Manifest:
        """Append this build's log to ``build.log`` and merge its manifest into ``manifest.json``
        (written last, atomically); returns the merged manifest. *documents* makes files that
        describe the merged manifest's images (the provenance statement): each is written
        atomically and recorded in its files before the manifest is."""
        with self.lock():
            existing = mf.load(directory)
            merged = existing.merge(manifest) if existing and existing.trove == manifest.trove else manifest
            for name, data in (documents(merged) if documents else {}).items():
                write_atomic(directory / name, data)
                merged.files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            log_path = directory / mf.BUILD_LOG
            old_log = log_path.read_bytes() if log_path.exists() and merged is not manifest else b""
            write_atomic(log_path, old_log + "".join(line + "\n" for line in log_lines).encode())
            mf.save(directory, merged)
            return merged

    def existing(self, directory: Path, names: list[str]) -> list[Path]:
        return [directory / n for n in names if (directory / n).exists()]

    def check_free(self, directory: Path, names: list[str], *, force: bool) -> None:
        """Refuse (before any work) to overwrite images unless *force*."""
        taken = self.existing(directory, names)
        if taken and not force:
            listed = ", ".join(p.name for p in taken[:4]) + (" ..." if len(taken) > 4 else "")
            raise AppbuildError(f"{directory} already holds {listed}; use --force to replace, or --output elsewhere")

    def scratch(self) -> Path:
        """A temporary directory on the store's file system (so results move by rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep()
        return Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.root))

    def sweep(self, older_than: float = 6 * 3600) -> None:
        """Remove temporary directories of builds that were killed."""
        cutoff = time.time() - older_than
        for leftover in self.root.glob(f"{TMP_PREFIX}*"):
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)

    def commit(self, files: list[Path], directory: Path, *, force: bool) -> list[Path]:
        """Move finished *files* into *directory*; each appears complete or not at all."""
        directory.mkdir(parents=True, exist_ok=True)
        self.check_free(directory, [f.name for f in files], force=force)
        placed = []
        for f in files:
            final = directory / f.name
            os.replace(f, final)
            placed.append(final)
        return placed
