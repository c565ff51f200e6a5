"""The inventory of an image: its SBOMs (SPDX 2.3 and CycloneDX 1.6, JSON) and a plain-text list.

An image's inventory names every package of the group's closure that put files into
it (a cooked package, or a DEB or RPM capsule), with:

* its **version**: the upstream version (what vulnerability scanners compare, and the
  version in its package URL) and the full trove version string
  (``label/upstream-source-build``; SPDX: an ``appbuild-trove`` external reference and
  the comment; CycloneDX: ``appbuild:trove`` properties), so an SBOM can be checked
  against the image store's manifest;
* its **upstream source**: for a cooked package, what its recipe fetched (URL and
  sha256, a Debian source package and its ``.dsc`` sha256) or the files beside the
  recipe (name and sha256), as the cook recorded them; for a DEB capsule, the Debian
  source package and version (``Source:``) and the ``.deb``'s sha256; for an RPM
  capsule, its ``name-epoch:version-release.arch``, source RPM and the ``.rpm``'s sha256;
* its **license** where known: a recipe's ``license`` (an SPDX expression), an RPM's
  License tag, or the licenses a machine-readable Debian copyright file (DEP-5)
  lists, mapped to SPDX identifiers (names SPDX has no identifier for become
  ``LicenseRef-`` entries); otherwise NOASSERTION;
* its **package URL** (``pkg:deb/debian/NAME@VERSION?arch=...``, ``pkg:rpm/...``,
  ``pkg:generic/NAME@VERSION`` for cooked ones);
* the **files** it put into the image, each with its SHA-1 and SHA-256 (SPDX: files
  and the package verification code; CycloneDX: file components with hashes).

Everything comes from the repository and the group version, never from the clock or a
random source: the SPDX ``documentNamespace`` and the CycloneDX ``serialNumber`` are
UUIDv5 of the group trove, times are the image's SOURCE_DATE_EPOCH, and the JSON is
written with sorted members and fixed key order, so the same group version gives the
same bytes. The image carries them under ``/usr/share/appbuild/`` (with
``inventory.txt``, which the guest's ``appliance query`` prints and ``appbuild inspect``
reads back); the image store keeps the SBOMs beside the image files
(``<image>.spdx.json``, ``<image>.cdx.json``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from packageurl import PackageURL

from appbuilder import __version__
from appbuilder.capsule.deb import parse_control
from appbuilder.capsule.dpkgdb import control_fields
from appbuilder.capsule.model import CapsuleError
from appbuilder.core.errors import RepositoryError
from appbuilder.repository import sha1s
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import Trove
from appbuilder.repository.versions import NVF

SBOM_DIR = "/usr/share/appbuild"
SPDX_PATH = f"{SBOM_DIR}/sbom.spdx.json"
CDX_PATH = f"{SBOM_DIR}/sbom.cdx.json"
INVENTORY_PATH = f"{SBOM_DIR}/inventory.txt"
# beside an image in the store: <image basename><suffix>
SPDX_SUFFIX, CDX_SUFFIX = ".spdx.json", ".cdx.json"
# the UUIDv5 namespace of appbuild's SBOM identifiers
SBOM_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://appbuild.invalid/sbom")
NOASSERTION = "NOASSERTION"
TOOL = f"appbuild-{__version__}"

# Debian copyright-format short names and RPM License tag names -> SPDX identifiers
LICENSE_NAMES = {
    "gpl-1": "GPL-1.0-only", "gpl-1+": "GPL-1.0-or-later", "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later", "gplv2": "GPL-2.0-only", "gplv2+": "GPL-2.0-or-later",
    "gplv3": "GPL-3.0-only", "gplv3+": "GPL-3.0-or-later", "gpl+": "GPL-1.0-or-later",
    "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later", "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later",
    "lgplv2": "LGPL-2.0-only", "lgplv2+": "LGPL-2.0-or-later", "lgplv2.1": "LGPL-2.1-only",
    "lgplv2.1+": "LGPL-2.1-or-later", "lgplv3": "LGPL-3.0-only", "lgplv3+": "LGPL-3.0-or-later",
    "agpl-3": "AGPL-3.0-only", "agpl-3+": "AGPL-3.0-or-later",
    "agplv3": "AGPL-3.0-only", "agplv3+": "AGPL-3.0-or-later",
    "apache-2.0": "Apache-2.0", "apache-2": "Apache-2.0", "asl 2.0": "Apache-2.0",
    "artistic": "Artistic-1.0-Perl", "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
    "expat": "MIT", "mit": "MIT", "isc": "ISC", "zlib": "Zlib", "openssl": "OpenSSL", "curl": "curl",
    "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0", "psf-2": "PSF-2.0", "cc0-1.0": "CC0-1.0", "bsl-1.0": "BSL-1.0",
    "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later", "unlicense": "Unlicense", "x11": "X11",
    "wtfpl": "WTFPL", "wtfpl-2": "WTFPL", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
}
_KNOWN_IDS = {v.lower(): v for v in LICENSE_NAMES.values()}
_LICENSE_TOKEN = re.compile(r"(\(|\)|\s+(?:and|or|AND|OR)\s+|,\s*(?:and|or)\s+)")


@dataclass(frozen=True)
class License:
    """An SPDX license expression; ``refs`` maps each LicenseRef in it to the name it stands for."""

    expression: str
    refs: tuple[tuple[str, str], ...] = ()


def license_ref(name: str) -> str:
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "unnamed")


def map_license(text: str) -> License | None:
    """An SPDX expression for a Debian or RPM license field (``GPL-2+ or Artistic``, ``GPLv2+
    and BSD``); names without an SPDX identifier become LicenseRefs."""
    text = " ".join(text.split())
    if not text:
        return None
    parts = [p for p in _LICENSE_TOKEN.split(text) if p and p.strip()]
    out, refs, depth, expect_name = [], {}, 0, True
    for part in parts:  # names and "(" where a name may stand, ")" and operators after one
        word = part.strip().lower().lstrip(", ").strip()
        if word in ("and", "or", ")") and expect_name or word not in ("and", "or", ")") and not expect_name:
            return _whole(text)
        if word == "(":
            depth += 1
            out.append("(")
        elif word == ")":
            depth -= 1
            if depth < 0:
                return _whole(text)
            out.append(")")
        elif word in ("and", "or"):
            out.append(f" {word.upper()} ")
        else:
            spdx = LICENSE_NAMES.get(word) or _KNOWN_IDS.get(word)
            if spdx is None:
                spdx = license_ref(part.strip())
                refs[spdx] = part.strip()
            out.append(spdx)
        expect_name = word in ("and", "or", "(")
    if depth or expect_name:
        return _whole(text)
    return License("".join(out), tuple(sorted(refs.items())))


def _whole(text: str) -> License:
    ref = license_ref(text)
    return License(ref, ((ref, text),))


def combine(licenses: list[License]) -> License | None:
    """The conjunction (AND) of several licenses, each kept once, in order."""
    seen: dict[str, License] = {}
    for lic in licenses:
        seen.setdefault(lic.expression, lic)
    if not seen:
        return None
    if len(seen) == 1:
        return next(iter(seen.values()))
    parts = [f"({e})" if " " in e else e for e in seen]
    refs = {k: v for lic in seen.values() for k, v in lic.refs}
    return License(" AND ".join(parts), tuple(sorted(refs.items())))


def dep5_license(text: str) -> License | None:
    """The licenses a machine-readable Debian copyright file (DEP-5) lists for the upstream
    files (its ``Files:`` paragraphs other than ``debian/*``); None for other copyright files."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if not paragraphs or not paragraphs[0].lstrip().startswith("Format:") or \
            "copyright-format" not in paragraphs[0].splitlines()[0]:
        return None
    found = []
    for paragraph in paragraphs[1:]:
        try:
            fields = parse_control("\n".join(line for line in paragraph.splitlines() if not line.startswith("#")))
        except CapsuleError:  # a malformed paragraph names no license
            continue
        files, lic = fields.get("Files", "").split(), fields.get("License", "").split("\n", 1)[0].strip()
        if files and lic and not all(f.startswith("debian/") for f in files):
            mapped = map_license(lic)
            if mapped:
                found.append(mapped)
    return combine(found)


@dataclass
class MemberFile:
    path: str
    sha256: str
    sha1: str
    size: int


@dataclass
class Source:
    """One upstream source of a member."""

    kind: str  # url, file, debian-source, rpm-source
    name: str
    version: str = ""
    url: str = ""
    sha256: str = ""
    purl: str = ""

    def describe(self) -> str:
        if self.kind == "url":
            return f"{self.url} sha256:{self.sha256}"
        if self.kind == "file":
            return f"{self.name} sha256:{self.sha256}"
        if self.kind == "debian-source":
            dsc = f" (.dsc sha256:{self.sha256})" if self.sha256 else ""
            return f"Debian source {self.name} {self.version}{dsc}"
        return f"source RPM {self.name}"


@dataclass
class Member:
    """One package of the closure, as the inventory names it."""

    name: str
    version: str  # the full trove version string: label/upstream-source-build
    upstream: str  # the package's own version: what scanners compare
    arch: str | None  # appbuild architecture of the trove (None: architecture-independent)
    kind: str  # cooked, deb, rpm
    troves: list[str]  # name=version[flavor] of the package and of its components in the group
    purl: str
    license: License | None = None
    sources: list[Source] = field(default_factory=list)
    package_file: str = ""  # the .deb/.rpm it was imported from
    package_sha256: str = ""
    homepage: str = ""
    summary: str = ""
    supplier: str = ""
    notes: list[str] = field(default_factory=list)
    files: list[MemberFile] = field(default_factory=list)

    @property
    def source_text(self) -> str:
        if not self.sources:
            return "not recorded"
        first = self.sources[0]
        if self.kind == "cooked" and first.kind == "file":
            return f"recipe files ({len(self.sources)})"
        more = f" (+{len(self.sources) - 1} more)" if len(self.sources) > 1 else ""
        if first.kind == "url":
            return f"{first.url}{more}"
        if first.kind == "debian-source":
            return f"debian:{first.name}={first.version}{more}"
        return f"srpm:{first.name}{more}"

    @property
    def purpose(self) -> str:
        """What it is: LIBRARY, APPLICATION or OPERATING-SYSTEM (a kernel)."""
        paths = [f.path for f in self.files]
        if any(p.startswith("/boot/vmlinuz") for p in paths):
            return "OPERATING-SYSTEM"
        if any(re.search(r"/(s?bin)/[^/]+$", p) for p in paths):
            return "APPLICATION"
        if any(re.search(r"\.so(\.[0-9.]+)?$", p) for p in paths):
            return "LIBRARY"
        return "APPLICATION"


@dataclass
class Inventory:
    """What an image holds, package by package (see the module docstring)."""

    group: str  # group-cernvm
    version: str  # the group trove's full version
    arch: str
    source_date_epoch: int
    members: list[Member] = field(default_factory=list)

    @property
    def trove(self) -> str:
        return f"{self.group}={self.version}[is: {self.arch}]"

    @property
    def revision(self) -> str:
        return self.version.rsplit("/", 1)[-1]

    @property
    def created(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.source_date_epoch))

    def uuid(self, purpose: str) -> uuid.UUID:
        return uuid.uuid5(SBOM_NAMESPACE, f"{self.trove}/{purpose}")

    # ---------------------------------------------------------------- plain text

    def text(self) -> str:
        """The plain-text inventory: a header line, a column header, one line per package."""
        rows = [("PACKAGE", "VERSION", "ARCH", "KIND", "UPSTREAM SOURCE", "LICENSE")]
        for m in self.members:
            rows.append((m.name, m.version, m.arch or "noarch", m.kind, m.source_text,
                         m.license.expression if m.license else "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines = [f"inventory of {self.trove}: {len(self.members)} packages"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------- SPDX 2.3

    def spdx(self) -> dict:
        """The SPDX 2.3 document (a dict for ``json``)."""
        image_id = "SPDXRef-Image"
        packages = [{
            "SPDXID": image_id, "name": self.group, "versionInfo": self.version,
            "downloadLocation": NOASSERTION, "filesAnalyzed": False, "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION, "copyrightText": NOASSERTION, "supplier": NOASSERTION,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
            "comment": f"the appliance image {self.group}-{self.revision}-{self.arch}, built by appbuild from "
                       f"the group trove {self.trove}",
            "externalRefs": [_trove_ref(f"{self.group}={self.version}")],
        }]
        files, rels, refs, sources = [], [], {}, {}
        rels.append(_rel("SPDXRef-DOCUMENT", "DESCRIBES", image_id))
        for m in self.members:
            pid = _spdx_id("Package", m.name, m.kind, m.name, m.arch)
            for ref, name in (m.license.refs if m.license else ()):
                refs.setdefault(ref, name)
            pkg = {
                "SPDXID": pid, "name": m.name, "versionInfo": m.upstream,
                "downloadLocation": NOASSERTION, "filesAnalyzed": bool(m.files),
                "licenseConcluded": NOASSERTION,
                "licenseDeclared": m.license.expression if m.license else NOASSERTION,
                "copyrightText": NOASSERTION, "supplier": m.supplier or NOASSERTION,
                "primaryPackagePurpose": m.purpose,
                "sourceInfo": "; ".join(s.describe() for s in m.sources) or "not recorded",
                "comment": "appbuild troves: " + ", ".join(m.troves) + "".join(f"; {n}" for n in m.notes),
                "externalRefs": [
                    {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": m.purl},
                    _trove_ref(f"{m.name}={m.version}"),
                ],
            }
            if m.summary:
                pkg["summary"] = m.summary
            if m.homepage and m.homepage.startswith(("http://", "https://")):
                pkg["homepage"] = m.homepage
            if m.package_sha256:
                pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": m.package_sha256}]
                pkg["packageFileName"] = m.package_file
            urls = [s for s in m.sources if s.kind == "url"]
            if urls and _downloadable(urls[0].url):
                pkg["downloadLocation"] = urls[0].url
            if m.files:
                pkg["packageVerificationCode"] = {"packageVerificationCodeValue": hashlib.sha1(
                    "".join(sorted(f.sha1 for f in m.files)).encode()).hexdigest()}
            packages.append(pkg)
            rels.append(_rel(image_id, "CONTAINS", pid))
            for f in m.files:
                fid = _spdx_id("File", f.path.rsplit("/", 1)[-1], m.name, f.path)
                files.append({
                    "SPDXID": fid, "fileName": "." + f.path,
                    "checksums": [{"algorithm": "SHA1", "checksumValue": f.sha1},
                                  {"algorithm": "SHA256", "checksumValue": f.sha256}],
                    "licenseConcluded": NOASSERTION, "copyrightText": NOASSERTION,
                })
                rels.append(_rel(pid, "CONTAINS", fid))
            for s in m.sources:
                if s.kind == "file":
                    continue
                sid = _spdx_id("Source", s.name, s.kind, s.name, s.version, s.url)
                if sid not in sources:
                    sources[sid] = _spdx_source(sid, s)
                rels.append(_rel(pid, "GENERATED_FROM", sid))
        document = {
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": f"{self.group}-{self.revision}-{self.arch}",
            "documentNamespace": f"https://appbuild.invalid/spdx/{self.group}-{self.revision}-{self.arch}-"
                                 f"{self.uuid('spdx')}",
            "creationInfo": {"created": self.created, "creators": [f"Tool: {TOOL}"],
                             "licenseListVersion": "3.21"},
            "packages": packages + [sources[k] for k in sorted(sources)],
            "files": files,
            "relationships": rels,
        }
        if refs:
            document["hasExtractedLicensingInfos"] = [
                {"licenseId": ref, "name": name,
                 "extractedText": f"The license named '{name}' in an upstream package's license information "
                                  f"(a Debian copyright file or an RPM License tag); SPDX has no identifier for it."}
                for ref, name in sorted(refs.items())]
        return document

    # ---------------------------------------------------------------- CycloneDX 1.6

    def cyclonedx(self) -> dict:
        """The CycloneDX 1.6 BOM (a dict for ``json``)."""
        image_ref = f"image:{self.group}"
        components, depends = [], []
        for m in self.members:
            ref = f"pkg:{m.kind}:{m.name}:{m.arch or 'noarch'}"
            depends.append(ref)
            comp = {
                "type": {"OPERATING-SYSTEM": "operating-system", "LIBRARY": "library"}.get(m.purpose, "application"),
                "bom-ref": ref, "name": m.name, "version": m.upstream, "purl": m.purl,
            }
            if m.supplier.startswith("Organization: "):
                comp["supplier"] = {"name": m.supplier.removeprefix("Organization: ")}
            if m.summary:
                comp["description"] = m.summary
            if m.package_sha256:
                comp["hashes"] = [{"alg": "SHA-256", "content": m.package_sha256}]
            if m.license:
                comp["licenses"] = [{"expression": m.license.expression}]
            external = []
            if m.homepage and m.homepage.startswith(("http://", "https://")):
                external.append({"type": "website", "url": m.homepage})
            for s in m.sources:
                if s.kind == "url":
                    external.append({"type": "source-distribution", "url": s.url,
                                     "hashes": [{"alg": "SHA-256", "content": s.sha256}]})
            if external:
                comp["externalReferences"] = external
            ancestors = [_cdx_source(s) for s in m.sources if s.kind in ("debian-source", "rpm-source")]
            if ancestors:
                comp["pedigree"] = {"ancestors": ancestors}
            props = [{"name": "appbuild:trove", "value": t} for t in m.troves]
            props.append({"name": "appbuild:version", "value": m.version})
            props += [{"name": "appbuild:source", "value": s.describe()} for s in m.sources]
            if m.package_file:
                props.append({"name": "appbuild:package-file", "value": m.package_file})
            comp["properties"] = props
            if m.files:
                comp["components"] = [{
                    "type": "file", "bom-ref": f"{ref}:{f.path}", "name": f.path,
                    "hashes": [{"alg": "SHA-1", "content": f.sha1}, {"alg": "SHA-256", "content": f.sha256}],
                } for f in m.files]
            components.append(comp)
        return {
            "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "serialNumber": f"urn:uuid:{self.uuid('cyclonedx')}",
            "version": 1,
            "metadata": {
                "timestamp": self.created,
                "tools": {"components": [{"type": "application", "name": "appbuild", "version": __version__}]},
                "component": {
                    "type": "operating-system", "bom-ref": image_ref, "name": self.group, "version": self.version,
                    "description": f"the appliance image {self.group}-{self.revision}-{self.arch}",
                    "properties": [{"name": "appbuild:trove", "value": self.trove},
                                   {"name": "appbuild:arch", "value": self.arch}],
                },
            },
            "components": components,
            "dependencies": [{"ref": image_ref, "dependsOn": depends}] + [{"ref": d} for d in depends],
        }

    # ---------------------------------------------------------------- files

    def sbom_bytes(self) -> dict[str, bytes]:
        """suffix -> bytes of each SBOM (``.spdx.json``, ``.cdx.json``)."""
        return {SPDX_SUFFIX: _json(self.spdx()), CDX_SUFFIX: _json(self.cyclonedx())}

    def image_files(self, sboms: dict[str, bytes] | None = None) -> list[tuple[str, bytes]]:
        """``(path, content)`` of what the image carries: both SBOMs (*sboms*, made if not
        given) and the text inventory."""
        sboms = sboms or self.sbom_bytes()
        return [(SPDX_PATH, sboms[SPDX_SUFFIX]), (CDX_PATH, sboms[CDX_SUFFIX]),
                (INVENTORY_PATH, self.text().encode())]


def _json(data: dict) -> bytes:
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()


def _spdx_id(kind: str, readable: str, *key: str | None) -> str:
    """``SPDXRef-KIND-READABLE-HASH``: readable, and unique through a hash of *key*."""
    digest = hashlib.sha256("\0".join(k or "" for k in key).encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9.]+", "-", readable)[-40:].strip("-.")
    return f"SPDXRef-{kind}-{readable}-{digest}" if readable else f"SPDXRef-{kind}-{digest}"


def _rel(a: str, kind: str, b: str) -> dict:
    return {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}


def _trove_ref(locator: str) -> dict:
    return {"referenceCategory": "OTHER", "referenceType": "appbuild-trove", "referenceLocator": locator}


def _downloadable(url: str) -> bool:
    return url.startswith(("http://", "https://", "ftp://"))


def _spdx_source(sid: str, s: Source) -> dict:
    pkg = {
        "SPDXID": sid, "name": s.name, "downloadLocation": s.url if _downloadable(s.url) else NOASSERTION,
        "filesAnalyzed": False, "licenseConcluded": NOASSERTION, "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION, "primaryPackagePurpose": "SOURCE",
    }
    if s.version:
        pkg["versionInfo"] = s.version
    if s.sha256:
        pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": s.sha256}]
    if s.kind == "debian-source" and s.sha256:
        pkg["comment"] = "the checksum is the sha256 of the source package's .dsc"
    if s.purl:
        pkg["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                "referenceLocator": s.purl}]
    return pkg


def _cdx_source(s: Source) -> dict:
    comp = {"type": "application", "name": s.name}
    if s.version:
        comp["version"] = s.version
    if s.purl:
        comp["purl"] = s.purl
    if s.sha256:
        comp["hashes"] = [{"alg": "SHA-256", "content": s.sha256}]
    return comp


# ---------------------------------------------------------------- from the repository


def make_inventory(repo: Repository, group: Trove, troves: list[Trove], *, arch: str, source_date_epoch: int,
                   skip: set[str] = frozenset(), sha1_cache: Path | None = None) -> Inventory:
    """The inventory of an image of *group* holding the component *troves* (minus *skip* paths);
    *sha1_cache*: an sqlite file keeping the files' SHA-1s between builds."""
    return inventory_maker(repo, group, troves, arch=arch, source_date_epoch=source_date_epoch, skip=skip,
                           sha1_cache=sha1_cache)()


def inventory_maker(repo: Repository, group: Trove, troves: list[Trove], *, arch: str, source_date_epoch: int,
                    skip: set[str] = frozenset(), sha1_cache: Path | None = None) -> Callable[[], Inventory]:
    """:func:`make_inventory` in two steps: what it needs from the repository's index is read
    now, on this thread; the function returned reads only contents (and the SHA-1 cache), so
    another thread may make the inventory while this one goes on."""
    by_package: dict[tuple, list[Trove]] = {}
    for t in troves:
        by_package.setdefault((t.package, str(t.version), str(t.flavor)), []).append(t)
    packages = {key: _package_trove(repo, key[0], comps[0]) for key, comps in by_package.items()}
    return functools.partial(_make_inventory, repo, group, troves, by_package, packages, arch=arch,
                             source_date_epoch=source_date_epoch, skip=skip, sha1_cache=sha1_cache)


def _make_inventory(repo: Repository, group: Trove, troves: list[Trove], by_package: dict[tuple, list[Trove]],
                    packages: dict[tuple, Trove | None], *, arch: str, source_date_epoch: int, skip: set[str],
                    sha1_cache: Path | None) -> Inventory:
    hashes = _Sha1s(repo, sha1_cache)
    hashes.prefetch(f.sha256 for t in troves for f in t.files
                    if f.type in ("file", "hardlink") and f.sha256 and f.path not in skip)
    in_group = {str(n) for n in group.members}
    inv = Inventory(group.name, str(group.version), arch, source_date_epoch)
    for key, comps in sorted(by_package.items()):
        name, first, package = key[0], comps[0], packages[key]
        files = [MemberFile(f.path, f.sha256, hashes.of(f.sha256), f.size)
                 for t in comps for f in t.files
                 if f.type in ("file", "hardlink") and f.sha256 and f.path not in skip]
        member = Member(
            name=name, version=str(first.version), upstream=first.version.upstream, arch=first.flavor.arch,
            kind="cooked", troves=sorted({str(t.nvf) for t in ([package] if package else []) + comps} & in_group),
            purl="", files=sorted(files, key=lambda f: f.path),
        )
        capsule = first.info.get("capsule")
        if capsule == "deb":
            _deb_member(member, repo, first, package)
        elif capsule == "rpm":
            _rpm_member(member, first, package)
        else:
            _cooked_member(member, package)
        inv.members.append(member)
    hashes.keep()
    return inv


def _package_trove(repo: Repository, name: str, component: Trove) -> Trove | None:
    try:
        return repo.get(NVF(name, component.version, component.flavor), with_files=False)
    except RepositoryError:  # a closure may hold a component without its package trove
        return None


class _Sha1s:
    """SHA-1 of stored contents (read once per content, verified against its sha256 by the store).

    With *cache* (:mod:`appbuilder.repository.sha1s`), the SHA-1s found are kept by sha256
    for the next inventory, so a rebuild does not read every file again."""

    def __init__(self, repo: Repository, cache: Path | None = None):
        self.repo = repo
        self.cache = cache
        self.known: dict[str, str] = sha1s.load(cache)
        self.new: dict[str, str] = {}

    def of(self, sha256: str) -> str:
        if sha256 not in self.known:
            self.known[sha256] = self.new[sha256] = self._read(sha256)
        return self.known[sha256]

    def _read(self, sha256: str) -> str:
        h = hashlib.sha1()
        with self.repo.store.open(sha256) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()

    def prefetch(self, digests) -> None:
        """Find the SHA-1s of *digests* not known yet, a few at once (decompressing and
        hashing leave the interpreter free: on two processors, nearly twice as fast)."""
        from concurrent.futures import ThreadPoolExecutor

        from appbuilder.core.cpus import usable_cpus

        wanted = sorted({d for d in digests if d not in self.known})
        if not wanted:
            return
        with ThreadPoolExecutor(usable_cpus(), thread_name_prefix="sha1") as pool:
            for digest, sha1 in zip(wanted, pool.map(self._read, wanted)):
                self.known[digest] = self.new[digest] = sha1

    def keep(self) -> None:
        """Write the SHA-1s found since the cache was read (one transaction)."""
        sha1s.keep(self.cache, self.new)
        self.new.clear()


def _deb_member(m: Member, repo: Repository, comp: Trove, package: Trove | None) -> None:
    fields = control_fields(repo.store, comp)
    m.kind = "deb"
    version, arch = fields["Version"], fields["Architecture"]
    src_name, _, src_version = fields.get("Source", m.name).partition(" ")
    src_version = src_version.strip().strip("()") or version
    upstream_q = src_name if src_version == version else f"{src_name}@{src_version}"
    qualifiers = {"arch": arch, **({"upstream": upstream_q} if src_name != m.name or src_version != version else {})}
    m.upstream = version
    m.purl = PackageURL(type="deb", namespace="debian", name=m.name, version=version, qualifiers=qualifiers).to_string()
    m.sources = [Source("debian-source", src_name, src_version, purl=PackageURL(
        type="deb", namespace="debian", name=src_name, version=src_version, qualifiers={"arch": "source"}).to_string())]
    m.homepage = fields.get("Homepage", "")
    m.summary = fields.get("Description", "").split("\n", 1)[0]
    m.supplier = "Organization: Debian"
    if package is not None:
        m.package_file = package.info.get("source", "")
        m.package_sha256 = package.info.get("capsule_sha256", "")
    copyright_file = next((f for f in comp.files if f.path == f"/usr/share/doc/{m.name}/copyright"
                           and f.type == "file" and f.sha256), None)
    if copyright_file is not None:
        m.license = dep5_license(repo.store.read(copyright_file.sha256).decode(errors="replace"))
        if m.license is None:
            m.notes.append(f"license: /usr/share/doc/{m.name}/copyright is not machine-readable")


def _rpm_member(m: Member, comp: Trove, package: Trove | None) -> None:
    info = comp.info.get("rpm", {})
    m.kind = "rpm"
    epoch = info.get("epoch")
    evr = f"{info.get('version', '')}-{info.get('release', '')}"
    m.upstream = f"{epoch}:{evr}" if epoch not in (None, "", 0, "0") else evr
    vendor = re.sub(r"[^a-z0-9.]+", "-", (info.get("vendor") or "").lower()).strip("-") or None
    qualifiers = {"arch": info.get("arch") or "noarch"}
    if epoch not in (None, "", 0, "0"):
        qualifiers["epoch"] = str(epoch)
    srpm = info.get("sourcerpm", "")
    if srpm:
        qualifiers["upstream"] = srpm
    m.purl = PackageURL(type="rpm", namespace=vendor, name=info.get("name") or m.name, version=evr,
                        qualifiers=qualifiers).to_string()
    nevra = package.info.get("upstream_name", "") if package else ""
    m.notes.append(f"RPM {nevra or m.name + '-' + m.upstream}")
    if srpm:
        srpm_match = re.match(r"^(.+)-([^-]+)-([^-]+)\.(?:no)?src\.rpm$", srpm)
        name, version = (srpm_match.group(1), f"{srpm_match.group(2)}-{srpm_match.group(3)}") if srpm_match \
            else (srpm, "")
        m.sources = [Source("rpm-source", srpm, version, purl=PackageURL(
            type="rpm", namespace=vendor, name=name, version=version or None, qualifiers={"arch": "src"}).to_string())]
    m.summary = info.get("summary", "")
    m.homepage = info.get("url", "")
    if info.get("vendor"):
        m.supplier = f"Organization: {info['vendor']}"
    if info.get("license"):
        m.license = map_license(info["license"])
    if package is not None:
        m.package_file = package.info.get("source", "")
        m.package_sha256 = package.info.get("capsule_sha256", "")


def _cooked_member(m: Member, package: Trove | None) -> None:
    info = package.info if package is not None else {}
    recorded = info.get("sources")
    sources = []
    for s in recorded or []:
        if s.get("debian_source"):
            sources.append(Source("debian-source", s["debian_source"], s.get("version", ""),
                                  sha256=s.get("dsc_sha256") or "", purl=PackageURL(
                                      type="deb", namespace="debian", name=s["debian_source"],
                                      version=s.get("version") or None, qualifiers={"arch": "source"}).to_string()))
        elif s.get("url"):
            sources.append(Source("url", s["url"].rsplit("/", 1)[-1], url=s["url"], sha256=s.get("sha256") or ""))
        elif s.get("file"):
            sources.append(Source("file", s["file"], sha256=s.get("sha256") or ""))
    # what the package was made from first: fetched sources, then the recipe's own files
    m.sources = sorted(sources, key=lambda s: s.kind == "file")
    if recorded is None:
        m.notes.append("sources: not recorded (cooked before appbuild recorded them)")
    if info.get("recipe"):
        m.notes.append(f"recipe: recipes/{info['recipe']}")
    qualifiers = {}
    url = next((s for s in m.sources if s.kind == "url"), None)
    if url is not None:
        qualifiers = {"download_url": url.url, "checksum": f"sha256:{url.sha256}"}
    m.purl = PackageURL(type="generic", name=m.name, version=m.upstream, qualifiers=qualifiers or None).to_string()
    if info.get("license"):
        m.license = License(info["license"])
