"""``appbuild verify RELEASE_DIR|URL``: check a published release as a downloader would.

RELEASE is one architecture's release tree as ``publish`` lays it out
(``GROUP/VERSION/ARCH/``: images, ``NAME.intoto.jsonl``, SBOMs, ``manifest.json``,
``SHA256SUMS``, ``SHA256SUMS.asc``), or the version directory above it (every arch it
holds), on disk or over http(s). Each check prints one line:

    signature   ``SHA256SUMS.asc`` is a good OpenPGP signature of ``SHA256SUMS`` by a key
                of the keyring (``--keyring``: a GNUPGHOME or a public key file; or
                ``APPBUILD_VERIFY_KEYRING``)
    checksums   every file ``SHA256SUMS`` lists has that sha256; ``manifest.json`` is one of
                them and agrees with it; every file the manifest names is listed
    sbom        the SBOMs beside the images (``NAME.spdx.json``, ``NAME.cdx.json``) name the
                very packages and versions the manifest pins ("no SBOM in this release"
                when there is none)
    provenance  the DSSE envelope's signature is good with the same keyring; its
                statement is an in-toto v1 Statement with a SLSA v1 predicate whose
                subjects are exactly the release's images with their sha256, whose trove
                materials are exactly the manifest's pins, for this group, version and arch
    rebuild     (``--rebuild``) the images rebuilt from the recorded pins (``appbuild
                group-NAME --version V`` into a scratch directory, never the image store)
                have the same bytes as the release's

Nothing of the release is trusted before it is checked: a changed image byte, a changed
``SHA256SUMS``, a changed provenance payload or SBOM each fail their check with the file
and what differs named, and the command exits non-zero. ``--allow-unsigned`` accepts a
release published ``--unsigned`` (the signatures are then reported as skipped).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import sha256_file
from appbuilder.release import dsse
from appbuilder.release.publish import ENVELOPE_SUFFIX, RELEASE_MANIFEST, SIGNATURE, SUMS
from appbuilder.release.signing import Keyring, SignatureError
from appbuilder.store import provenance

OK, FAILED, SKIPPED = "ok", "FAILED", "skipped"
SBOM_SUFFIXES = {".spdx.json": "SPDX", ".cdx.json": "CycloneDX"}
_CHUNK = 1 << 20


class ReleaseError(AppbuildError):
    """A release that cannot be found or read."""


@dataclass
class Check:
    name: str
    status: str
    message: str

    def __post_init__(self) -> None:  # one line per check, whatever a message quotes
        self.message = re.sub(r"\s*\n\s*", "; ", re.sub(r":\s*\n\s*", ": ", self.message.strip()))

    def line(self) -> str:
        return f"  {self.status:8} {self.name:11} {self.message}"


@dataclass
class Report:
    """The checks of one architecture's release."""

    where: str
    title: str = ""
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAILED for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAILED]


# ---------------------------------------------------------------- where the release is


class Source:
    """One architecture's release tree, read file by file."""

    where: str

    def read(self, name: str) -> bytes | None:
        raise NotImplementedError

    def digest(self, name: str) -> str | None:
        """sha256 of a file, read in blocks; None when it is not there."""
        raise NotImplementedError


class DirectorySource(Source):
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.where = str(self.directory)

    def _path(self, name: str) -> Path | None:
        path = self.directory / name
        return path if path.is_file() else None

    def read(self, name: str) -> bytes | None:
        path = self._path(name)
        return path.read_bytes() if path else None

    def digest(self, name: str) -> str | None:
        path = self._path(name)
        return sha256_file(path) if path else None


class HttpSource(Source):
    def __init__(self, url: str, timeout: float = 60):
        self.url = url if url.endswith("/") else url + "/"
        self.where = self.url
        self.timeout = timeout

    def _open(self, name: str):
        url = urllib.parse.urljoin(self.url, urllib.parse.quote(name))
        try:
            return urllib.request.urlopen(url, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404, 410):
                return None
            raise ReleaseError(f"{url}: the server answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ReleaseError(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}") from None

    def read(self, name: str) -> bytes | None:
        response = self._open(name)
        if response is None:
            return None
        with response:
            return response.read()

    def digest(self, name: str) -> str | None:
        response = self._open(name)
        if response is None:
            return None
        h = hashlib.sha256()
        with response:
            while block := response.read(_CHUNK):
                h.update(block)
        return h.hexdigest()


def locate(target: str) -> list[Source]:
    """The architecture releases *target* names: an arch directory (or URL) holding
    ``SHA256SUMS``, or a version directory above them."""
    if re.match(r"^https?://", target):
        source = HttpSource(target)
        if source.read(SUMS) is not None:
            return [source]
        version = source.url.rstrip("/").rsplit("/", 1)[-1]
        feed = HttpSource(urllib.parse.urljoin(source.url, "..")).read("releases.json")
        arches = []
        if feed is not None:
            try:
                index = json.loads(feed)
                release = next(r for r in index.get("releases", []) if r.get("version") == version)
                arches = sorted(release.get("arches", {}))
            except (ValueError, StopIteration, AttributeError):
                arches = []
        if not arches:
            raise ReleaseError(f"no release at {target}: it has no {SUMS}, and no release index beside it "
                               f"lists version {version!r} (name GROUP/VERSION/ARCH/ of a published tree)")
        return [HttpSource(urllib.parse.urljoin(source.url, f"{arch}/")) for arch in arches]
    if "://" in target:
        raise ReleaseError(f"appbuild verify {target}: give a release directory or an http(s) URL")
    directory = Path(target)
    if not directory.is_dir():
        raise ReleaseError(f"no release at {target}: not a directory")
    if (directory / SUMS).is_file():
        return [DirectorySource(directory)]
    found = sorted(d for d in directory.iterdir() if d.is_dir() and (d / SUMS).is_file())
    if not found:
        raise ReleaseError(f"no release at {target}: it has no {SUMS} (name GROUP/VERSION/ARCH/ or "
                           f"GROUP/VERSION/ of a published tree)")
    return [DirectorySource(d) for d in found]


# ---------------------------------------------------------------- the checks


def _parse_sums(data: bytes) -> dict[str, str]:
    sums = {}
    for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
        m = re.match(r"^([0-9a-f]{64}) [ *](.+)$", line)
        if not m or "/" in m.group(2) or m.group(2) in (".", ".."):
            raise ReleaseError(f"{SUMS} line {number} is not 'SHA256  NAME': {line[:80]!r}")
        sums[m.group(2)] = m.group(1)
    return sums


def _few(items, n: int = 3) -> str:
    items = sorted(items)
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def check_signature(source: Source, sums: bytes | None, keyring: Keyring | None, allow_unsigned: bool) -> Check:
    if sums is None:
        return Check("signature", FAILED, f"the release has no {SUMS}")
    signature = source.read(SIGNATURE)
    if signature is None:
        if allow_unsigned:
            return Check("signature", SKIPPED, f"{SUMS} is not signed (published --unsigned; --allow-unsigned)")
        return Check("signature", FAILED, f"{SUMS} is not signed: the release has no {SIGNATURE} "
                                          f"(--allow-unsigned accepts a release published --unsigned)")
    if keyring is None:
        return Check("signature", FAILED, f"no keyring to check {SIGNATURE} with: give --keyring PATH or "
                                          f"APPBUILD_VERIFY_KEYRING (a GNUPGHOME, or the release key's file)")
    try:
        good = keyring.verify(sums, signature, what=SUMS)
    except SignatureError as exc:
        return Check("signature", FAILED, f"{SIGNATURE}: {exc}")
    return Check("signature", OK, f"{SUMS} has a good signature by {good.primary}")


def check_checksums(source: Source, sums: dict[str, str], manifest: dict | None,
                    actual: dict[str, str | None]) -> Check:
    problems = []
    for name, expected in sorted(sums.items()):
        got = actual[name] = source.digest(name)
        if got is None:
            problems.append(f"{name} is missing")
        elif got != expected:
            problems.append(f"{name} has sha256 {got}, {SUMS} says {expected}")
    if RELEASE_MANIFEST not in sums:
        problems.append(f"{SUMS} does not list {RELEASE_MANIFEST}")
    if manifest is not None:
        for name, entry in sorted((manifest.get("files") or {}).items()):
            if name not in sums:
                problems.append(f"{RELEASE_MANIFEST} names {name}, which {SUMS} does not list")
            elif entry.get("sha256") != sums[name]:
                problems.append(f"{RELEASE_MANIFEST} records sha256 {entry.get('sha256')} for {name}, "
                                f"{SUMS} says {sums[name]}")
        for extra in [manifest.get("provenance")]:
            if extra and extra not in sums:
                problems.append(f"{extra} is not covered by {SUMS}")
    if problems:
        return Check("checksums", FAILED, "; ".join(problems))
    return Check("checksums", OK, f"{len(sums)} files match {SUMS}")


def manifest_pins(manifest: dict) -> dict[str, str]:
    """package name -> full version (label/upstream-source-build) of every member the release's
    manifest pins (a capsule's member is its component, ``libc6:deb``: its package is ``libc6``)."""
    pins = {}
    for member in manifest.get("members") or []:
        name, _, rest = str(member).partition("=")
        pins[name.split(":", 1)[0]] = rest.split("[", 1)[0]
    return pins


def _upstream(version: str) -> str:
    """``label/1.35.0-1-3`` -> ``1.35.0``: the package's own version, what an SBOM states."""
    return version.rsplit("/", 1)[-1].rsplit("-", 2)[0]


def _sbom_packages(kind: str, doc: dict, group: str) -> tuple[dict[str, tuple[str, str]], str | None]:
    """What an SBOM says of the image's packages: name -> (trove version, stated version),
    and the group version it names for the image itself. Packages are those that carry
    appbuild's trove reference (SPDX: an ``appbuild-trove`` external reference; CycloneDX:
    an ``appbuild:version`` property); source packages and files are left out."""
    found: dict[str, tuple[str, str]] = {}
    image = None
    if kind == "SPDX":
        for p in doc.get("packages") or []:
            refs = [str(r.get("referenceLocator", "")) for r in p.get("externalRefs") or []
                    if isinstance(r, dict) and r.get("referenceType") == "appbuild-trove"]
            for ref in refs:
                name, _, version = ref.partition("=")
                if name == group and p.get("SPDXID") == "SPDXRef-Image":
                    image = version
                else:
                    found[name] = (version, str(p.get("versionInfo")))
    else:
        image = ((doc.get("metadata") or {}).get("component") or {}).get("version")
        for c in doc.get("components") or []:
            versions = [str(q.get("value")) for q in c.get("properties") or []
                        if isinstance(q, dict) and q.get("name") == "appbuild:version"]
            if versions:
                found[str(c.get("name"))] = (versions[0], str(c.get("version")))
    return found, image


def check_sbom(source: Source, manifest: dict, basename: str, actual: dict[str, str | None]) -> Check:
    pins = manifest_pins(manifest)
    seen, problems = [], []
    for suffix, kind in SBOM_SUFFIXES.items():
        name = basename + suffix
        data = source.read(name)
        if data is None:
            continue
        seen.append(name)
        if name not in actual:
            problems.append(f"{name} is not covered by {SUMS}")
        try:
            doc = json.loads(data)
            listed, image = _sbom_packages(kind, doc, str(manifest.get("group", "")))
        except (ValueError, AttributeError, TypeError) as exc:
            problems.append(f"{name}: not a {kind} JSON document ({exc})")
            continue
        if image != manifest.get("version"):
            problems.append(f"{name} describes {manifest.get('group')} {image}, the manifest {manifest.get('version')}")
        missing = sorted(set(pins) - set(listed))
        extra = sorted(set(listed) - set(pins))
        wrong = []
        for n in sorted(set(pins) & set(listed)):
            trove, stated = listed[n]
            if trove != pins[n]:
                wrong.append(f"{n} is {trove} (the manifest pins {pins[n]})")
            elif stated != _upstream(pins[n]):
                wrong.append(f"{n} has version {stated} (the manifest pins {pins[n]}: {_upstream(pins[n])})")
        if missing:
            problems.append(f"{name} does not list {_few(missing)}")
        if extra:
            problems.append(f"{name} lists {_few(extra)}, which the manifest does not pin")
        if wrong:
            problems.append(f"{name} says {_few(wrong)}")
    if not seen:
        return Check("sbom", SKIPPED, "no SBOM in this release")
    if problems:
        return Check("sbom", FAILED, "; ".join(problems))
    return Check("sbom", OK, f"{' and '.join(seen)} name the {len(pins)} pinned packages with their versions")


def check_provenance(source: Source, manifest: dict, basename: str, actual: dict[str, str | None],
                     keyring: Keyring | None, allow_unsigned: bool) -> Check:
    name = manifest.get("provenance") or basename + ENVELOPE_SUFFIX
    data = source.read(name)
    if data is None:
        return Check("provenance", FAILED, f"no provenance in this release ({name} is missing)")
    problems, notes = [], []
    try:
        envelope = dsse.parse(data, name)
    except dsse.EnvelopeError as exc:
        return Check("provenance", FAILED, str(exc))
    if envelope.payload_type != dsse.PAYLOAD_TYPE:
        problems.append(f"{name}: payloadType is {envelope.payload_type!r}, not {dsse.PAYLOAD_TYPE}")
    if not envelope.signatures and allow_unsigned:
        notes.append("unsigned (--allow-unsigned)")
    elif keyring is None:
        problems.append(f"no keyring to check the signature of {name} with (--keyring)")
    else:
        try:
            signers = envelope.verify(keyring)
            notes.append(f"signed by {', '.join(signers)}")
        except dsse.EnvelopeError as exc:
            problems.append(f"the DSSE signature of {name} does not verify: {exc}")
    try:
        statement = provenance.load(envelope.payload, f"the statement in {name}")
    except provenance.ProvenanceError as exc:
        return Check("provenance", FAILED, "; ".join([*problems, str(exc)]))

    images = sorted({n for paths in (manifest.get("formats") or {}).values() for n in paths})
    subjects = provenance.subjects(statement)
    for n in sorted(set(images) - set(subjects)):
        problems.append(f"the statement has no subject {n}")
    for n in sorted(set(subjects) - set(images)):
        problems.append(f"the statement names {n}, which the release does not carry")
    for n in sorted(set(images) & set(subjects)):
        have = actual.get(n) or source.digest(n)
        if subjects[n] != have:
            problems.append(f"subject {n} has sha256 {subjects[n]} in the statement, the file has {have}")
    pins, members = provenance.pinned(statement), set(manifest.get("members") or [])
    if pins != members:
        if members - pins:
            problems.append(f"the materials lack the pins {_few(members - pins)}")
        if pins - members:
            problems.append(f"the materials pin {_few(pins - members)}, which the manifest does not")
    external = statement["predicate"]["buildDefinition"].get("externalParameters") or {}
    for key in ("group", "version", "arch"):
        if external.get(key) != manifest.get(key):
            problems.append(f"externalParameters.{key} is {external.get(key)!r}, the manifest says "
                            f"{manifest.get(key)!r}")
    if problems:
        return Check("provenance", FAILED, "; ".join(problems))
    builder = ((statement["predicate"].get("runDetails") or {}).get("builder") or {}).get("id", "?")
    return Check("provenance", OK, f"{'; '.join(notes)}; {len(subjects)} subjects match the files; "
                                   f"{len(pins)} pinned troves match the manifest; built by {builder}")


Rebuilder = Callable[[dict, int | None, Path], dict[str, str]]


def check_rebuild(manifest: dict, size: int | None, actual: dict[str, str | None], rebuild: Rebuilder,
                  scratch_root: Path | None) -> Check:
    images = sorted({n for paths in (manifest.get("formats") or {}).values() for n in paths})
    scratch = Path(tempfile.mkdtemp(prefix="appbuild-rebuild-", dir=scratch_root))
    try:
        try:
            rebuilt = rebuild(manifest, size, scratch)
        except AppbuildError as exc:
            return Check("rebuild", FAILED, f"rebuilding {manifest.get('trove')} from its pins failed: {exc}")
        problems = []
        for n in images:
            expected = (manifest.get("files") or {}).get(n, {}).get("sha256")
            if n not in rebuilt:
                problems.append(f"the rebuild made no {n}")
            elif rebuilt[n] != expected or (actual.get(n) and actual[n] != rebuilt[n]):
                problems.append(f"{n} rebuilt to sha256 {rebuilt[n]}, the release has {actual.get(n) or expected}")
        if problems:
            return Check("rebuild", FAILED, "; ".join(problems))
        return Check("rebuild", OK, f"{len(images)} files rebuilt from the pins bit for bit "
                                    f"({', '.join(sorted(manifest.get('formats') or {}))})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def verify_release(source: Source, keyring: Keyring | None, *, allow_unsigned: bool = False,
                   rebuild: Rebuilder | None = None, scratch_root: Path | None = None,
                   show: Callable[[Check], None] = lambda c: None) -> Report:
    """Run every check on one architecture's release; *show* sees each as it is done."""
    report = Report(source.where)

    def add(check: Check) -> None:
        report.checks.append(check)
        show(check)

    sums_data = source.read(SUMS)
    add(check_signature(source, sums_data, keyring, allow_unsigned))
    manifest = None
    raw = source.read(RELEASE_MANIFEST)
    if raw is not None:
        try:
            manifest = json.loads(raw)
            if not isinstance(manifest, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            add(Check("manifest", FAILED, f"{RELEASE_MANIFEST} is not a release manifest ({exc})"))
            manifest = None
    else:
        add(Check("manifest", FAILED, f"the release has no {RELEASE_MANIFEST}"))
    if manifest:
        report.title = f"{manifest.get('group')}={str(manifest.get('version', '?')).rsplit('/', 1)[-1]} " \
                       f"({manifest.get('arch')})"
    actual: dict[str, str | None] = {}
    try:
        sums = _parse_sums(sums_data) if sums_data is not None else {}
    except ReleaseError as exc:
        add(Check("checksums", FAILED, str(exc)))
        sums = None
    if sums is not None:
        add(check_checksums(source, sums, manifest, actual))
    if manifest is None:
        return report
    revision = str(manifest.get("version", "")).rsplit("/", 1)[-1]
    basename = f"{manifest.get('group')}-{revision}-{manifest.get('arch')}"
    add(check_sbom(source, manifest, basename, actual))
    add(check_provenance(source, manifest, basename, actual, keyring, allow_unsigned))
    if rebuild is not None:
        add(check_rebuild(manifest, _recorded_size(source, manifest, basename), actual, rebuild, scratch_root))
    return report


def _recorded_size(source: Source, manifest: dict, basename: str) -> int | None:
    """The ``--size`` the build was given, as its provenance records it (None: the default)."""
    data = source.read(manifest.get("provenance") or basename + ENVELOPE_SUFFIX)
    try:
        statement = provenance.load(dsse.parse(data, "provenance").payload, "provenance") if data else None
    except AppbuildError:
        return None
    size = ((statement or {}).get("predicate", {}).get("buildDefinition", {}).get("externalParameters") or {}).get("size")
    return size if isinstance(size, int) else None


def rebuild_with(settings, say: Callable[[str], None] = lambda m: None) -> Rebuilder:
    """A rebuilder for :func:`verify_release`: ``appbuild group-NAME --version V --arch A
    --format F --output SCRATCH`` in the workspace of *settings* (its repository holds the
    pins, or its image store records them), returning name -> sha256 of what it made."""
    from appbuilder.repository.repo import Repository
    from appbuilder.store.build import BuildRequest, build_images

    def rebuild(manifest: dict, size: int | None, scratch: Path) -> dict[str, str]:
        formats = sorted(manifest.get("formats") or {})
        if not formats or not manifest.get("group") or not manifest.get("version") or not manifest.get("arch"):
            raise ReleaseError(f"{RELEASE_MANIFEST} does not say what to rebuild (group, version, arch, formats)")
        repo = Repository(settings.repository, settings.label)
        try:
            req = BuildRequest(group=manifest["group"], arches=[manifest["arch"]], formats=",".join(formats),
                               version=str(manifest["version"]), output=scratch, size=size, jobs=2)
            built = build_images(settings, repo, req, say=say)
        finally:
            repo.close()
        return {p.name: sha256_file(p) for image in built for paths in image.files.values() for p in paths}

    return rebuild
