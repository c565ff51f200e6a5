"""``appbuild publish``, ``appbuild rollback``: put recorded images on a download server, and
choose which release it offers as current.

Publishing ``group-NAME=VERSION`` takes the images the image store recorded for that
version (every arch it holds, or ``--arch``; every format, or ``--format``) and writes
for each arch ``GROUP/VERSION/ARCH/`` on the destination: the image files (each checked
against the sha256 in the store's manifest while it is copied), the image's SBOMs
(``NAME.spdx.json``, ``NAME.cdx.json``, checked the same way), ``NAME.intoto.jsonl``
(the build's provenance statement, its subjects narrowed to the files published, in a
DSSE envelope signed with the release key: see ``dsse.py``), ``manifest.json`` (the
pins and checksums of this release), ``SHA256SUMS`` and its detached OpenPGP signature
``SHA256SUMS.asc`` (``appbuild verify`` checks such a tree: ``verify/release.py``). Only
then is the group's release index rewritten to list the release (and, unless
``--no-current``, to make it current), then the destination's front page.
Everything happens under the destination's lock; on any failure the release trees
written so far are removed and the index is left as it was (see ``destination.py``).

A release is immutable once published: publishing the same files again changes
nothing; different files under a published version, or a withdrawn version, are
refused. ``--keep N`` prunes the oldest nightlies beyond N (never a current one, never
the ``release`` channel): first from the index, then their files.

``rollback`` re-points current to a published release, for one arch or all it has,
and marks the release it replaces *withdrawn* (it stays listed, and can never be made
current again). Nothing is rebuilt and no image is copied: only the index changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from appbuilder.core.errors import AppbuildError
from appbuilder.release.destinations import (
    ChecksumError,
    Destination,
    DestinationError,
    ReleaseFile,
    open_destination,
)
from appbuilder.release.index import (
    CHANNELS,
    FEED,
    PAGE,
    ArchRelease,
    Release,
    ReleaseIndex,
    ReleaseIndexError,
    groups_page,
)
from appbuilder.release import dsse
from appbuilder.release.signing import Signer
from appbuilder.store import provenance
from appbuilder.store.images import ImageStore
from appbuilder.store.manifest import Manifest, utc_now

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.asc"
RELEASE_MANIFEST = "manifest.json"
SIGNING_KEY = "signing-key.asc"
ENVELOPE_SUFFIX = ".intoto.jsonl"  # the build's provenance, a DSSE envelope (dsse.py)


class PublishError(AppbuildError):
    """A publish, rollback or prune was refused; the destination is unchanged."""


@dataclass
class PublishRequest:
    group: str
    version: str  # a revision (1.0-1-3) or a full version (label/1.0-1-3)
    destination: str  # a directory or s3://bucket/prefix
    arches: list[str] | None = None  # default: every arch the store holds for the version
    formats: list[str] | None = None  # default: every format recorded
    channel: str = "release"
    make_current: bool = True
    keep: int | None = None  # prune nightlies beyond this many
    endpoint_url: str | None = None
    lock_timeout: float = 60.0


@dataclass
class PublishResult:
    destination: str
    group: str
    version: str
    published: list[str] = field(default_factory=list)  # arches written now
    unchanged: list[str] = field(default_factory=list)  # arches already there with the same files
    current: dict[str, str] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    bytes: int = 0


# ---------------------------------------------------------------- helpers


def parse_spec(spec: str) -> tuple[str, str]:
    """``group-NAME=VERSION`` -> (group, revision)."""
    group, sep, version = spec.partition("=")
    if not sep or not group or not version:
        raise PublishError(f"name a group version: group-NAME=VERSION (got {spec!r})")
    return group, version.rsplit("/", 1)[-1]


def load_index(dest: Destination, group: str) -> ReleaseIndex:
    data = dest.read(f"{group}/{FEED}")
    if data is None:
        return ReleaseIndex.empty(group)
    index = ReleaseIndex.parse(data, f"{dest.url}/{group}/{FEED}")
    if index.group != group:
        raise ReleaseIndexError(f"{dest.url}/{group}/{FEED} is the index of {index.group}, not {group}")
    return index


def write_indexes(dest: Destination, index: ReleaseIndex, *, signing_key: bytes | None = None) -> None:
    """The group's feed and page, then the front page (each atomically, in that order)."""
    others = []
    for name in dest.groups():
        if name != index.group:
            data = dest.read(f"{name}/{FEED}")
            if data is not None:
                try:
                    others.append(ReleaseIndex.parse(data, name))
                except ReleaseIndexError:
                    continue  # a broken index elsewhere does not block this group
    groups = sorted([index, *others], key=lambda i: i.group)
    items = []
    if signing_key is not None:
        items.append((SIGNING_KEY, signing_key))
    items += [(f"{index.group}/{FEED}", index.feed()), (f"{index.group}/{PAGE}", index.page()),
              (PAGE, groups_page(groups, index.updated))]
    dest.write_index(items, guard=f"{index.group}/{FEED}")


def _sums(files: dict[str, str]) -> bytes:
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(files.items())).encode()


@dataclass
class _ArchPlan:
    arch: str
    manifest: Manifest
    formats: dict[str, list[str]]
    files: list[ReleaseFile]
    records: dict[str, dict]  # name -> {size, sha256}
    signed_by: str | None


def _plan(store: ImageStore, req: PublishRequest, signer: Signer | None, fingerprint: str | None,
          scratch: Path) -> list[_ArchPlan]:
    images = store.find(req.group, req.version) if not req.arches else \
        [i for arch in req.arches for i in store.find(req.group, req.version, arch)]
    plans = []
    for image in images:
        m = image.manifest
        formats = dict(m.formats)
        if req.formats:
            missing = [f for f in req.formats if f not in formats]
            if missing:
                raise PublishError(f"{req.group}={m.revision} ({image.arch}) was not built in "
                                   f"{', '.join(missing)}; recorded formats: {', '.join(sorted(formats))}")
            formats = {f: formats[f] for f in req.formats}
        # the images, and the SBOMs that describe them (whatever formats are published)
        names = sorted({n for paths in formats.values() for n in paths} | set(m.sboms))
        files = []
        for name in names:
            source = image.directory / name
            if not source.is_file():
                raise ChecksumError(f"{source} is recorded in its manifest but missing from the image store")
            entry = m.files[name]
            files.append(ReleaseFile(name, entry["sha256"], entry["size"], source=source))
        release_manifest = {
            "group": m.group, "trove": m.trove, "version": m.version, "arch": m.arch, "members": m.members,
            "named": m.named, "formats": formats, "files": {n: m.files[n] for n in names}, "builder": m.builder,
            "kernel": m.kernel, "built": m.built, "source_date_epoch": m.source_date_epoch,
        }
        envelope = _provenance(image.directory, m, sorted({n for paths in formats.values() for n in paths}), signer)
        if envelope:
            release_manifest["provenance"] = envelope[0]
        data = (json.dumps(release_manifest, indent=2, sort_keys=True) + "\n").encode()
        small = {**dict([envelope] if envelope else []), RELEASE_MANIFEST: data}
        shas = {f.name: f.sha256 for f in files}
        shas.update({name: hashlib.sha256(blob).hexdigest() for name, blob in small.items()})
        sums = _sums(shas)
        small[SUMS] = sums
        if signer is not None:
            sums_path = scratch / f"{image.arch}.{SUMS}"
            sums_path.write_bytes(sums)
            signer.sign(sums_path, scratch / f"{image.arch}.{SIGNATURE}")
            small[SIGNATURE] = (scratch / f"{image.arch}.{SIGNATURE}").read_bytes()
        for name, blob in small.items():  # small files last: SHA256SUMS and its signature at the very end
            files.append(ReleaseFile(name, hashlib.sha256(blob).hexdigest(), len(blob), data=blob))
        records = {f.name: {"size": f.size, "sha256": f.sha256} for f in files if f.source is not None}
        plans.append(_ArchPlan(image.arch, m, formats, files, records, fingerprint))
    return plans


def _provenance(directory: Path, m: Manifest, names: list[str], signer: Signer | None) -> tuple[str, bytes] | None:
    """``NAME.intoto.jsonl``: the build's provenance statement (its subjects narrowed to the
    files published) in a DSSE envelope signed with the release key; unsigned with --unsigned."""
    if not m.provenance:
        return None  # built before appbuild wrote provenance
    source = directory / m.provenance
    entry = m.files.get(m.provenance)
    if entry is None or not source.is_file():
        raise ChecksumError(f"{source} is recorded in its manifest but missing from the image store")
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ChecksumError(f"{source} no longer matches its recorded checksum")
    payload = provenance.restrict(data, set(names), str(source))
    return m.provenance.removesuffix(provenance.SUFFIX) + ENVELOPE_SUFFIX, dsse.sign(payload, signer).line()


# ---------------------------------------------------------------- publish


def publish(store: ImageStore, req: PublishRequest, signer: Signer | None,
            say: Callable[[str], None] = print) -> PublishResult:
    """Publish one recorded group version to a destination (see the module docstring)."""
    if req.channel not in CHANNELS:
        raise PublishError(f"unknown channel {req.channel!r}; channels: {', '.join(CHANNELS)}")
    req = dataclasses.replace(req, version=req.version.rsplit("/", 1)[-1])  # label/1.0-1-3 names 1.0-1-3
    dest = open_destination(req.destination, endpoint_url=req.endpoint_url)
    fingerprint = signer.fingerprint() if signer else None
    with tempfile.TemporaryDirectory(prefix="appbuild-publish-") as tmp:
        plans = _plan(store, req, signer, fingerprint, Path(tmp))
        if signer is None and any(p.manifest.provenance for p in plans):
            say("publishing --unsigned: the provenance (NAME.intoto.jsonl) goes out in an envelope without "
                "a signature, which verifiers refuse")
        result = PublishResult(dest.url, req.group, req.version)
        with dest.lock(req.lock_timeout):
            index = load_index(dest, req.group)
            existing = index.get(req.version)
            todo: dict[str, list[ReleaseFile]] = {}
            for plan in plans:
                entry = existing.arches.get(plan.arch) if existing else None
                if entry is None:
                    todo[plan.arch] = plan.files
                    continue
                if entry.withdrawn:
                    raise PublishError(f"{req.group}={req.version} ({plan.arch}) was withdrawn from {dest.url} on "
                                       f"{entry.withdrawn}; a withdrawn release is not published again. Build and "
                                       f"publish a new version instead")
                same = {n: {"size": f["size"], "sha256": f["sha256"]} for n, f in entry.files.items()} == plan.records
                if not same:
                    raise PublishError(f"{req.group}={req.version} ({plan.arch}) is already published at {dest.url} "
                                       f"with other files ({', '.join(sorted(entry.files))}); published releases "
                                       f"never change")
                result.unchanged.append(plan.arch)
            now = utc_now()
            placed: list[str] = []
            try:
                if todo:
                    size = sum(f.size for files in todo.values() for f in files)
                    say(f"publishing {req.group}={req.version} ({', '.join(todo)}) to {dest.url}: "
                        f"{len(sum(todo.values(), []))} files, {size / (1 << 20):.1f} MiB")
                    placed = dest.place(req.group, req.version, todo)
                    result.bytes = size
                changed = index.add(_release(req, plans, now), make_current=req.make_current, now=now)
                dropped = index.prune(req.keep, now=now) if req.keep is not None else []
                result.pruned = [r.version for r in dropped]
                if changed or dropped:
                    key = None
                    if signer is not None:
                        index.signing_key = {"fingerprint": fingerprint, "url": f"../{SIGNING_KEY}"}
                        key = signer.public_key()
                    write_indexes(dest, index, signing_key=key)
            except DestinationError as exc:
                if not exc.partial:  # no index names the new trees: take them away again
                    dest.undo(placed)
                raise
            except BaseException:
                dest.undo(placed)
                raise
            for r in dropped:
                say(f"pruned {req.group}={r.version} (channel {r.channel})")
                dest.remove(req.group, r.version)
            result.published = list(todo)
            result.current = dict(index.current)
    return result


def _release(req: PublishRequest, plans: list[_ArchPlan], now: str) -> Release:
    arches = {}
    for plan in plans:
        base = f"{req.version}/{plan.arch}"
        files = {f.name: {"size": f.size, "sha256": f.sha256, "path": f"{base}/{f.name}"}
                 for f in plan.files if f.source is not None}
        arches[plan.arch] = ArchRelease(
            formats=dict(plan.formats), files=files, manifest=f"{base}/{RELEASE_MANIFEST}", sha256sums=f"{base}/{SUMS}",
            signature=f"{base}/{SIGNATURE}" if plan.signed_by else None,
            created=plan.manifest.built, published=now, builder=plan.manifest.builder, signed_by=plan.signed_by)
    created = min(p.manifest.built for p in plans)
    return Release(req.version, plans[0].manifest.version, req.channel, created, now, now, arches)


# ---------------------------------------------------------------- rollback and prune


def rollback(destination: str, group: str, version: str, *, arches: list[str] | None = None,
             reason: str | None = None, endpoint_url: str | None = None,
             lock_timeout: float = 60.0) -> tuple[dict[str, str | None], dict[str, str]]:
    """Make *version* current again (see the module docstring); returns (current before, current now)."""
    version = version.rsplit("/", 1)[-1]
    dest = open_destination(destination, endpoint_url=endpoint_url)
    with dest.lock(lock_timeout):
        index = load_index(dest, group)
        if not index.releases:
            raise PublishError(f"nothing of {group} is published at {dest.url}")
        now = utc_now()
        before = index.rollback(version, arches, reason=reason or f"rolled back to {version}", now=now)
        if all(before[a] == version for a in before):
            return before, dict(index.current)
        write_indexes(dest, index)
        return before, dict(index.current)


def prune(destination: str, group: str, keep: int, *, endpoint_url: str | None = None,
          lock_timeout: float = 60.0, say: Callable[[str], None] = print) -> list[str]:
    """Delete all but the newest *keep* nightlies of *group* (never a current release)."""
    dest = open_destination(destination, endpoint_url=endpoint_url)
    with dest.lock(lock_timeout):
        index = load_index(dest, group)
        dropped = index.prune(keep, now=utc_now())
        if dropped:
            write_indexes(dest, index)
        for r in dropped:
            say(f"pruned {group}={r.version} (channel {r.channel})")
            dest.remove(group, r.version)
    return [r.version for r in dropped]


def published(destination: str, group: str, *, endpoint_url: str | None = None) -> ReleaseIndex:
    """The group's release index at *destination* as it is now (read without the lock)."""
    return load_index(open_destination(destination, endpoint_url=endpoint_url), group)
