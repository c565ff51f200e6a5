"""The lookaside cache: every fetched source, once, under its sha256.

Layout: ``lookaside/ab/<sha256>/<file name>``. A fetch first looks in the cache, so a
cook with a warm cache never touches the network. Otherwise it tries the URL, then
each mirror in order (``mirror://NAME/path`` expands to every base URL listed for NAME
under ``mirrors:`` in ``repo/config.yaml``); a download is verified against the pinned
sha256 in a temporary file and only then renamed into the cache, so a bad or
interrupted download never poisons it.

A cached file is checked against its sha256 again every time it is used: a damaged
entry (a flipped bit on disk, a file someone edited) is removed with a warning and
fetched again; if that fails, the error says so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from appbuilder.core.errors import ChecksumMismatch, SourceError
from appbuilder.core.fileio import verify_file

TIMEOUT = 60

log = logging.getLogger(__name__)


class Lookaside:
    """Fetched sources by sha256; *warn* hears about damaged entries (default: a log warning)."""

    def __init__(self, root: Path, mirrors: dict[str, list[str]] | None = None,
                 warn: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.mirrors = mirrors or {}
        self.tmp = self.root / "tmp"
        self.warn = warn or log.warning

    def entry_dir(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def cached(self, sha256: str) -> Path | None:
        """The cached file of *sha256*, checked against it now; None when there is none.

        A damaged entry is removed (with a warning), so the caller fetches it again.
        """
        return self.lookup(sha256)[0]

    def lookup(self, sha256: str) -> tuple[Path | None, str | None]:
        """(the verified cached file or None, what was wrong with a damaged entry or None)."""
        sha256 = sha256.lower()
        d = self.entry_dir(sha256)
        if not d.is_dir():
            return None, None
        files = [p for p in d.iterdir() if p.is_file()]
        if len(files) != 1:
            return None, None
        try:
            verify_file(files[0], sha256, what=files[0].name)
        except ChecksumMismatch as exc:
            problem = f"{files[0].name} has sha256 {exc.actual}, not the pinned {sha256}"
        except OSError as exc:
            problem = f"{files[0].name} cannot be read ({exc.strerror or exc})"
        else:
            return files[0], None
        return None, self.discard(sha256, problem)

    def discard(self, sha256: str, problem: str) -> str:
        """Remove the damaged entry of *sha256* (all at once), telling :attr:`warn` why;
        returns *problem*, for error messages."""
        d = self.entry_dir(sha256)
        self.warn(f"lookaside cache entry {d} is damaged: {problem}; removed it, fetching it again")
        self.tmp.mkdir(parents=True, exist_ok=True)
        doomed = Path(tempfile.mkdtemp(dir=self.tmp, prefix="damaged-"))
        try:
            os.rename(d, doomed / "entry")  # readers see the entry whole or not at all
        except FileNotFoundError:  # another cook removed it first
            pass
        shutil.rmtree(doomed, ignore_errors=True)
        return problem

    def expand(self, url: str) -> list[str]:
        """``mirror://NAME/path`` → one URL per configured base; other URLs as they are."""
        if not url.startswith("mirror://"):
            return [url]
        name, _, rest = url[len("mirror://"):].partition("/")
        bases = self.mirrors.get(name)
        if not bases:
            raise SourceError(f"{url}: no mirror list named {name!r} in repo/config.yaml (mirrors:)")
        return [base.rstrip("/") + "/" + rest for base in bases]

    def fetch(self, url: str, sha256: str, mirrors: Sequence[str] = ()) -> Path:
        """A verified local copy of the content *sha256*, downloading it if needed."""
        sha256 = sha256.lower()
        hit, damaged = self.lookup(sha256)
        return hit or fetch_again(_basename(url), damaged, lambda: self._fetch(url, sha256, mirrors))

    def _fetch(self, url: str, sha256: str, mirrors: Sequence[str]) -> Path:
        candidates: list[str] = []
        for u in (url, *mirrors):
            candidates.extend(self.expand(u))
        failures: list[str] = []
        mismatch: ChecksumMismatch | None = None
        for candidate in candidates:
            try:
                return self._download(candidate, sha256)
            except ChecksumMismatch as exc:
                mismatch = exc
                failures.append(f"{candidate}: sha256 {exc.actual}")
            except SourceError as exc:
                failures.append(f"{candidate}: {exc}")
        if mismatch and len(failures) == 1:
            raise mismatch
        detail = "\n  ".join(failures)
        prefix = f"checksum mismatch for {_basename(url)}: expected sha256 {sha256}" if mismatch else (
            f"missing source: cannot fetch {_basename(url)}")
        raise SourceError(f"{prefix}; tried:\n  {detail}")

    def _download(self, url: str, sha256: str) -> Path:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="fetch-")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                try:
                    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                        while chunk := resp.read(1 << 20):
                            h.update(chunk)
                            out.write(chunk)
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    reason = getattr(exc, "reason", exc)
                    raise SourceError(str(reason)) from None
            if h.hexdigest() != sha256:
                raise ChecksumMismatch(url, sha256, h.hexdigest())
            return self.add(Path(tmp_name), sha256, _basename(url), move=True)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def add(self, path: Path, sha256: str, name: str, *, move: bool = False) -> Path:
        """Put a verified file into the cache under *name*; returns its cached path."""
        return self.add_entry({name: path}, sha256, move=move) / name

    def add_entry(self, files: dict[str, Path], sha256: str, *, move: bool = False) -> Path:
        """Put verified files (name → path) into the cache entry keyed by *sha256* in one
        rename, so that readers see all of them or none; returns the entry's directory."""
        final_dir = self.entry_dir(sha256)
        if all((final_dir / name).is_file() for name in files):
            return final_dir
        self.tmp.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.tmp, prefix="entry-"))
        try:
            for name, path in files.items():
                (shutil.move if move else shutil.copyfile)(str(path), str(staging / name))
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final_dir)
            except OSError:  # another cook put it there first
                if not all((final_dir / name).is_file() for name in files):
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final_dir


def fetch_again(what: str, damaged: str | None, fetch: Callable[[], Path]) -> Path:
    """*fetch()*; when it fails after a damaged cached copy was removed, say both."""
    try:
        return fetch()
    except SourceError as exc:
        if damaged:
            raise SourceError(f"the cached copy of {what} was damaged ({damaged}) and removed; "
                              f"fetching it again failed: {exc}") from None
        raise


def _basename(url: str) -> str:
    path = urllib.parse.urlparse(url).path
    return os.path.basename(path.rstrip("/")) or "download"
