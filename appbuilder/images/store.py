"""The image store: every built image under ``GROUP/REVISION/ARCH/``.

``images/`` by default (``APPBUILD_IMAGES`` or ``--output`` move it). Images are
written to a temporary directory inside the store and moved into place file by file
only when complete, so a reader never finds a half-written image under a final name;
an existing image is replaced only when asked to (``--force``). Leftover temporary
directories of interrupted builds are removed by the next build.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from appbuilder.errors import AppbuildError

TMP_PREFIX = ".tmp-"


class ImageStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def directory(self, group: str, revision: str, arch: str) -> Path:
        return self.root / group / revision / arch

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
