"""A Debian distribution as a resolve source: the machine's apt archives, read whole.

:class:`DebianIndex` reads the lists of appbuild's private apt state
(``repo/cache/apt-bin``, the same one ``appbuild import deb`` uses, see
:mod:`appbuilder.upstream.apt`): every suite and component of the machine's apt
sources, the ``Packages`` list of one Debian architecture (amd64 for x86_64, i386 for
x86; it holds the ``Architecture: all`` packages too), and ``Contents-ARCH`` plus
``Contents-all`` (fetched by apt through apt-file's index target, without apt-file).

Before anything is read, each suite's ``InRelease`` is checked with ``gpgv`` against the
keyring of its ``Signed-By`` (or apt's trusted keys), and every list's sha256
(uncompressed, as ``InRelease`` gives it) against the signed text: apt itself checks
only when it downloads, and these files sit in a cache anyone could edit. A mismatch is
an :class:`~appbuilder.upstream.index.IndexVerificationError` naming the file.

From Contents only what resolution asks about is kept: the files directly in the
``bin``, ``sbin`` and ``games`` directories and in the library directories
(``lib``, ``lib32``, ``lib64``, ``lib/x86_64-linux-gnu``, ``lib/i386-linux-gnu``, also
under ``usr/``). Paths are looked up as merged /usr sees them, so ``/bin/sh`` finds dash
although dash ships ``/bin/sh`` and ``/usr/bin/sh`` is asked for, and the two copies of
``libsystemd.so.0`` (libsystemd0 in ``/usr/lib``, libelogind0 in ``/lib``) are two owners
of one path. Contents is read at the first question about a file or a soname (resolving
names and relations needs only Packages; the Contents lists are opened with the rest, so
what is read later is the very file the checked InRelease was read with). The parsed Packages are cached
(``repo/cache/upstream/``) under the sha256 of the lists they came from, the file index
under that of the Contents lists, and each Contents list's kept lines under its own
(Contents change at point releases, Packages daily): a changed list is checked and parsed
again, never read from the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Iterator

from appbuilder.core.background import each_at_once
from appbuilder.core.errors import SourceError
from appbuilder.upstream import gpgv
from appbuilder.upstream.apt import APT_DIR, AptEntry, PrivateApt, system_entries
from appbuilder.upstream.indexbase import (
    DEB_ARCH,
    IndexPackage,
    IndexVerificationError,
    cache_key,
    file_digest,
    load_cached,
    merged_key,
    place_in,
    store_cached,
)
from appbuilder.upstream.lookaside import Lookaside
from appbuilder.upstream.relations import Atom, RelationError, compare, parse_deb

APT_ARCHITECTURES = ("amd64", "i386")
_EXTENSIONS = ("", ".lz4", ".gz", ".xz", ".zst")
_DECOMPRESS = {".lz4": ["lz4", "-dc"], ".gz": ["gzip", "-dc"], ".xz": ["xz", "-dc"], ".zst": ["zstd", "-dc"]}
# Contents lines kept: files directly in a bin or library directory
_CONTENTS_FILTER = (r"^(usr/)?(bin|sbin|games|lib|lib32|lib64|libx32|lib/x86_64-linux-gnu|lib/i386-linux-gnu)"
                    r"/[^/[:space:]]+[[:space:]]")
DOWNLOAD_POLL = 0.02  # seconds between looks at the files apt-get download is writing
# the library directories of an ELF class, per Debian architecture (ld.so's defaults)
_LIB_DIRS = {
    ("amd64", "ELF64"): ("lib/x86_64-linux-gnu", "lib64", "lib"),
    ("amd64", "ELF32"): ("lib32",),
    ("i386", "ELF32"): ("lib/i386-linux-gnu", "lib"),
    ("i386", "ELF64"): ("lib64",),
}
_TRUSTED = Path("/etc/apt/trusted.gpg.d")

# the record kept per package (a tuple: small to keep, fast to load)
(R_NAME, R_VERSION, R_ARCH, R_ESSENTIAL, R_PRIORITY, R_PROVIDES, R_DEPENDS, R_PRE, R_CONFLICTS, R_BREAKS,
 R_FILENAME, R_SHA256, R_SIZE, R_ORIGIN) = range(14)


def list_prefix(uri: str, suite: str) -> str:
    """apt's file name prefix for a suite's lists (``deb.debian.org_debian_dists_bookworm_``)."""
    text = re.sub(r"^[a-z0-9+.-]+://", "", uri).rstrip("/")
    text = re.sub(r"^[^/@]*@", "", text)  # user:password@
    return (text + "/dists/" + suite.strip("/") + "/").replace("/", "_")


def _signed_hashes(text: str) -> dict[str, tuple[str, int]]:
    """The SHA256 section of a (verified) Release text: path -> (sha256, size)."""
    hashes: dict[str, tuple[str, int]] = {}
    in_sha = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_sha = line.strip() == "SHA256:"
            continue
        if in_sha:
            fields = line.split()
            if len(fields) == 3:
                hashes[fields[2]] = (fields[0].lower(), int(fields[1]))
    return hashes


def _stream_check(path: Path, expected: str, what: str, filter_re: str | None = None, *,
                  fd: int | None = None) -> bytes | None:
    """Decompress *path*, check the sha256 of the uncompressed data against *expected*;
    return the data (or, with *filter_re*, only the lines ``grep -E`` keeps). *fd*: the file
    opened before (read through it: the file apt may since have put in its place is not)."""
    ext = path.suffix if path.suffix in _DECOMPRESS else ""
    h = hashlib.sha256()
    if filter_re is None:
        if ext:
            proc = subprocess.run([*_DECOMPRESS[ext], str(path)], capture_output=True)
            if proc.returncode != 0:
                raise IndexVerificationError(f"{path}: cannot decompress ({proc.stderr.decode(errors='replace')[-200:]})")
            data = proc.stdout
        else:
            data = path.read_bytes()
        h.update(data)
        if h.hexdigest() != expected:
            raise IndexVerificationError(f"{path}: sha256 {h.hexdigest()} does not match {what} ({expected})")
        return data
    env = dict(os.environ, LC_ALL="C")
    name = str(path) if fd is None else f"/proc/self/fd/{fd}"
    source = subprocess.Popen([*_DECOMPRESS[ext], name] if ext else ["cat", name], stdout=subprocess.PIPE,
                              pass_fds=() if fd is None else (fd,))
    grep = subprocess.Popen(["grep", "-E", filter_re], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    failure: list[BaseException] = []

    def feed():
        try:
            while chunk := source.stdout.read(1 << 20):
                h.update(chunk)
                grep.stdin.write(chunk)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)
        finally:
            try:
                grep.stdin.close()
            except OSError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    kept = grep.stdout.read()
    feeder.join()
    source.wait()
    grep.wait()
    if failure or source.returncode != 0 or grep.returncode not in (0, 1):
        raise IndexVerificationError(f"{path}: cannot read ({failure[0] if failure else 'decompression failed'})")
    if h.hexdigest() != expected:
        raise IndexVerificationError(f"{path}: sha256 {h.hexdigest()} does not match {what} ({expected})")
    return kept


class _OpenLists:
    """Lists opened to be read later: (path, descriptor, sha256, what, origin) each."""

    def __init__(self, lists: list[tuple]):
        self.opened: list[tuple] = []
        try:
            for path, *rest in lists:
                self.opened.append((path, os.open(path, os.O_RDONLY | os.O_CLOEXEC), *rest))
        except OSError as exc:
            self.close()
            raise SourceError(f"cannot read {exc.filename}: {exc.strerror}") from None

    def close(self) -> None:
        while self.opened:
            os.close(self.opened.pop()[1])


class DebianIndex:
    """The machine's Debian archives (apt sources) for one of our architectures."""

    kind = "deb"

    def __init__(self, source: str, *, cache: Path, arch: str, priority: int = 10, lookaside: Lookaside,
                 cache_dir: Path | None = None, update: bool = False, warn: Callable[[str], None] | None = None,
                 apt_dir: Path = APT_DIR, label: str | None = None, keyrings: list[Path] | None = None):
        if arch not in DEB_ARCH:
            raise SourceError(f"no Debian architecture for {arch!r} (x86_64, x86)")
        self.source = source
        self.arch = arch
        self.deb_arch = DEB_ARCH[arch]
        self.priority = priority
        self.label = label
        self.lookaside = lookaside
        self.cache_dir = Path(cache_dir) if cache_dir else Path(cache) / "upstream"
        self.warn = warn
        self.apt_dir = apt_dir
        self.keyrings = keyrings  # None: each source's Signed-By, else apt's trusted keys
        self.apt = PrivateApt(Path(cache) / "apt-bin", kind="deb", architectures=APT_ARCHITECTURES,
                              status="private", apt_dir=apt_dir, contents=True)
        self._suites: list[str] = []
        self._load(update)
        self._made: dict[int, IndexPackage] = {}

    # ------------------------------------------------------------------ loading

    def _plan(self) -> tuple[list[dict], bool]:
        """Each suite's InRelease and lists; whether an update is needed: no InRelease at
        all, or a list an InRelease names is missing (a suite without InRelease is one
        apt dropped when its update failed, a mirror mid-sync: not a reason to update on
        every load)."""
        suites, missing, any_release = [], False, False
        for entry in system_entries(self.apt_dir):
            for uri in entry.uris:
                for suite in entry.suites:
                    if suite.endswith("/"):
                        if self.warn:
                            self.warn(f"{uri} {suite}: flat repositories are not read as upstream indexes")
                        continue
                    prefix = self.apt.lists / list_prefix(uri, suite)
                    inrelease = Path(str(prefix) + "InRelease")
                    suites.append({"uri": uri, "suite": suite, "entry": entry, "prefix": str(prefix),
                                   "inrelease": inrelease})
                    if inrelease.is_file():
                        any_release = True
                        listed = _signed_hashes(inrelease.read_text(errors="replace"))  # checked later
                        for comp in entry.components:
                            if self._find(str(prefix), f"{comp}_binary-{self.deb_arch}_Packages") is None:
                                missing = True
                            for carch in (self.deb_arch, "all"):
                                size = listed.get(f"{comp}/Contents-{carch}", ("", 0))[1]
                                if size and self._find(str(prefix), f"{comp}_Contents-{carch}") is None:
                                    missing = True
        return suites, missing or not any_release

    @staticmethod
    def _find(prefix: str, name: str) -> Path | None:
        for ext in _EXTENSIONS:
            path = Path(prefix + name + ext)
            if path.is_file():
                return path
        return None

    def _keys(self, entry: AptEntry, work: Path) -> list[Path]:
        if self.keyrings is not None:
            return list(self.keyrings)
        if entry.signed_by:
            if "BEGIN PGP" in entry.signed_by:
                inline = work / "inline.asc"
                inline.write_text(entry.signed_by.strip() + "\n")
                return [inline]
            return [Path(p) for p in entry.signed_by.replace(",", " ").split()]
        keys = [Path("/etc/apt/trusted.gpg")] if Path("/etc/apt/trusted.gpg").is_file() else []
        if _TRUSTED.is_dir():
            keys += sorted(p for p in _TRUSTED.iterdir() if p.suffix in (".gpg", ".asc"))
        return keys

    def _load(self, update: bool) -> None:
        suites, missing = self._plan()
        if not suites:
            raise SourceError(f"no enabled 'deb' entries in {self.apt_dir}/sources.list*: no Debian index")
        if update or missing:
            self.apt.update(index_glob="*_Packages*", warn=self.warn)
            suites, missing = self._plan()
        with self.apt.locked(), tempfile.TemporaryDirectory(prefix="appbuild-debindex-") as tmp:
            files = []  # (kind, path, expected sha256, what, origin)
            present = [s for s in suites if s["inrelease"].is_file()]
            if not present:
                raise SourceError(f"no InRelease in {self.apt.lists} after apt-get update: no Debian index")
            for s in suites:
                if s not in present and self.warn:  # apt drops a suite whose update failed (mirror mid-sync)
                    self.warn(f"{s['uri']} {s['suite']}: no InRelease after apt-get update; not searched")
            for s in present:
                inrelease: Path = s["inrelease"]
                signed = gpgv.verify(inrelease, self._keys(s["entry"], Path(tmp)), what=str(inrelease))
                try:
                    hashes = _signed_hashes(signed.decode("utf-8", errors="replace"))
                except ValueError:
                    raise IndexVerificationError(f"{inrelease}: the signed text has no valid SHA256 section") from None
                s["hashes"] = hashes
                for comp in s["entry"].components:
                    key = f"{comp}/binary-{self.deb_arch}/Packages"
                    path = self._find(s["prefix"], f"{comp}_binary-{self.deb_arch}_Packages")
                    if path is None:
                        if self.warn:
                            self.warn(f"{s['uri']} {s['suite']}: no {key} list after apt-get update; not searched")
                        continue
                    self._suites.append(f"{s['suite']}/{comp}")
                    if key not in hashes:
                        raise IndexVerificationError(f"{path}: {inrelease} gives no sha256 for {key}")
                    files.append(("packages", path, hashes[key][0], f"InRelease ({key})",
                                  f"{s['suite']}/{comp} {self.deb_arch} Packages"))
                    for carch in (self.deb_arch, "all"):
                        ckey = f"{comp}/Contents-{carch}"
                        if ckey not in hashes or hashes[ckey][1] == 0:  # the security archive's are empty
                            continue
                        cpath = self._find(s["prefix"], f"{comp}_Contents-{carch}")
                        if cpath is None:
                            if self.warn:
                                self.warn(f"{s['suite']}/{comp}: no Contents-{carch} list (run with update)")
                            continue
                        files.append(("contents", cpath, hashes[ckey][0], f"InRelease ({ckey})",
                                      f"{s['suite']}/{comp} Contents-{carch}"))
            if not any(f[0] == "packages" for f in files):
                raise SourceError(f"no binary-{self.deb_arch} Packages list in {self.apt.lists}: no Debian index")
            self._contents_read = [f[4] for f in files if f[0] == "contents"]
            packages = [f for f in files if f[0] == "packages"]
            key = cache_key("deb", self.deb_arch, [(str(f[1]), f[2], file_digest(f[1])) for f in packages])
            data = load_cached(self.cache_dir, key)
            if data is None:
                data = self._parse(packages)
                store_cached(self.cache_dir, key, data, prefix=f"deb-{self.source}-{self.deb_arch}")
            # Contents is read when first asked about, from the files as they are now (apt's lock held)
            self._lists = _OpenLists([f[1:] for f in files if f[0] == "contents"])
            weakref.finalize(self, self._lists.close)
        self._records, self._origins, self._by_name, self._virtual = data
        self.cache_key = key
        self._files_now: dict[str, tuple] | None = None
        self._files_error: BaseException | None = None

    @property
    def _files(self) -> dict[str, tuple]:
        """Contents: merged path -> names of the packages shipping it. Read at the first
        question about a file or a soname (resolution by names and relations needs only
        Packages), then kept; a list that fails its check fails every question."""
        if self._files_now is None:
            if self._files_error is not None:
                raise self._files_error
            try:
                self._files_now = self._read_contents()
            except BaseException as exc:  # the lists are closed: the same answer from now on
                self._files_error = exc
                raise
            finally:
                self._lists.close()
        return self._files_now

    def _read_contents(self) -> dict[str, tuple]:
        """The file index of the Contents lists: cached under the sha256 of the lists, else
        each list checked and filtered (all at once) and the index made of their kept lines."""
        lists = [(path, fd, sha, what, origin, file_digest(Path(f"/proc/self/fd/{fd}")))
                 for path, fd, sha, what, origin in self._lists.opened]
        key = cache_key("files", self.deb_arch, _CONTENTS_FILTER, [(str(c[0]), c[2], c[5]) for c in lists])
        files_index = load_cached(self.cache_dir, key)
        if files_index is not None:
            return files_index
        kept = each_at_once([lambda c=c: self._contents(*c) for c in lists], name="appbuild-contents")
        owners: dict[str, list[str]] = {}
        for lines in kept:
            for line in lines.decode("utf-8", errors="replace").splitlines():
                path, _, where = line.rpartition(" ")
                path = path.rstrip()
                if not path:
                    continue
                names = owners.setdefault(merged_key(path), [])
                for item in where.split(","):
                    name = item.rsplit("/", 1)[-1]
                    if name not in names:
                        names.append(name)
        files_index = {k: tuple(v) for k, v in owners.items()}
        store_cached(self.cache_dir, key, files_index, prefix=f"files-{self.source}-{self.deb_arch}")
        return files_index

    def _contents(self, path: Path, fd: int, sha: str, what: str, origin: str, digest: str) -> bytes:
        """The kept lines of one Contents list: from the cache when this very file was checked
        against this very InRelease sha256 before (Contents change at point releases only,
        Packages daily), else checked and filtered now."""
        key = cache_key("contents", _CONTENTS_FILTER, digest, sha)
        kept = load_cached(self.cache_dir, key)
        if kept is not None:
            return kept
        data = _stream_check(path, sha, what, _CONTENTS_FILTER, fd=fd)
        store_cached(self.cache_dir, key, data, prefix=f"contents-{self.source}-{origin}")
        return data

    def _parse(self, files: list[tuple]) -> tuple:
        """The Packages lists among *files*: (records, origins, by name, by virtual name)."""
        import apt_pkg

        records: list[tuple] = []
        origins: list[str] = []
        by_name: dict[str, list[int]] = {}
        virtual: dict[str, list[int]] = {}
        for kind, path, sha, what, origin in files:
            if kind != "packages":
                continue
            data = _stream_check(path, sha, what)
            origin_ix = len(origins)
            origins.append(origin)
            fd = os.memfd_create("packages")
            with os.fdopen(fd, "w+b") as mem:
                mem.write(data)
                del data
                mem.seek(0)
                for sec in apt_pkg.TagFile(mem):
                    get = sec.get
                    try:
                        rec = (sec["Package"], sec["Version"], sec["Architecture"], get("Essential") == "yes",
                               get("Priority", ""), get("Provides", ""), get("Depends", ""),
                               get("Pre-Depends", ""), get("Conflicts", ""), get("Breaks", ""),
                               get("Filename", ""), get("SHA256", "").lower(), int(get("Size", "0") or 0),
                               origin_ix)
                    except (KeyError, ValueError) as exc:
                        raise IndexVerificationError(f"{path}: a stanza lacks or garbles {exc}") from None
                    ix = len(records)
                    records.append(rec)
                    by_name.setdefault(rec[R_NAME], []).append(ix)
                    if rec[R_PROVIDES]:
                        try:
                            provided = apt_pkg.parse_depends(rec[R_PROVIDES], False)
                        except ValueError:
                            continue
                        for group in provided:
                            for name, _, _ in group:
                                ixs = virtual.setdefault(name.split(":", 1)[0], [])
                                if not ixs or ixs[-1] != ix:
                                    ixs.append(ix)
        return records, origins, by_name, virtual

    # ------------------------------------------------------------------ queries

    def describe(self) -> str:
        suites = ", ".join(dict.fromkeys(self._suites))
        contents = ", Contents" if self._contents_read else ""
        return f"{self.source} ({suites} {self.deb_arch}+all Packages{contents})"

    def __repr__(self) -> str:
        return f"<DebianIndex {self.describe()}>"

    def _package(self, ix: int) -> IndexPackage:
        pkg = self._made.get(ix)
        if pkg is None:
            r = self._records[ix]
            origin = self._origins[r[R_ORIGIN]]
            try:
                pkg = IndexPackage(
                    source=self.source, origin=origin, kind="deb", name=r[R_NAME], version=r[R_VERSION],
                    arch=r[R_ARCH], essential=r[R_ESSENTIAL], priority=r[R_PRIORITY],
                    provides=tuple(a for a in parse_deb(r[R_PROVIDES]) if isinstance(a, Atom)),
                    depends=tuple(parse_deb(r[R_DEPENDS])), pre_depends=tuple(parse_deb(r[R_PRE])),
                    conflicts=tuple(parse_deb(r[R_CONFLICTS])) + tuple(parse_deb(r[R_BREAKS])),
                    location=r[R_FILENAME], sha256=r[R_SHA256], size=r[R_SIZE])
            except RelationError as exc:
                raise RelationError(f"{self.source} {origin}: {r[R_NAME]} {r[R_VERSION]}: {exc}") from None
            self._made[ix] = pkg
        return pkg

    def by_name(self, name: str) -> list[IndexPackage]:
        """Every version of the real package *name* (newest first)."""
        return self._newest_first(self._package(ix) for ix in self._by_name.get(name, ()))

    def by_virtual(self, name: str) -> list[tuple[IndexPackage, Atom]]:
        """The packages whose Provides name *name*, with the Provides entry."""
        found = []
        for ix in self._virtual.get(name, ()):
            pkg = self._package(ix)
            for atom in pkg.provides:
                if atom.name == name:
                    found.append((pkg, atom))
                    break
        return found

    def by_file(self, path: str) -> list[IndexPackage]:
        """The packages shipping *path* (in a bin or library directory; merged /usr aliases)."""
        found: list[IndexPackage] = []
        for name in self._files.get(merged_key(path), ()):
            found += self.by_name(name)
        return found

    def by_soname(self, elf_class: str, soname: str) -> list[IndexPackage]:
        """The packages shipping *soname* in a library directory of *elf_class* (ELF64, ELF32)."""
        names: list[str] = []
        for d in _LIB_DIRS.get((self.deb_arch, elf_class), ()):
            for name in self._files.get(merged_key(f"{d}/{soname}"), ()):
                if name not in names:
                    names.append(name)
        found: list[IndexPackage] = []
        for name in names:
            found += self.by_name(name)
        return found

    def essential(self) -> list[IndexPackage]:
        """The newest version of every ``Essential: yes`` package, by name."""
        names = sorted({r[R_NAME] for r in self._records if r[R_ESSENTIAL]})
        result = []
        for name in names:
            versions = [p for p in self.by_name(name) if p.essential]
            if versions:
                result.append(versions[0])
        return result

    def names(self) -> list[str]:
        """Every real package name of the index."""
        return sorted(self._by_name)

    @staticmethod
    def _newest_first(packages) -> list[IndexPackage]:
        import functools
        return sorted(packages, key=functools.cmp_to_key(lambda a, b: compare("deb", b.version, a.version)))

    # ------------------------------------------------------------------ downloads

    def fetch(self, packages: list[IndexPackage], dest: Path | None = None) -> list[Path]:
        """The .deb files of *packages*, each checked against the sha256 and size the
        (verified) index gives: from the lookaside cache, the rest in one ``apt-get
        download``. With *dest*, the files are linked there too; the paths returned are
        in the order of *packages*."""
        found = dict(self.fetch_each(packages))
        return [place_in(found[i], dest) for i in range(len(packages))]

    def fetch_each(self, packages: list[IndexPackage]) -> Iterator[tuple[int, Path]]:
        """(position in *packages*, verified file) of each package as soon as it is there:
        those in the lookaside cache first, then each one ``apt-get download`` has written
        in full (its size and sha256 those of the index), while the download goes on."""
        missing: list[IndexPackage] = []
        waiting: dict[str, list[int]] = {}
        for i, pkg in enumerate(packages):
            if not pkg.sha256:
                raise IndexVerificationError(f"{pkg.name} {pkg.version}: the index gives no sha256 ({pkg.origin})")
            hit, _ = self.lookaside.lookup(pkg.sha256)
            if hit:
                yield i, hit
            else:
                if pkg.sha256 not in waiting:
                    missing.append(pkg)
                waiting.setdefault(pkg.sha256, []).append(i)
        if missing:
            for digest, path in self._download(missing):
                for i in waiting[digest]:
                    yield i, path

    def _download(self, packages: list[IndexPackage]) -> Iterator[tuple[str, Path]]:
        """(sha256, cached file) of each of *packages*, from one ``apt-get download``: a file
        apt is writing is taken once it has the size the index gives and its sha256 matches
        (apt writes each in place, in order); when apt is done, every file must match."""
        self.lookaside.tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=self.lookaside.tmp, prefix="apt-download-"))
        want = {p.sha256: p for p in packages}
        sizes = {p.size for p in packages if p.size}
        taken: set[str] = set()  # file names handed on
        looked: dict[str, tuple[int, int]] = {}  # file name -> (size, mtime) found not to match yet
        try:
            targets = [f"{p.name}:{p.arch}={p.version}" for p in packages]
            with self.apt.started("apt-get", "download", *targets, cwd=work) as apt:
                while True:
                    done = apt.finished()
                    if done:
                        status, out, err = apt.output()
                        if status != 0:
                            detail = (err or out).strip()[-1500:]
                            raise SourceError(f"apt-get download of {len(targets)} packages failed: {detail}")
                    for deb in sorted(work.glob("*.deb")):
                        if deb.name in taken:
                            continue
                        st = deb.stat()
                        if not done and (st.st_size not in sizes or looked.get(deb.name) == (st.st_size, st.st_mtime_ns)):
                            continue
                        digest = file_digest(deb)
                        pkg = want.get(digest)
                        if pkg is None or (pkg.size and st.st_size != pkg.size):
                            if not done:
                                looked[deb.name] = (st.st_size, st.st_mtime_ns)
                                continue
                            if pkg is None:
                                raise IndexVerificationError(f"{deb.name}: sha256 {digest} is not the one the index "
                                                             f"gives for any package asked for")
                            raise IndexVerificationError(f"{deb.name}: {st.st_size} bytes, the index says {pkg.size}")
                        taken.add(deb.name)
                        del want[digest]
                        # a hard link: apt may still set the time of the name it wrote
                        yield digest, self.lookaside.add(deb, digest, deb.name.replace("%3a", ":"), link=True)
                    if done:
                        break
                    time.sleep(DOWNLOAD_POLL)
            if want:
                absent = [str(p) for p in want.values()]
                raise IndexVerificationError(f"apt-get download did not give verified copies of: {', '.join(absent)}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
