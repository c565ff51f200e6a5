"""The provenance of an image build: an in-toto v1 Statement with a SLSA Provenance v1 predicate.

Every build into the image store writes ``<basename>.provenance.json`` beside the images
(recorded in ``manifest.json`` like them, its name under ``provenance``); ``publish``
puts it, signed with the release key, into the release as a DSSE envelope
(``<basename>.intoto.jsonl``, see ``release/dsse.py``), and ``appbuild verify RELEASE``
checks it. The statement says::

    _type           https://in-toto.io/Statement/v1
    subject         every image file of the directory: name and sha256
    predicateType   https://slsa.dev/provenance/v1
    predicate.buildDefinition
      buildType           BUILD_TYPE: appbuild's build of an image group (this module)
      externalParameters  group, version (the group trove's), arch, formats (and size, when given)
      internalParameters  sourceDateEpoch, diskSize, kernel: what appbuild derived from the pins
      resolvedDependencies  the materials, each a ResourceDescriptor whose
                            annotations.appbuild says what it is:
        group-recipe      groups/NAME.py with its sha256 (as the group trove records it)
        group             the group trove
        trove             every pin of the group trove (name=version[flavor], as manifest.json
                          lists them); digest: sha256 of the trove's canonical manifest
                          (:func:`trove_digest`)
        recipe            each file of the recipe directory that cooked a member, with its
                          sha256, as the cook recorded them (for a package cooked before
                          appbuild recorded them: the workspace's recipe when its source hash
                          is the trove's; else the directory with the recorded source hash)
        source            what those recipes fetched, as the cook recorded it: URLs pinned by
                          sha256, Debian source packages
                          (``pkg:deb/debian/NAME@VERSION?arch=source``, the .dsc's sha256)
        upstream-package  each imported DEB or RPM: its package URL (purl), file name and sha256
        toolchain         the toolchain group the cooked members were built with
    predicate.runDetails.builder
      id        BUILDER_ID/appbuild@VERSION (+git.COMMIT when appbuild runs from a git checkout)
      version   {"appbuild": VERSION, "commit": COMMIT}

There is no ``runDetails.metadata``: its start and finish times would make two builds of
the same bytes differ. The statement depends on the repository's records of the pins and
on the builder alone, not on the workspace or the clock: the same build gives the same
bytes (sorted keys, sorted lists), wherever it runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields

from packageurl import PackageURL

from appbuilder import __version__
from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import Settings
from appbuilder.cook.inputs import recipe_files, source_hash
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import FileEntry, Trove
from appbuilder.repository.versions import NVF
from appbuilder.store.manifest import Manifest

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# appbuild has no web home yet: .invalid names it without pointing at anyone's server
HOME = "https://appbuild.invalid"
BUILD_TYPE = f"{HOME}/buildtypes/group-image/v1"
BUILDER_ID = f"{HOME}/builder"
SUFFIX = ".provenance.json"

# what each material is (annotations.appbuild)
GROUP_RECIPE, GROUP, TROVE, RECIPE, SOURCE, UPSTREAM, TOOLCHAIN = (
    "group-recipe", "group", "trove", "recipe", "source", "upstream-package", "toolchain")


class ProvenanceError(AppbuildError):
    """A provenance statement that cannot be read or is not what appbuild writes."""


def file_name(basename: str) -> str:
    """``group-cernvm-1.0-1-1-x86_64`` -> ``group-cernvm-1.0-1-1-x86_64.provenance.json``."""
    return basename + SUFFIX


FILE_FIELDS = tuple(f.name for f in fields(FileEntry))  # a file entry's fields are plain values: no asdict() copies


def trove_digest(trove: Trove) -> str:
    """sha256 of a trove's canonical manifest: its identity, kind, members, recorded source
    and input hashes, and every file entry (path, type, mode, owners, size, content sha256,
    link target, device, mtime), as sorted compact JSON. Anyone holding the repository can
    compute it again."""
    doc = {
        "trove": str(trove.nvf), "kind": trove.kind, "members": sorted(map(str, trove.members)),
        "source_hash": trove.info.get("source_hash"), "input_hash": trove.info.get("input_hash"),
        "files": [{name: getattr(f, name) for name in FILE_FIELDS} for f in sorted(trove.files, key=lambda f: f.path)],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _material(kind: str, *, name: str | None = None, uri: str | None = None, sha256: str | None = None,
              **annotations) -> dict:
    entry: dict = {}
    if name:
        entry["name"] = name
    if uri:
        entry["uri"] = uri
    if sha256:
        entry["digest"] = {"sha256": sha256}
    entry["annotations"] = {"appbuild": kind, **{k: v for k, v in annotations.items() if v is not None}}
    return entry


def _purl_deb(info: dict) -> str | None:
    deb = info.get("deb") or {}
    if not deb.get("package") or not deb.get("version"):
        return None
    qualifiers = {"arch": deb["architecture"]} if deb.get("architecture") else None
    return PackageURL(type="deb", namespace="debian", name=deb["package"], version=deb["version"],
                      qualifiers=qualifiers).to_string()


def _purl_rpm(info: dict) -> str | None:
    rpm = info.get("rpm") or {}
    if not rpm.get("name") or not rpm.get("version"):
        return None
    qualifiers = {k: str(v) for k, v in (("arch", rpm.get("arch")), ("epoch", rpm.get("epoch"))) if v}
    version = f"{rpm['version']}-{rpm['release']}" if rpm.get("release") else rpm["version"]
    return PackageURL(type="rpm", name=rpm["name"], version=version, qualifiers=qualifiers or None).to_string()


def _recipe_materials(settings: Settings, package: str, info: dict) -> list[dict]:
    """The recipe files and fetched sources of one cooked package."""
    where = f"recipes/{info['recipe']}"
    directory = settings.recipes_dir / info["recipe"]
    recorded = info.get("sources")  # as the cook recorded them (None: cooked before it did)
    out = []
    if info.get("recipe_files") is not None:  # as the cook recorded them
        out += [_material(RECIPE, name=f"{where}/{rel}", sha256=digest, package=package)
                for rel, digest in sorted(info["recipe_files"].items())]
    elif directory.is_dir() and source_hash(directory) == info.get("source_hash"):
        out += [_material(RECIPE, name=f"{where}/{rel}", sha256=digest, package=package)
                for rel, digest in sorted(recipe_files(directory).items())]
    else:
        out.append(_material(RECIPE, name=f"{where}/", package=package, sourceHash=info.get("source_hash"),
                             note="the workspace's recipe is not the one that cooked it: only the files the cook "
                                  "recorded are listed"))
        out += [_material(RECIPE, name=f"{where}/{s['file']}", sha256=s.get("sha256"), package=package)
                for s in recorded or [] if s.get("file")]
    if recorded is None:
        out.append(_material(SOURCE, name=f"{where}: sources", package=package,
                             note="not recorded (cooked before appbuild recorded its sources)"))
    for s in recorded or []:
        if s.get("debian_source"):
            uri = PackageURL(type="deb", namespace="debian", name=s["debian_source"], version=s.get("version") or None,
                             qualifiers={"arch": "source"}).to_string()
            out.append(_material(SOURCE, name=f"{s['debian_source']} {s.get('version', '')} (.dsc)", uri=uri,
                                 sha256=s.get("dsc_sha256"), package=package))
        elif s.get("url"):
            out.append(_material(SOURCE, uri=s["url"], sha256=s.get("sha256"), package=package))
    return out


def materials(settings: Settings, repo: Repository, group: Trove, loaded: list[Trove] = ()) -> list[dict]:
    """The resolved dependencies of a build of *group* (see the module docstring), sorted.
    *loaded*: member troves already read with their files (the staged components)."""
    out = []
    info = group.info
    if info.get("source_hash"):
        out.append(_material(GROUP_RECIPE, name=f"groups/{info.get('recipe') or group.name + '.py'}",
                             sha256=info["source_hash"]))
    out.append(_material(GROUP, name=str(group.nvf), sha256=trove_digest(group)))

    by_nvf = {str(t.nvf): t for t in loaded}
    packages: dict[str, Trove] = {}
    for member in group.members:
        trove = by_nvf.get(str(member)) or repo.get(member)
        by_nvf[str(member)] = trove
        out.append(_material(TROVE, name=str(member), sha256=trove_digest(trove)))
        package = NVF(member.name.split(":", 1)[0], member.version, member.flavor)
        if str(package) not in packages:
            found = by_nvf.get(str(package))
            if found is None:
                try:
                    found = repo.get(package, with_files=False)
                except AppbuildError:
                    found = None
            if found is not None:
                packages[str(package)] = found

    toolchains: set[str] = set()
    for key, package in sorted(packages.items()):
        pinfo = package.info
        if pinfo.get("capsule"):
            component = next((by_nvf[str(m)] for m in package.members if str(m) in by_nvf), None)
            cinfo = component.info if component is not None else {}
            uri = _purl_deb(cinfo) if pinfo["capsule"] == "deb" else _purl_rpm(cinfo)
            source = (cinfo.get("deb") or {}).get("source") if pinfo["capsule"] == "deb" else \
                (cinfo.get("rpm") or {}).get("sourcerpm")
            out.append(_material(UPSTREAM, name=pinfo.get("source"), uri=uri, sha256=pinfo.get("capsule_sha256"),
                                 package=key, upstreamSource=source or None))
        elif pinfo.get("recipe"):
            if pinfo.get("toolchain"):
                toolchains.add(pinfo["toolchain"])
            out += _recipe_materials(settings, key, pinfo)
    for toolchain in sorted(toolchains):
        digest = None
        try:
            digest = trove_digest(repo.get(NVF.parse(toolchain), with_files=False))
        except AppbuildError:
            pass
        out.append(_material(TOOLCHAIN, name=toolchain, sha256=digest))

    unique = {json.dumps(m, sort_keys=True): m for m in out}
    return [unique[k] for k in sorted(unique, key=lambda k: (unique[k]["annotations"]["appbuild"],
                                                             unique[k].get("name", ""), unique[k].get("uri", ""), k))]


def builder(identity: dict) -> dict:
    """``runDetails.builder`` for appbuild's identity (``manifest.builder_identity()``)."""
    version = identity.get("version") or __version__
    commit = identity.get("commit")
    return {"id": f"{BUILDER_ID}/appbuild@{version}" + (f"+git.{commit}" if commit else ""),
            "version": {"appbuild": version, **({"commit": commit} if commit else {})}}


def statement(manifest: Manifest, resolved: list[dict], *, size: int | None = None) -> dict:
    """The statement for the image files *manifest* records (see the module docstring)."""
    names = sorted({n for paths in manifest.formats.values() for n in paths})
    missing = [n for n in names if n not in manifest.files]
    if missing:
        raise ProvenanceError(f"the manifest of {manifest.trove} lists {', '.join(missing)} without a checksum")
    external = {"group": manifest.group, "version": manifest.version, "arch": manifest.arch,
                "formats": sorted(manifest.formats)}
    if size:
        external["size"] = size
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": manifest.files[n]["sha256"]}} for n in names],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"sourceDateEpoch": manifest.source_date_epoch,
                                       "diskSize": manifest.disk_size, "kernel": manifest.kernel},
                "resolvedDependencies": resolved,
            },
            "runDetails": {"builder": builder(manifest.builder)},
        },
    }


def render(doc: dict) -> bytes:
    """The statement's bytes: sorted keys, two-space indent, UTF-8, a final newline."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def load(data: bytes, where: str) -> dict:
    """A statement read back, checked to be an in-toto v1 Statement with a SLSA v1 predicate."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProvenanceError(f"{where}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
        raise ProvenanceError(f"{where}: not an in-toto v1 Statement (_type is not {STATEMENT_TYPE})")
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise ProvenanceError(f"{where}: predicateType is {doc.get('predicateType')!r}, not {PREDICATE_TYPE}")
    if not isinstance(doc.get("subject"), list) or not isinstance(doc.get("predicate"), dict) \
            or not isinstance(doc["predicate"].get("buildDefinition"), dict):
        raise ProvenanceError(f"{where}: the statement lacks its subject or buildDefinition")
    return doc


def subjects(doc: dict) -> dict[str, str]:
    """name -> sha256 of the statement's subjects."""
    return {str(s.get("name")): str((s.get("digest") or {}).get("sha256")) for s in doc["subject"]
            if isinstance(s, dict)}


def pinned(doc: dict) -> set[str]:
    """The trove pins among the statement's materials (name=version[flavor])."""
    deps = doc["predicate"]["buildDefinition"].get("resolvedDependencies") or []
    return {str(d.get("name")) for d in deps if isinstance(d, dict)
            and (d.get("annotations") or {}).get("appbuild") == TROVE}


def restrict(data: bytes, names: set[str], where: str) -> bytes:
    """The statement with its subjects narrowed to *names* (the files a release carries
    when it publishes some formats only); the bytes unchanged when nothing is left out."""
    doc = load(data, where)
    kept = [s for s in doc["subject"] if s.get("name") in names]
    absent = names - {s.get("name") for s in kept}
    if absent:
        raise ProvenanceError(f"{where} does not name {', '.join(sorted(absent))} among its subjects")
    if len(kept) == len(doc["subject"]):
        return data
    doc["subject"] = kept
    return render(doc)
