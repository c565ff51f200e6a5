"""Debian source packages through the machine's own apt, without touching its config.

appbuild reads the machine's apt sources (``/etc/apt/sources.list`` and
``sources.list.d/*.list`` / ``*.sources``), turns every enabled ``deb`` entry into a
``deb-src`` entry, and runs ``apt-get`` with a private state directory under the cache
(``Dir::Etc::SourceList``, ``Dir::State``, ``Dir::Cache``; see
:mod:`appbuilder.upstream.apt`), so no mirror host name is ever written into the project
and the system's apt is left as it was.

A fetched source package is verified twice: the ``.dsc`` against the sha256 the recipe
pins, and every file the ``.dsc`` lists against the checksums in it. The whole set is
then kept in the lookaside cache under the ``.dsc``'s sha256, and verified the same way
again every time it is used: a damaged entry is removed (with a warning) and fetched
again.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from appbuilder.core.errors import SourceError
from appbuilder.core.fileio import verify_file
from appbuilder.upstream.apt import (
    APT_DIR,
    AptEntry,
    PrivateApt,
    deb_src_sources,
    system_entries,
)
from appbuilder.upstream.lookaside import Lookaside, fetch_again

__all__ = ["APT_DIR", "AptEntry", "DebianSources", "deb_src_sources", "parse_dsc_files", "system_entries",
           "verify_source_package"]


def parse_dsc_files(dsc_text: str) -> dict[str, str]:
    """File name → sha256 from a .dsc's ``Checksums-Sha256`` field."""
    files: dict[str, str] = {}
    in_field = False
    for line in dsc_text.splitlines():
        if line.startswith("Checksums-Sha256:"):
            in_field = True
            continue
        if in_field:
            if not line.startswith(" "):
                break
            parts = line.split()
            if len(parts) == 3:
                files[parts[2]] = parts[0]
    return files


def verify_source_package(directory: Path, dsc: Path, sha256: str) -> list[str]:
    """Check *dsc* against the pinned *sha256* and every file it lists (beside it in
    *directory*) against its checksums; returns the listed names.

    Raises :class:`ChecksumMismatch`, or :class:`SourceError` for a missing file.
    """
    verify_file(dsc, sha256, what=dsc.name)
    listed = parse_dsc_files(dsc.read_text(errors="replace"))
    for name, digest in listed.items():
        what = f"{name} (listed in {dsc.name})"
        if not (directory / name).is_file():
            raise SourceError(f"{what} is missing")
        verify_file(directory / name, digest, what=what)
    return list(listed)


class DebianSources:
    """Fetches Debian source packages into the lookaside cache."""

    def __init__(self, cache: Path, lookaside: Lookaside, apt_dir: Path = APT_DIR):
        self.state = Path(cache) / "apt-src"
        self.lookaside = lookaside
        self.apt = PrivateApt(self.state, kind="deb-src", apt_dir=apt_dir)

    def update(self) -> None:
        """Refresh the source indexes (a failed index is a warning if others worked)."""
        try:
            self.apt.update(index_glob="*Sources*")
        except SourceError as exc:
            raise SourceError(f"apt-get update for deb-src failed: {exc}") from None

    def fetch(self, package: str, version: str, sha256: str) -> Path:
        """The verified .dsc of ``package=version``, with its files beside it."""
        sha256 = sha256.lower()
        cached, damaged = self._cached(sha256)
        return cached or fetch_again(f"Debian source package {package}={version}", damaged,
                                     lambda: self._download(package, version, sha256))

    def _cached(self, sha256: str) -> tuple[Path | None, str | None]:
        """(the verified cached .dsc or None, what was wrong with a damaged entry or None)."""
        entry = self.lookaside.entry_dir(sha256)
        dscs = sorted(entry.glob("*.dsc"))
        if not dscs:
            return None, None
        try:
            verify_source_package(entry, dscs[0], sha256)
        except SourceError as exc:
            return None, self.lookaside.discard(sha256, str(exc))
        except OSError as exc:
            return None, self.lookaside.discard(sha256, f"{dscs[0].name} cannot be read ({exc.strerror or exc})")
        return dscs[0], None

    def _download(self, package: str, version: str, sha256: str) -> Path:
        self.update()
        self.lookaside.tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=self.lookaside.tmp, prefix="debsrc-"))
        try:
            proc = self.apt.run("apt-get", "source", "--download-only", f"{package}={version}", cwd=work)
            if proc.returncode != 0:
                raise SourceError(
                    f"missing source: Debian source package {package}={version} cannot be fetched "
                    f"through apt:\n{(proc.stderr or proc.stdout).strip()[-1500:]}"
                )
            dscs = list(work.glob("*.dsc"))
            if len(dscs) != 1:
                raise SourceError(f"apt-get source {package}={version} gave {len(dscs)} .dsc files")
            dsc = dscs[0]
            listed = verify_source_package(work, dsc, sha256)
            files = {name: work / name for name in [dsc.name, *listed]}
            return self.lookaside.add_entry(files, sha256, move=True) / dsc.name
        finally:
            shutil.rmtree(work, ignore_errors=True)
