"""Debian source packages through the machine's own apt, without touching its config.

appbuild reads the machine's apt sources (``/etc/apt/sources.list`` and
``sources.list.d/*.list`` / ``*.sources``), turns every enabled ``deb`` entry into a
``deb-src`` entry, and runs ``apt-get`` with a private state directory under the cache
(``Dir::Etc::SourceList``, ``Dir::State``, ``Dir::Cache``), so no mirror host name is
ever written into the project and the system's apt is left as it was.

A fetched source package is verified twice: the ``.dsc`` against the sha256 the recipe
pins, and every file the ``.dsc`` lists against the checksums in it. The whole set is
then kept in the lookaside cache under the ``.dsc``'s sha256.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appbuilder.build.lookaside import Lookaside
from appbuilder.errors import ChecksumMismatch, SourceError
from appbuilder.repository.store import sha256_file

APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class AptEntry:
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, current, key = [], {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _one_line_entries(text: str) -> list[AptEntry]:
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        signed_by = None
        m = re.match(r"deb\s+\[([^\]]*)\]\s+(.*)", line)
        rest = line[4:]
        if m:
            opts, rest = m.groups()
            sm = re.search(r"signed-by=(\S+)", opts)
            signed_by = sm.group(1) if sm else None
        fields = rest.split()
        if len(fields) >= 3:
            entries.append(AptEntry((fields[0],), (fields[1],), tuple(fields[2:]), signed_by))
    return entries


def system_entries(apt_dir: Path = APT_DIR) -> list[AptEntry]:
    """The enabled binary (``deb``) entries of the machine's apt sources."""
    entries: list[AptEntry] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        entries += _one_line_entries(main.read_text())
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for f in sorted(parts.iterdir()):
            if f.suffix == ".list":
                entries += _one_line_entries(f.read_text())
            elif f.suffix == ".sources":
                for st in _deb822_stanzas(f.read_text()):
                    if st.get("enabled", "yes").lower() == "no" or "deb" not in st.get("types", "").split():
                        continue
                    entries.append(AptEntry(
                        tuple(st.get("uris", "").split()),
                        tuple(st.get("suites", "").split()),
                        tuple(st.get("components", "").split()),
                        st.get("signed-by") or None,
                    ))
    return [e for e in entries if e.uris and e.suites]


def deb_src_sources(entries: list[AptEntry]) -> str:
    """deb822 text with one ``deb-src`` stanza per binary entry."""
    stanzas = []
    for e in entries:
        lines = [
            "Types: deb-src",
            f"URIs: {' '.join(e.uris)}",
            f"Suites: {' '.join(e.suites)}",
            f"Components: {' '.join(e.components)}",
        ]
        if e.signed_by:
            lines.append(f"Signed-By: {e.signed_by}")
        stanzas.append("\n".join(lines))
    return "\n\n".join(stanzas) + "\n"


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
        self.apt_dir = apt_dir

    def _apt_options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::SourceList={self.state / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={self.state / 'sources.list.d'}",
            "-o", f"Dir::State={self.state / 'state'}",
            "-o", f"Dir::Cache={self.state / 'cache'}",
            "-o", "Dir::State::status=/var/lib/dpkg/status",
            "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::Retries=2",
            "-q",
        ]

    def _prepare(self) -> None:
        entries = system_entries(self.apt_dir)
        if not entries:
            raise SourceError(f"no enabled 'deb' entries in {self.apt_dir}/sources.list*: cannot derive deb-src")
        (self.state / "sources.list.d").mkdir(parents=True, exist_ok=True)
        (self.state / "state" / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self.state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (self.state / "sources.list").write_text("")
        (self.state / "sources.list.d" / "appbuild-src.sources").write_text(deb_src_sources(entries))

    def update(self) -> None:
        """Refresh the source indexes (a failed index is a warning if others worked)."""
        self._prepare()
        proc = subprocess.run(["apt-get", *self._apt_options(), "update"], capture_output=True, text=True)
        if proc.returncode != 0 and not any((self.state / "state" / "lists").glob("*Sources*")):
            raise SourceError(f"apt-get update for deb-src failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")

    def fetch(self, package: str, version: str, sha256: str) -> Path:
        """The verified .dsc of ``package=version``, with its files beside it."""
        cached = sorted(self.lookaside.entry_dir(sha256.lower()).glob("*.dsc"))
        if cached:
            return cached[0]
        self.update()
        self.lookaside.tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=self.lookaside.tmp, prefix="debsrc-"))
        try:
            proc = subprocess.run(
                ["apt-get", *self._apt_options(), "source", "--download-only", f"{package}={version}"],
                cwd=work, capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise SourceError(
                    f"missing source: Debian source package {package}={version} cannot be fetched "
                    f"through apt:\n{(proc.stderr or proc.stdout).strip()[-1500:]}"
                )
            dscs = list(work.glob("*.dsc"))
            if len(dscs) != 1:
                raise SourceError(f"apt-get source {package}={version} gave {len(dscs)} .dsc files")
            dsc = dscs[0]
            actual = sha256_file(dsc)
            if actual != sha256.lower():
                raise ChecksumMismatch(dsc.name, sha256.lower(), actual)
            listed = parse_dsc_files(dsc.read_text(errors="replace"))
            for name, digest in listed.items():
                got = sha256_file(work / name)
                if got != digest:
                    raise ChecksumMismatch(f"{name} (listed in {dsc.name})", digest, got)
            return self._keep(work, dsc, listed, sha256.lower())
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _keep(self, work: Path, dsc: Path, listed: dict[str, str], sha256: str) -> Path:
        final_dir = self.lookaside.entry_dir(sha256)
        staging = Path(tempfile.mkdtemp(dir=self.lookaside.tmp, prefix="entry-"))
        for name in [dsc.name, *listed]:
            shutil.move(str(work / name), str(staging / name))
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(final_dir)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return final_dir / dsc.name
