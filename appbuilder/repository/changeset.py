"""Changesets: troves and the objects they need, carried from a cluster worker to the coordinator.

A worker cooks against a repository opened from an export (remote.py) and commits into
its local cache; :func:`make_changeset` packs what it made (package troves with their
components, or group troves) and the objects they name that the coordinator's export
does not hold yet. :func:`commit_changeset` on the coordinator checks everything before
it writes anything:

* the framing (a truncated or padded changeset, or garbage, is refused),
* the signature of the manifest, when keys are trusted (``repository.trusted_keys``),
* every object: it must decompress to content hashing to its name,
* consistency: every content a trove names is in the changeset or already stored, no
  object is carried that no trove names, every group member is in the repository or in
  the changeset,

and then commits all troves in one transaction. Versions are allocated there, by the
repository's own rules (``Repository._allocate_version``), exactly as a commit of the
same build on the coordinator would: the trove committed from a cluster cook has the
same files, dependencies, info and version as a local cook of the same inputs. A package
whose input hash the repository already has is not committed again (as a local cook
would skip it), and the same changeset committed twice returns the troves of the first
commit, so a task run again after a lost answer is harmless. Objects are written into the
store (each to a temporary name, renamed) before the transaction; a kill at any point
leaves the previous index, and at worst objects no trove names, which ``gc`` removes.

The bytes::

    APPBUILD-CHANGESET/1\\n
    8 bytes: length of the manifest (big-endian), the manifest (JSON, signed as in keys.py):
        {"format": "appbuild-changeset/1", "troves": [...], "objects": [[sha256, size], ...],
         "signature": {...}}        (a package's build log: its "build_log" digest)
    the objects, in the manifest's order, each exactly as the store keeps it (zstd)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
from pathlib import Path

from appbuilder.core.errors import RepositoryError
from appbuilder.repository import index
from appbuilder.repository.deps import Dependency
from appbuilder.repository.index import write_transaction
from appbuilder.repository.keys import Signer, SignatureRefused, TrustedKeys, check_document, sign_document
from appbuilder.repository.repo import ComponentContents, GroupBuild, PackageBuild, Repository
from appbuilder.repository.store import DamagedObject, VerifiedReader, is_digest
from appbuilder.repository.trove import COMPONENT, FILE_TYPES, GROUP, PACKAGE, FileEntry, Trove
from appbuilder.repository.versions import NVF, Version, check_label

MAGIC = b"APPBUILD-CHANGESET/1\n"
FORMAT = "appbuild-changeset/1"
MAX_MANIFEST = 1 << 30


class ChangesetRefused(RepositoryError):
    """A changeset failed verification; nothing of it was committed."""


# ------------------------------------------------------------------ making


def _file_row(f: FileEntry) -> list:
    return [f.path, f.type, f.mode, f.owner, f.group, f.size, f.sha256, f.target, int(f.config), f.rdev, f.mtime]


def _deps(deps: set[Dependency]) -> list:
    return [[d.cls, d.name, d.flags_text] for d in sorted(deps)]


def _contents(repo: Repository, trove: Trove) -> set[str]:
    found = {f.sha256 for f in trove.files if f.sha256}
    found.update(repo.blobs(trove).values())
    return found


def _held(base, wanted: set[str]) -> set[str]:
    """Those of *wanted* that *base* holds: a repository opened from an export (what its
    snapshot names), a plain repository (nothing: it is the whole source), or a collection
    of digests."""
    if hasattr(base, "remote_holds"):
        return base.remote_holds(wanted)
    if isinstance(base, Repository):
        return set()
    return wanted & set(base)


def make_changeset(repo: Repository, troves: list[NVF], *, base_snapshot=None, signer: Signer | None = None,
                   rebuild: bool = False) -> bytes:
    """The changeset of *troves* (packages, with their components, and groups) of *repo*.

    It carries the objects those troves name except the ones *base_snapshot* holds: a
    collection of digests, or None for what the export *repo* was opened from holds (a
    :class:`~appbuilder.repository.remote.RemoteRepository`; every object for a local one).
    *rebuild*: the packages are forced rebuilds (``cook --force``): the coordinator gives
    them a new build count even if it has their input hash.
    """
    entries: list[dict] = []
    wanted: set[str] = set()
    for nvf in troves:
        trove = repo.get(nvf)
        entry = {"kind": trove.kind, "name": trove.name, "version": str(trove.version),
                 "flavor": index.flavor_key(trove.flavor), "info": trove.info}
        wanted |= _contents(repo, trove)
        if trove.kind == PACKAGE:
            entry["build_log"] = repo.build_log(nvf)
            comps = []
            for member in trove.members:
                comp = repo.get(member)
                if comp.kind != COMPONENT or comp.version != trove.version:
                    raise RepositoryError(f"{trove} has a member {member} that is not one of its components")
                comps.append({"name": comp.name, "info": comp.info, "files": [_file_row(f) for f in comp.files],
                              "provides": _deps(comp.provides), "requires": _deps(comp.requires)})
                wanted |= _contents(repo, comp)
            entry.update(components=comps, rebuild=bool(rebuild))
        elif trove.kind == GROUP:
            entry.update(members=[[m.name, str(m.version), index.flavor_key(m.flavor)] for m in trove.members],
                         requires=_deps(trove.requires))
        else:
            raise RepositoryError(f"{trove} is a {trove.kind}: put its package into the changeset")
        entries.append(entry)
    carried = sorted(wanted - _held(repo if base_snapshot is None else base_snapshot, wanted))
    blobs = []
    for digest in carried:
        try:
            blobs.append(repo.store.path_of(digest).read_bytes())
        except FileNotFoundError:
            raise RepositoryError(f"cannot make the changeset: object {digest} is neither in {repo.path} nor in "
                                  f"the base snapshot") from None
    manifest = sign_document({"format": FORMAT, "label": repo.label, "troves": entries,
                              "objects": [[d, len(b)] for d, b in zip(carried, blobs)]}, signer)
    head = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return b"".join([MAGIC, struct.pack(">Q", len(head)), head, *blobs])


# ------------------------------------------------------------------ reading and checking


def read_changeset(data: bytes, *, trusted: TrustedKeys | None = None) -> tuple[dict, dict[str, bytes], str | None]:
    """The manifest, the objects (digest -> stored bytes, each verified) and the signing key id
    of a changeset; :class:`ChangesetRefused` on anything wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ChangesetRefused(f"a changeset is bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise ChangesetRefused("refused changeset: it is not an appbuild changeset (no APPBUILD-CHANGESET/1 header)")
    at = len(MAGIC)
    if len(data) < at + 8:
        raise ChangesetRefused("refused changeset: it is truncated (no manifest)")
    (length,) = struct.unpack(">Q", data[at:at + 8])
    at += 8
    if length > MAX_MANIFEST or at + length > len(data):
        raise ChangesetRefused(f"refused changeset: it is truncated (its manifest needs {length} bytes, "
                               f"{len(data) - at} are there)")
    try:
        manifest = json.loads(data[at:at + length])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChangesetRefused(f"refused changeset: its manifest is not JSON ({exc})") from None
    at += length
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ChangesetRefused(f"refused changeset: its manifest is not {FORMAT}")
    objects, troves = manifest.get("objects"), manifest.get("troves")
    if (not isinstance(objects, list) or not isinstance(troves, list)
            or not all(isinstance(o, list) and len(o) == 2 and is_digest(o[0]) and isinstance(o[1], int)
                       and not isinstance(o[1], bool) and o[1] > 0 for o in objects)):
        raise ChangesetRefused("refused changeset: its manifest's troves or objects are malformed")
    try:
        signer = check_document(manifest, trusted, what="the changeset")
    except SignatureRefused as exc:
        raise ChangesetRefused(f"refused {exc}") from None
    total = sum(size for _, size in objects)
    if at + total != len(data):
        raise ChangesetRefused(f"refused changeset: its objects need {total} bytes after the manifest, it has "
                               f"{len(data) - at} ({'truncated' if at + total > len(data) else 'trailing garbage'})")
    blobs: dict[str, bytes] = {}
    for digest, size in objects:
        blob = data[at:at + size]
        at += size
        try:
            with VerifiedReader(digest, Path(f"<changeset object {digest}>"), io.BytesIO(blob)) as check:
                while check.read(1 << 20):
                    pass
        except DamagedObject as exc:
            raise ChangesetRefused(f"refused changeset: object {digest} is damaged or was tampered with "
                                   f"({exc.problem})") from None
        blobs[digest] = blob
    return manifest, blobs, signer


def _builds(manifest: dict) -> list[tuple[dict, PackageBuild | GroupBuild]]:
    """The manifest's troves as builds (versions left to the coordinator), their shapes checked."""
    out = []
    for i, t in enumerate(manifest["troves"]):
        try:
            if not isinstance(t, dict) or not all(isinstance(t.get(k), str) for k in ("kind", "name", "version",
                                                                                      "flavor")):
                raise ValueError(f"trove #{i} lacks a kind, name, version or flavor")
            if not isinstance(t.get("info"), dict):
                raise ValueError(f"{t['name']} has no info")
            version = Version.parse(t["version"])
            flavor = index.key_flavor(t["flavor"])
            info = dict(t["info"])
            source_hash, input_hash = info.pop("source_hash", None), info.pop("input_hash", None)
            if not isinstance(source_hash, str) or not (input_hash is None or isinstance(input_hash, str)):
                raise ValueError(f"{t['name']} has no source hash")
            if t["kind"] == PACKAGE:
                comps = []
                for c in t.get("components") or []:
                    files = [FileEntry(path=f[0], type=f[1], mode=f[2], owner=f[3], group=f[4], size=f[5],
                                       sha256=f[6], target=f[7], config=bool(f[8]), rdev=f[9], mtime=f[10])
                             for f in c["files"]]
                    for f in files:
                        if (f.type not in FILE_TYPES or not all(isinstance(x, int) for x in (f.mode, f.size, f.rdev,
                                                                                             f.mtime))
                                or not isinstance(f.path, str) or "\0" in f.path or ".." in f.path.split("/")
                                or not isinstance(f.owner, str) or not isinstance(f.group, str)
                                or not (f.target is None or isinstance(f.target, str))
                                or not (f.sha256 is None or is_digest(f.sha256))):
                            raise ValueError(f"{c['name']}: bad file entry {str(f.path)[:200]!r}")
                    if not isinstance(c["name"], str) or not c["name"].startswith(t["name"] + ":"):
                        raise ValueError(f"{t['name']} has a component {c['name']!r} not named after it")
                    comps.append(ComponentContents(
                        name=c["name"], files=files, info=dict(c["info"]),
                        provides={Dependency(a, b, frozenset(fl.split())) for a, b, fl in c["provides"]},
                        requires={Dependency(a, b, frozenset(fl.split())) for a, b, fl in c["requires"]}))
                if not comps:
                    raise ValueError(f"{t['name']} has no components")
                log = t.get("build_log")
                if not (log is None or is_digest(log)):
                    raise ValueError(f"{t['name']}: bad build log {str(log)[:80]!r}")
                build = PackageBuild(name=t["name"], upstream=version.upstream, flavor=flavor,
                                     source_hash=source_hash, components=comps, input_hash=input_hash, info=info,
                                     label=check_label(version.label), rebuild=bool(t.get("rebuild")),
                                     build_log=log)
            elif t["kind"] == GROUP:
                if not isinstance(input_hash, str):
                    raise ValueError(f"{t['name']} has no input hash")
                members = [NVF(n, Version.parse(v), index.key_flavor(f)) for n, v, f in t["members"]]
                build = GroupBuild(name=t["name"], upstream=version.upstream, flavor=flavor, source_hash=source_hash,
                                   input_hash=input_hash, members=members, info=info,
                                   requires={Dependency(a, b, frozenset(fl.split())) for a, b, fl in t["requires"]},
                                   label=check_label(version.label))
            else:
                raise ValueError(f"{t['name']} is a {t['kind']!r}, not a package or a group")
        except ChangesetRefused:
            raise
        except (ValueError, TypeError, KeyError, IndexError, RepositoryError) as exc:
            raise ChangesetRefused(f"refused changeset: a trove is malformed ({exc})") from None
        out.append((t, build))
    return out


# ------------------------------------------------------------------ committing


def commit_changeset(repo: Repository, data: bytes, *, trusted: TrustedKeys | None = None) -> list[NVF]:
    """Verify the changeset *data* and commit its troves into *repo* in one transaction.

    Returns the committed (or already present) troves' NVFs in the changeset's order, as
    the repository versioned them. :class:`ChangesetRefused` when anything fails to
    verify; then nothing is committed.
    """
    changeset_id = hashlib.sha256(bytes(data)).hexdigest() if isinstance(data, (bytes, bytearray)) else None
    manifest, blobs, _ = read_changeset(data, trusted=trusted)
    builds = _builds(manifest)
    named: set[str] = set()
    for t, build in builds:
        if isinstance(build, PackageBuild):
            named.update(f.sha256 for c in build.components for f in c.files if f.sha256)
            for info in [build.info] + [c.info for c in build.components]:
                named.update(v for k, v in info.items() if k.endswith("_blob") and isinstance(v, str))
            if build.build_log:
                named.add(build.build_log)
        else:
            named.update(v for k, v in build.info.items() if k.endswith("_blob") and isinstance(v, str))
    extra = set(blobs) - named
    if extra:
        raise ChangesetRefused(f"refused changeset: it carries {len(extra)} objects no trove names "
                               f"(e.g. {sorted(extra)[0]})")
    absent = sorted(d for d in named if d not in blobs and not repo.store.has(d))
    if absent:
        raise ChangesetRefused(f"refused changeset: {len(absent)} contents its troves name are neither in it nor in "
                               f"the repository (e.g. {absent[0]})")
    carried_troves = set()
    for t, build in builds:
        carried_troves.add(NVF(t["name"], Version.parse(t["version"]), build.flavor))
        if isinstance(build, PackageBuild):
            carried_troves.update(NVF(c.name, Version.parse(t["version"]), build.flavor) for c in build.components)
    for t, build in builds:  # checked again in the transaction; here so that a refusal stores nothing
        if isinstance(build, GroupBuild):
            _check_members(build, [m for m in build.members
                                   if m not in carried_troves and index.trove_id(repo.db, m) is None])
    for digest, blob in blobs.items():
        if not repo.store.has(digest):
            _store_raw(repo, digest, blob)
    repo.store.sync()
    with write_transaction(repo.db) as db:
        if changeset_id:
            row = db.execute("SELECT value FROM meta WHERE key=?", (f"changeset:{changeset_id}",)).fetchone()
            if row:  # committed before: the same answer
                return [NVF(n, Version.parse(v), index.key_flavor(f)) for n, v, f in json.loads(row[0])]
        renamed: dict[NVF, NVF] = {}  # the worker's version -> the one allocated here
        committed: list[NVF] = []
        for t, build in builds:
            label = build.label or repo.label
            sent = NVF(t["name"], Version.parse(t["version"]), build.flavor)
            if isinstance(build, PackageBuild):
                trove, _ = repo._insert_package(db, build, label)
                for comp in build.components:
                    renamed[NVF(comp.name, sent.version, build.flavor)] = NVF(comp.name, trove.version, trove.flavor)
            else:
                build.members = [renamed.get(m, m) for m in build.members]
                _check_members(build, [m for m in build.members if index.trove_id(db, m) is None])
                trove, _ = repo._insert_group(db, build, label)
            renamed[sent] = trove.nvf
            committed.append(trove.nvf)
        if changeset_id:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (
                f"changeset:{changeset_id}",
                json.dumps([[n.name, str(n.version), index.flavor_key(n.flavor)] for n in committed])))
    return committed


def _check_members(build: GroupBuild, missing: list[NVF]) -> None:
    if missing:
        raise ChangesetRefused(f"refused changeset: group {build.name} pins {len(missing)} troves that are neither "
                               f"in the repository nor in the changeset (e.g. {missing[0]})")


def _store_raw(repo: Repository, digest: str, blob: bytes) -> None:
    """Put a verified object into the store as it came (it is already the store's zstd)."""
    final = repo.store.path_of(digest)
    final.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=repo.store.tmp, prefix="cs-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
