"""rpm-md repositories (what createrepo_c writes, what yum and dnf read).

``PATH-OR-URL/repodata/repomd.xml`` names the metadata files with their checksums;
appbuild reads ``primary`` (every package: name, epoch/version/release, arch, sha256,
location, provides, requires, the files under /etc and bin/ directories) and, only when
a file requirement is not met otherwise, ``filelists``. Both may be gzip, xz, bzip2 or
zstd compressed. A metadata file whose checksum is not the one repomd.xml gives is an
error, and so is a package whose checksum is not the one primary gives.

A local repository is read in place. Over http(s), repomd.xml is fetched fresh and
everything it names goes through the lookaside cache (verified, fetched once), and
``mirror://NAME/path`` URLs expand to the mirror lists of ``repo/config.yaml``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from appbuilder.core.errors import SourceError
from appbuilder.upstream import gpgv
from appbuilder.upstream.depmap import (
    RPMSENSE_EQUAL,
    RPMSENSE_GREATER,
    RPMSENSE_LESS,
    RpmDep,
)
from appbuilder.upstream.gpgv import IndexVerificationError
from appbuilder.upstream.lookaside import TIMEOUT, Lookaside

RPMSENSE_SCRIPT_PRE = 1 << 9  # a Requires(pre): primary.xml marks it pre="1"


class RpmMdError(SourceError):
    """An rpm-md repository cannot be read: missing, corrupt or not matching its checksums."""


class RpmMdChecksumError(RpmMdError, IndexVerificationError):
    """A file of an rpm-md repository does not have the checksum its metadata gives."""


NS = {"repo": "http://linux.duke.edu/metadata/repo", "common": "http://linux.duke.edu/metadata/common",
      "rpm": "http://linux.duke.edu/metadata/rpm", "filelists": "http://linux.duke.edu/metadata/filelists"}
_FLAGS = {"EQ": RPMSENSE_EQUAL, "LT": RPMSENSE_LESS, "GT": RPMSENSE_GREATER,
          "LE": RPMSENSE_LESS | RPMSENSE_EQUAL, "GE": RPMSENSE_GREATER | RPMSENSE_EQUAL}


@dataclass
class RepoPackage:
    """One package as primary.xml describes it."""

    name: str
    arch: str
    epoch: str
    version: str
    release: str
    checksum_type: str
    checksum: str
    location: str  # relative to the repository (or to base)
    base: str | None = None  # xml:base of the location, when the package lives elsewhere
    size: int = 0
    provides: list[RpmDep] = field(default_factory=list)
    requires: list[RpmDep] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    conflicts: list[RpmDep] = field(default_factory=list)
    obsoletes: list[RpmDep] = field(default_factory=list)

    @property
    def evr(self) -> tuple[str, str, str]:
        return (self.epoch or "0", self.version, self.release)

    @property
    def nevra(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch and self.epoch != "0" else ""
        return f"{self.name}-{epoch}{self.version}-{self.release}.{self.arch}"

    @property
    def file_name(self) -> str:
        return self.location.rsplit("/", 1)[-1]


def _decompress(data: bytes, name: str) -> bytes:
    try:
        if name.endswith(".gz"):
            return gzip.decompress(data)
        if name.endswith(".xz"):
            return lzma.decompress(data)
        if name.endswith(".bz2"):
            return bz2.decompress(data)
        if name.endswith(".zst"):
            return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as exc:
        raise RpmMdError(f"{name}: cannot decompress ({exc})") from None
    return data


def _entries(parent, tag: str) -> list[RpmDep]:
    node = parent.find(f"rpm:{tag}", NS)
    if node is None:
        return []
    deps = []
    for e in node.findall("rpm:entry", NS):
        flags = _FLAGS.get(e.get("flags", ""), 0)
        if e.get("pre") in ("1", "true"):
            flags |= RPMSENSE_SCRIPT_PRE
        ver = e.get("ver") or ""
        if ver:
            epoch, rel = e.get("epoch"), e.get("rel")
            ver = (f"{epoch}:" if epoch and epoch != "0" else "") + ver + (f"-{rel}" if rel else "")
        deps.append(RpmDep(e.get("name", ""), flags, ver))
    return deps


class RpmMdRepository:
    """One rpm-md repository, local or remote; metadata verified on load."""

    def __init__(self, location: str, lookaside: Lookaside, *, keys: list[Path] | tuple = ()):
        self.location = location
        self.keys = list(keys)  # when given, repomd.xml must carry a good repomd.xml.asc by one of them
        self.lookaside = lookaside
        self.remote = urllib.parse.urlparse(location).scheme in ("http", "https", "ftp", "mirror")
        self.root = None if self.remote else Path(location)
        self.base_urls = lookaside.expand(location.rstrip("/") + "/") if self.remote else []
        self.metadata: dict[str, dict] = {}
        self.packages: list[RepoPackage] = []
        self._filelists: dict[str, list[str]] | None = None

    # ------------------------------------------------------------------ metadata

    def load(self, *, primary: bool = True) -> "RpmMdRepository":
        """Read (and check) repomd.xml, then, unless *primary* is False, the primary metadata."""
        repomd = self._read_repomd()
        if self.keys:
            self._check_signature(repomd)
        self.repomd_sha256 = hashlib.sha256(repomd).hexdigest()
        try:
            root = ET.fromstring(repomd)
        except ET.ParseError as exc:
            raise RpmMdError(f"{self.location}: repodata/repomd.xml is not valid XML ({exc})") from None
        for data in root.findall("repo:data", NS):
            checksum = data.find("repo:checksum", NS)
            location = data.find("repo:location", NS)
            if checksum is None or location is None:
                continue
            self.metadata[data.get("type")] = {
                "href": location.get("href"), "type": checksum.get("type"), "checksum": checksum.text.strip(),
            }
        if "primary" not in self.metadata:
            raise RpmMdError(f"{self.location}: repodata/repomd.xml names no primary metadata")
        if primary:
            self.load_primary()
        return self

    def load_primary(self) -> list[RepoPackage]:
        """The packages of the primary metadata (checked against repomd.xml's checksum)."""
        self.packages = self._parse_primary(self._metadata_file("primary"))
        return self.packages

    def _check_signature(self, repomd: bytes) -> None:
        """repomd.xml.asc must be a good detached signature of *repomd* by one of the keys."""
        where = f"{self.location.rstrip('/')}/repodata/repomd.xml.asc"
        try:
            asc = self._read_repomd("repomd.xml.asc")
        except RpmMdError:
            raise gpgv.SignatureError(f"{where}: missing (the source names keys:, so repomd.xml must be signed)") \
                from None
        with tempfile.TemporaryDirectory(prefix="appbuild-repomd-") as tmp:
            (Path(tmp) / "repomd.xml").write_bytes(repomd)
            (Path(tmp) / "repomd.xml.asc").write_bytes(asc)
            gpgv.verify(Path(tmp) / "repomd.xml", self.keys, signature=Path(tmp) / "repomd.xml.asc", what=where)

    def _read_repomd(self, name: str = "repomd.xml") -> bytes:
        if self.root is not None:
            path = self.root / "repodata" / name
            if not path.is_file():
                raise RpmMdError(f"{self.location}: not an rpm-md repository (no repodata/{name})")
            return path.read_bytes()
        failures = []
        for base in self.base_urls:
            url = urllib.parse.urljoin(base, f"repodata/{name}")
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                    return resp.read()
            except (urllib.error.URLError, OSError, ValueError) as exc:
                failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
        raise RpmMdError(f"cannot fetch repodata/{name}; tried:\n  " + "\n  ".join(failures))

    def _metadata_file(self, kind: str) -> bytes:
        meta = self.metadata[kind]
        data = self._fetch(meta["href"], meta["type"], meta["checksum"], what=f"{kind} metadata")
        return _decompress(data, meta["href"])

    def _fetch(self, href: str, ctype: str, checksum: str, *, what: str, base: str | None = None) -> bytes:
        """The verified bytes of a file of the repository."""
        return self.local_file(href, ctype, checksum, what=what, base=base).read_bytes()

    def local_file(self, href: str, ctype: str, checksum: str, *, what: str, base: str | None = None) -> Path:
        """A verified local path of a repository file (downloaded into the lookaside when remote)."""
        if self.root is not None and not base:
            path = self.root / href
            if not path.is_file():
                raise RpmMdError(f"{self.location}: {href} ({what}) is missing")
            _verify(path, ctype, checksum, what=f"{href} ({what})")
            return path
        bases = self.lookaside.expand(base.rstrip("/") + "/") if base else self.base_urls
        urls = [urllib.parse.urljoin(b, href) for b in bases]
        if ctype == "sha256":
            try:
                return self.lookaside.fetch(urls[0], checksum, urls[1:])
            except SourceError as exc:
                raise RpmMdError(f"{href} ({what}): {exc}") from None
        # another checksum type: download through the cache under its sha256 after checking
        for url in urls:
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                    data = resp.read()
            except (urllib.error.URLError, OSError, ValueError):
                continue
            if _digest(data, ctype) != checksum:
                raise RpmMdChecksumError(f"checksum mismatch for {href} ({what}): expected {ctype} {checksum}")
            digest = hashlib.sha256(data).hexdigest()
            tmp = self.lookaside.tmp / f"rpmmd-{digest}"
            self.lookaside.tmp.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            return self.lookaside.add(tmp, digest, href.rsplit("/", 1)[-1], move=True)
        raise RpmMdError(f"cannot fetch {href} ({what}) from {', '.join(urls)}")

    def _parse_primary(self, xml: bytes) -> list[RepoPackage]:
        packages = []
        try:
            for _, elem in ET.iterparse(io.BytesIO(xml), events=("end",)):
                if elem.tag != f"{{{NS['common']}}}package" or elem.get("type") != "rpm":
                    continue
                version = elem.find("common:version", NS)
                checksum = elem.find("common:checksum", NS)
                location = elem.find("common:location", NS)
                size = elem.find("common:size", NS)
                fmt = elem.find("common:format", NS)
                pkg = RepoPackage(
                    name=elem.findtext("common:name", "", NS), arch=elem.findtext("common:arch", "", NS),
                    epoch=version.get("epoch", "0"), version=version.get("ver", ""), release=version.get("rel", ""),
                    checksum_type=checksum.get("type", "sha256"), checksum=checksum.text.strip(),
                    location=location.get("href"), base=location.get("{http://www.w3.org/XML/1998/namespace}base"),
                    size=int(size.get("package", 0)) if size is not None else 0,
                )
                if fmt is not None:
                    pkg.provides = _entries(fmt, "provides")
                    pkg.requires = _entries(fmt, "requires")
                    pkg.conflicts = _entries(fmt, "conflicts")
                    pkg.obsoletes = _entries(fmt, "obsoletes")
                    pkg.files = [f.text for f in fmt.findall("common:file", NS) if f.text]
                packages.append(pkg)
                elem.clear()
        except (ET.ParseError, AttributeError) as exc:
            raise RpmMdError(f"{self.location}: the primary metadata is not valid ({exc})") from None
        return packages

    def filelists(self) -> dict[str, list[str]]:
        """Package NEVRA → every file, from filelists metadata (loaded on first use)."""
        if self._filelists is None:
            self._filelists = {}
            if "filelists" in self.metadata:
                root = ET.fromstring(self._metadata_file("filelists"))
                for pkg in root.findall("filelists:package", NS):
                    v = pkg.find("filelists:version", NS)
                    epoch = v.get("epoch", "0")
                    nevra = (f"{pkg.get('name')}-{epoch + ':' if epoch != '0' else ''}"
                             f"{v.get('ver')}-{v.get('rel')}.{pkg.get('arch')}")
                    self._filelists[nevra] = [f.text for f in pkg.findall("filelists:file", NS) if f.text]
        return self._filelists

    # ------------------------------------------------------------------ packages

    def package_file(self, pkg: RepoPackage) -> tuple[Path, str | None]:
        """(path of the .rpm of *pkg*, the sha256 it must have or None when already verified).

        A local package with a sha256 checksum is verified as it is read (one pass over
        the file); anything else is verified here.
        """
        if self.root is not None and not pkg.base and pkg.checksum_type == "sha256":
            path = self.root / pkg.location
            if not path.is_file():
                raise RpmMdError(f"{self.location}: {pkg.location} ({pkg.nevra}) is missing")
            return path, pkg.checksum
        return self.local_file(pkg.location, pkg.checksum_type, pkg.checksum, what=pkg.nevra, base=pkg.base), None


def _digest(data: bytes, ctype: str) -> str:
    try:
        return hashlib.new("sha1" if ctype == "sha" else ctype, data).hexdigest()
    except ValueError:
        raise RpmMdError(f"unknown checksum type {ctype!r} in the repository metadata") from None


def _verify(path: Path, ctype: str, checksum: str, *, what: str) -> None:
    h = hashlib.new("sha1" if ctype == "sha" else ctype)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != checksum:
        raise RpmMdChecksumError(f"checksum mismatch for {what}: the repository metadata says {ctype} "
                           f"{checksum}, the file has {h.hexdigest()}")
