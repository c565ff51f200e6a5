"""The machine's apt, run privately: same archives, none of the machine's apt state.

appbuild reads the machine's apt sources (``/etc/apt/sources.list`` and
``sources.list.d/*.list`` / ``*.sources``), writes them (as ``deb`` or ``deb-src``
entries) into a state directory of its own under the cache, and runs ``apt-get`` and
``apt-cache`` with ``Dir::Etc::SourceList``, ``Dir::State`` and ``Dir::Cache`` pointing
there. So:

* no mirror host name is ever written into the project (it comes from the machine);
* the system's apt lists, caches and dpkg configuration are left as they were;
* foreign architectures (i386 on an amd64 machine) are read through
  ``APT::Architectures`` without ``dpkg --add-architecture``.

Index updates are forgiving: a mirror caught mid-sync (``File has unexpected size ...
Mirror sync in progress?``, common for the security suite's i386 index) makes
``apt-get update`` exit 100 although every other index is fine. That is reported as a
warning; only a package that then cannot be found is an error.
"""

from __future__ import annotations

import fcntl
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator, Sequence

from appbuilder.core.errors import SourceError

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


def sources_text(entries: list[AptEntry], kind: str = "deb") -> str:
    """deb822 text with one stanza of type *kind* (``deb`` or ``deb-src``) per entry."""
    stanzas = []
    for e in entries:
        lines = [
            f"Types: {kind}",
            f"URIs: {' '.join(e.uris)}",
            f"Suites: {' '.join(e.suites)}",
            f"Components: {' '.join(e.components)}",
        ]
        if e.signed_by:  # an inline key spans lines: continuation lines start with a space
            lines.append("Signed-By: " + e.signed_by.replace("\n", "\n "))
        stanzas.append("\n".join(lines))
    return "\n\n".join(stanzas) + "\n"


def deb_src_sources(entries: list[AptEntry]) -> str:
    """deb822 text with one ``deb-src`` stanza per binary entry."""
    return sources_text(entries, "deb-src")


class PrivateApt:
    """apt-get and apt-cache over the machine's archives with a state directory of our own.

    *kind* is ``deb`` (binary packages) or ``deb-src`` (source packages).
    *architectures* (Debian names, e.g. ``("amd64", "i386")``) sets
    ``APT::Architectures``; None keeps the machine's. *status* is the dpkg status file
    apt reads (the machine's by default; an empty private one when given ``"private"``).
    *contents* makes ``apt-get update`` fetch the archives' ``Contents-ARCH`` and
    ``Contents-all`` too (apt-file's index targets, without apt-file): every user of one
    state directory must agree on it, since an update removes lists it was not asked for.
    """

    def __init__(self, state: Path, *, kind: str = "deb", architectures: Sequence[str] | None = None,
                 status: str = "system", apt_dir: Path = APT_DIR, contents: bool = False):
        if kind not in ("deb", "deb-src"):
            raise ValueError(f"bad apt source kind {kind!r}")
        self.state = Path(state)
        self.kind = kind
        self.architectures = tuple(architectures) if architectures else None
        self.status = status
        self.apt_dir = apt_dir
        self.contents = contents

    @property
    def lists(self) -> Path:
        return self.state / "state" / "lists"

    def options(self, architectures: Sequence[str] | None = None) -> list[str]:
        status = self.state / "status" if self.status == "private" else Path("/var/lib/dpkg/status")
        opts = [
            "-o", f"Dir::Etc::SourceList={self.state / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={self.state / 'sources.list.d'}",
            "-o", f"Dir::State={self.state / 'state'}",
            "-o", f"Dir::Cache={self.state / 'cache'}",
            # apt's binary cache of the lists, kept beside them (a machine may have it off, as
            # container images do): each later apt run starts in a fraction of a second
            "-o", "Dir::Cache::pkgcache=pkgcache.bin",
            "-o", "Dir::Cache::srcpkgcache=srcpkgcache.bin",
            "-o", f"Dir::State::status={status}",
            "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::Retries=2",
            "-o", "Acquire::Languages=none",
        ]
        architectures = architectures or self.architectures
        if architectures:
            opts += ["-o", f"APT::Architecture={architectures[0]}"]
            for arch in architectures:
                opts += ["-o", f"APT::Architectures::={arch}"]
        if self.contents and self.kind == "deb":
            target = "Acquire::IndexTargets::deb::Contents-deb::"
            opts += ["-o", target + "MetaKey=$(COMPONENT)/Contents-$(ARCHITECTURE)",
                     "-o", target + "ShortDescription=Contents-$(ARCHITECTURE)",
                     "-o", target + "Description=$(RELEASE)/$(COMPONENT) $(ARCHITECTURE) Contents (deb)"]
        return opts + ["-q"]

    def prepare(self) -> None:
        """Write the private sources and directories (from the machine's sources, every time)."""
        entries = system_entries(self.apt_dir)
        if not entries:
            raise SourceError(f"no enabled 'deb' entries in {self.apt_dir}/sources.list*: cannot use apt")
        (self.state / "sources.list.d").mkdir(parents=True, exist_ok=True)
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (self.state / "sources.list").write_text("")
        if self.status == "private" and not (self.state / "status").exists():
            (self.state / "status").write_text("")
        name = "appbuild-src.sources" if self.kind == "deb-src" else "appbuild.sources"
        (self.state / "sources.list.d" / name).write_text(sources_text(entries, self.kind))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the private state's lock: apt's own lock fails rather than waits, and two cooks
        (threads or processes) may need the same state at once."""
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.state / ".appbuild.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def update(self, *, index_glob: str, warn: Callable[[str], None] | None = None) -> None:
        """Refresh the indexes; a failed index is a warning while some *index_glob* lists exist."""
        with self.locked():
            self.prepare()
            proc = self._run("apt-get", "update")
            if proc.returncode != 0 and self.architectures and len(self.architectures) > 1:
                # apt updates a suite all or nothing: a stale index of one architecture (the
                # security suite's i386, mid-sync) would drop the suite for every one; each
                # architecture on its own keeps the suite for those whose indexes are sound
                for arch in self.architectures:
                    subprocess.run(["apt-get", *self.options([arch]), "-o", "APT::Get::List-Cleanup=false",
                                    "update"], capture_output=True, text=True)
        if proc.returncode == 0:
            return
        detail = _apt_errors(proc.stdout + proc.stderr)
        if not any(self.lists.glob(index_glob)):
            raise SourceError(f"apt-get update failed:\n{detail or proc.stderr[-2000:]}")
        if warn:
            warn(f"apt-get update reported errors; using the indexes it has ({detail})")

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """Run ``apt-get`` or ``apt-cache`` with the private options (one at a time)."""
        with self.locked():
            return self._run(tool, *args, cwd=cwd)

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([tool, *self.options(), *args], cwd=cwd, capture_output=True, text=True)

    @contextmanager
    def started(self, tool: str, *args: str, cwd: Path | None = None) -> Iterator["RunningApt"]:
        """``apt-get``/``apt-cache`` started with the private options, the lock held while it
        runs, for a caller that watches what it does meanwhile; leaving the block early stops it."""
        with self.locked(), tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            running = RunningApt(subprocess.Popen([tool, *self.options(), *args], cwd=cwd, stdout=out, stderr=err),
                                 out, err)
            try:
                yield running
            finally:
                if running.proc.poll() is None:
                    running.proc.kill()
                running.proc.wait()


@dataclass
class RunningApt:
    """An apt program under way (:meth:`PrivateApt.started`), its output kept in files."""

    proc: subprocess.Popen
    out: IO[bytes]
    err: IO[bytes]

    def finished(self) -> bool:
        return self.proc.poll() is not None

    def output(self) -> tuple[int, str, str]:
        """Wait for it; its exit status, standard output and standard error."""
        status = self.proc.wait()
        texts = []
        for f in (self.out, self.err):
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
        return status, texts[0], texts[1]


def _apt_errors(output: str) -> str:
    """The ``E:``/``Err:`` lines of apt output, without repeating host details."""
    lines = [line.strip() for line in output.splitlines() if line.startswith(("E:", "Err:", "W:"))]
    return "; ".join(lines)[-1500:]
