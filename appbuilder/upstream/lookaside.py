"""The lookaside cache: every fetched source, once, under its sha256.

Layout: ``lookaside/ab/<sha256>/<file name>``. A fetch first looks in the cache, so a
cook with a warm cache never touches the network. Otherwise it tries the URL, then
each mirror in order (``mirror://NAME/path`` expands to every base URL listed for NAME
under ``mirrors:`` in ``repo/config.yaml``, or built in: see ``appbuild settings``); a
download is verified against the pinned sha256 in a temporary file and only then
renamed into the cache, so a bad or interrupted download never poisons it.

A URL that ends in ``/`` names a directory, as in conary: with a *guess* (the file's
stem, ``NAME-VERSION``) the fetch tries the stem with each of :data:`GUESS_SUFFIXES`
in that order, for each base URL in turn, and keeps the first whose content has the
pinned sha256 (an HTML page, what many servers answer for a missing file, is skipped).

Detached OpenPGP signatures (``.sig``, ``.sign``, ``.asc`` beside a source, looked for
in that order, as conary did) are not pinned by a sha256: :meth:`Lookaside.signature`
keeps one under ``lookaside/sig/<sha256 of the signed file>/`` once it has been checked,
and checks it again on every use.

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
# what a directory URL is completed with, in order: conary's list, then the newer tar.xz
GUESS_SUFFIXES = ("tar.bz2", "tar.gz", "tbz2", "tgz", "zip", "tar.xz", "txz")
# a detached signature's names beside the signed file, in conary's order
SIGNATURE_SUFFIXES = ("sig", "sign", "asc")
MAX_SIGNATURE = 1 << 20  # bytes: a detached signature is small; anything larger is not one

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

    def fetch(self, url: str, sha256: str, mirrors: Sequence[str] = (), *, guess: str | None = None) -> Path:
        """A verified local copy of the content *sha256*, downloading it if needed; URLs
        ending in ``/`` are completed with *guess* and each of :data:`GUESS_SUFFIXES`."""
        sha256 = sha256.lower()
        hit, damaged = self.lookup(sha256)
        what = f"{guess}.{{{','.join(GUESS_SUFFIXES)}}}" if guess else _basename(url)
        return hit or fetch_again(what, damaged, lambda: self._fetch(url, sha256, mirrors, guess))

    def candidates(self, urls: Sequence[str], guess: str | None = None) -> list[str]:
        """Every URL to try, in order: mirrors expanded, directory URLs completed with
        *guess* (for each base URL, each suffix)."""
        out: list[str] = []
        for u in urls:
            for e in self.expand(u):
                if guess and e.endswith("/"):
                    out.extend(f"{e}{guess}.{suffix}" for suffix in GUESS_SUFFIXES)
                else:
                    out.append(e)
        return out

    def _fetch(self, url: str, sha256: str, mirrors: Sequence[str], guess: str | None = None) -> Path:
        candidates = self.candidates((url, *mirrors), guess)
        failures: list[str] = []
        mismatch: ChecksumMismatch | None = None
        for candidate in candidates:
            try:
                return self._download(candidate, sha256, skip_html=bool(guess))
            except ChecksumMismatch as exc:
                mismatch = exc
                failures.append(f"{candidate}: sha256 {exc.actual}")
            except SourceError as exc:
                failures.append(f"{candidate}: {exc}")
        if mismatch and len(failures) == 1:
            raise mismatch
        detail = "\n  ".join(failures)
        what = f"{guess}.*" if guess else _basename(url)
        prefix = f"checksum mismatch for {what}: expected sha256 {sha256}" if mismatch else (
            f"missing source: cannot fetch {what}")
        raise SourceError(f"{prefix}; tried:\n  {detail}")

    def _download(self, url: str, sha256: str, *, skip_html: bool = False) -> Path:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="fetch-")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                try:
                    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                        if skip_html and "text/html" in (resp.headers.get("Content-Type") or ""):
                            raise SourceError("an HTML page, not the file")
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

    def add(self, path: Path, sha256: str, name: str, *, move: bool = False, link: bool = False) -> Path:
        """Put a verified file into the cache under *name*; returns its cached path."""
        return self.add_entry({name: path}, sha256, move=move, link=link) / name

    def add_entry(self, files: dict[str, Path], sha256: str, *, move: bool = False, link: bool = False) -> Path:
        """Put verified files (name → path) into the cache entry keyed by *sha256* in one
        rename, so that readers see all of them or none; returns the entry's directory.
        The files are copied, moved (*move*) or hard-linked (*link*: on the same file system)."""
        final_dir = self.entry_dir(sha256)
        if all((final_dir / name).is_file() for name in files):
            return final_dir
        self.tmp.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.tmp, prefix="entry-"))
        try:
            for name, path in files.items():
                (os.link if link else shutil.move if move else shutil.copyfile)(str(path), str(staging / name))
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final_dir)
            except OSError:  # another cook put it there first
                if not all((final_dir / name).is_file() for name in files):
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final_dir


    def signature(self, signed_sha256: str, urls: Sequence[str], check: Callable[[Path], None]) -> Path | None:
        """A detached signature of the file *signed_sha256*: the one kept from an earlier
        cook, or the first of *urls* (``mirror://`` expanded) that the server has; *check*
        (which raises when the signature does not hold) runs on it before it is kept, and
        again on a kept one. None when no URL has a signature."""
        keep = self.root / "sig" / signed_sha256.lower()
        if keep.is_dir():
            for kept in sorted(keep.iterdir()):
                try:
                    check(kept)
                except SourceError as exc:
                    self.warn(f"the kept signature {kept} no longer holds ({exc}); fetching it again")
                    kept.unlink(missing_ok=True)
                    break
                return kept
        for candidate in self.candidates(urls):
            data = _small_download(candidate, MAX_SIGNATURE)
            if data is None:
                continue
            self.tmp.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.tmp, prefix="sig-"))
            try:
                path = staging / _basename(candidate)
                path.write_bytes(data)
                check(path)  # a bad signature is an error, not a reason to look further
                keep.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=keep, prefix=".new-")
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp_name, keep / path.name)
                return keep / path.name
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return None


def _small_download(url: str, limit: int) -> bytes | None:
    """The body of *url* when the server has it (at most *limit* bytes), else None."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            if "text/html" in (resp.headers.get("Content-Type") or ""):
                return None
            data = resp.read(limit + 1)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if 0 < len(data) <= limit else None


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
