"""Debian source packages through the machine's own apt, without touching its config.

appbuild reads the machine's apt sources (``/etc/apt/sources.list`` and
``sources.list.d/*.list`` / ``*.sources``), turns every enabled ``deb`` entry into a
``deb-src`` entry, and runs ``apt-get`` with a private state directory under the cache
(``Dir::Etc::SourceList``, ``Dir::State``, ``Dir::Cache``; see
:mod:`appbuilder.upstream.apt`), so no mirror host name is ever written into the project
and the system's apt is left as it was.

A fetched source package is verified twice: the ``.dsc`` against the sha256 the recipe
pins, and every file the ``.dsc`` lists against the checksums in it. The whole set is
then kept in the lookaside cache under the ``.dsc``'s sha256.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from appbuilder.build.lookaside import Lookaside, verify_file
from appbuilder.errors import SourceError
from appbuilder.upstream.apt import APT_DIR, AptEntry, PrivateApt, deb_src_sources, system_entries

__all__ = ["APT_DIR", "AptEntry", "DebianSources", "deb_src_sources", "parse_dsc_files", "system_entries"]


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
        cached = sorted(self.lookaside.entry_dir(sha256.lower()).glob("*.dsc"))
        if cached:
            return cached[0]
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
            verify_file(dsc, sha256, what=dsc.name)
            listed = parse_dsc_files(dsc.read_text(errors="replace"))
            for name, digest in listed.items():
                verify_file(work / name, digest, what=f"{name} (listed in {dsc.name})")
            files = {name: work / name for name in [dsc.name, *listed]}
            return self.lookaside.add_entry(files, sha256.lower(), move=True) / dsc.name
        finally:
            shutil.rmtree(work, ignore_errors=True)
