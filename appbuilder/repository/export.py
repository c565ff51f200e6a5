"""Exporting the repository as a static tree any HTTP server (or S3 bucket) can serve.

``appbuild repo export --to DIR|s3://BUCKET/PREFIX`` writes::

    snapshot.json                       the pointer: names the newest snapshot (written last)
    snapshots/<sha256>.json.zst         index snapshots (snapshot.py), named by the sha256 of their JSON
    snapshots/<sha256>.from-<base>.json.zst   the delta to that snapshot from the one before
    objects/ab/<sha256>.zst             every object a trove names, exactly as the store keeps it

Objects are copied as stored (never recompressed), each checked against its name while
it is copied (a damaged object in the store stops the export: it would be refused by
every reader anyway). Only objects the destination lacks are written, each to a
temporary name renamed into place (on S3 a PUT is all-or-nothing), so exporting again
after a few cooks costs what changed.

The pointer ``snapshot.json`` is written last, after the objects and the snapshot are
on disk (synced), so a reader never sees a snapshot whose objects are missing::

    {"format": "appbuild-repository-export/1", "serial": 7, "label": "cernvm@cvm:2",
     "snapshot": "snapshots/<sha256>.json.zst", "sha256": "<sha256 of the JSON>",
     "size": 123456, "objects": 2048, "created": "2026-12-06T01:02:03Z", "tree": "<random id>",
     "index_state": "<the index's state token>", "appbuild": "<the version that wrote it>",
     "index_mark": {"last_id": 2047, "troves": 2047, "sha256": "<hash of the troves' identities>"},
     "delta": {"base": "<sha256 of the previous snapshot's JSON>", "snapshot": "snapshots/...from-...",
               "sha256": "<sha256 of the delta's JSON>", "size": 2345},
     "signature": {"key_id": "...", "ed25519": "..."}}

``delta`` is there when the new snapshot starts with every trove of the one before (troves
are only appended, so nearly always): a reader holding the previous snapshot's index
fetches the delta and appends what it adds instead of loading the whole snapshot again
(see snapshot.py).

``index_mark`` (the last trove's id, the trove count and a hash of the troves' identities,
see ``snapshot.dump_since``) lets the next export start from this snapshot: when the index
still starts with the troves it marks (troves are only appended), only the troves committed
since are read from the index, the new snapshot's JSON is this one's with them appended,
and the delta is made of them; nothing of the old snapshot is parsed again. Otherwise (an
index replaced or diverged, a pointer without it) the index is read whole.

The serial grows by one with each new snapshot (an export of an unchanged index writes
nothing new but, when a commit changed nothing exported, the pointer's ``index_state``:
the token :func:`appbuilder.repository.index.state` changes with every commit, so an export
asked to skip an unchanged index, a coordinator's before each task, compares two tokens
instead of reading the index and the tree); a reader remembers the highest serial it accepted from a URL and tree (the
random ``tree`` id the first export into a destination chose) and refuses an older one
(a replayed pointer); another tree served at the same URL is another repository. The signature (``repository.signing_key``, see keys.py)
covers every other field, the snapshot's hash among them, and so, through the hashes,
every object. Without a key the pointer is unsigned, which readers trusting keys refuse.

Two exports into one directory queue up on its ``.lock``; on S3 the pointer is replaced
only if it is still the one read at the start (``If-Match`` on its ETag).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from appbuilder.core.errors import RepositoryError
from appbuilder.core.fileio import fsync_dir, hold_lock, write_atomic
from appbuilder import __version__
from appbuilder.repository import index
from appbuilder.repository import snapshot as snap
from appbuilder.repository.keys import Signer, sign_document
from appbuilder.repository.store import CHUNK, DamagedObject, MissingObject

FORMAT = "appbuild-repository-export/1"
POINTER = "snapshot.json"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"


class ExportError(RepositoryError):
    """The repository cannot be exported to the destination given."""


@dataclass
class ExportResult:
    """What one export did."""

    dest: str
    serial: int  # the snapshot serial the pointer names after the export
    snapshot_written: bool  # False: the index had not changed since the last export
    objects_written: int
    objects_skipped: int
    bytes_written: int  # bytes of objects and snapshot written
    seconds: float
    signed: bool
    troves: int = 0
    digest: str = ""  # the sha256 of the snapshot the pointer names
    body: bytes | None = field(default=None, repr=False)  # that snapshot's JSON (the next export starts from it)
    delta_bytes: int = 0  # the delta written beside a new snapshot (0: none)

    def summary(self) -> str:
        what = f"snapshot {self.serial}" + ("" if self.snapshot_written else " (unchanged)")
        return (f"exported {what} to {self.dest}: {self.troves} troves, {self.objects_written} objects written, "
                f"{self.objects_skipped} already there, {self.bytes_written / 1e6:.1f} MB in {self.seconds:.2f} s"
                + ("" if self.signed else " (unsigned: no repository.signing_key)"))


def object_rel(digest: str) -> str:
    return f"objects/{digest[:2]}/{digest}.zst"


class _Hasher:
    """A file-like sink hashing what zstd decompresses into it."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def write(self, data) -> int:
        self.hash.update(data)
        return len(data)


def copy_verified(src: Path, digest: str, out) -> int:
    """Copy the stored object *src* byte for byte into the open file *out*, checking on the
    way that it decompresses to content hashing to *digest*; returns the bytes copied."""
    sink = _Hasher()
    size = 0
    try:
        with open(src, "rb") as f, zstandard.ZstdDecompressor().stream_writer(sink, closefd=False) as dec:
            while chunk := f.read(CHUNK):
                out.write(chunk)
                dec.write(chunk)
                size += len(chunk)
            dec.flush()
    except FileNotFoundError:
        raise MissingObject(digest, src, src.parent.parent.parent) from None
    except zstandard.ZstdError as exc:
        raise DamagedObject(digest, src, f"its compressed data is damaged (zstd: {exc})") from None
    if sink.hash.hexdigest() != digest:
        raise DamagedObject(digest, src, f"its content hashes to {sink.hash.hexdigest()}, not to its name")
    return size


# ------------------------------------------------------------------ destinations


class _DirTarget:
    # objects written since the last sync: up to this many are made durable one by one (fsync),
    # more with one syncfs (which also waits for whatever else the file system has to write)
    FSYNC_EACH = 256

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)
        self._lock = None
        self._unsynced: list[Path] = []

    def __enter__(self):
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = hold_lock(self.root)
        except OSError as exc:
            raise ExportError(f"cannot export to {self.root}: {exc.strerror or exc}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            os.close(self._lock)

    def read(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None

    def present(self) -> set[str]:
        """Digests of the objects already there."""
        found: set[str] = set()
        objects = self.root / "objects"
        if objects.is_dir():
            for sub in os.scandir(objects):
                if sub.is_dir():
                    found.update(e.name[:-4] for e in os.scandir(sub.path)
                                 if e.name.endswith(".zst") and not e.name.startswith("."))
        return found

    def lacking(self, digests: list[str]) -> list[str]:
        """Those of *digests* whose object is not there (a few are looked up one by one, many
        by listing the tree)."""
        if len(digests) > 64:
            present = self.present()
            return [d for d in digests if d not in present]
        return [d for d in digests if not (self.root / object_rel(d)).is_file()]

    def put_object(self, digest: str, src: Path) -> int:
        final = self.root / object_rel(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{digest[:12]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                size = copy_verified(src, digest, out)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._unsynced.append(final)
        return size

    def sync(self) -> None:
        """Every object written so far is on disk (the snapshot and the pointer are written
        durably by themselves)."""
        if len(self._unsynced) <= self.FSYNC_EACH:
            directories = {self.root, self.root / "objects"}
            for path in self._unsynced:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                directories.add(path.parent)
            for directory in sorted(directories):
                if directory.is_dir():
                    fsync_dir(directory)
        else:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                import ctypes

                if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
                    os.sync()
            finally:
                os.close(fd)
        self._unsynced.clear()

    def put_bytes(self, rel: str, data: bytes, *, pointer: bool = False) -> None:
        write_atomic(self.root / rel, data)


class _S3Target:
    def __init__(self, url: str, endpoint_url: str | None):
        import boto3
        from botocore.config import Config

        self.bucket, _, prefix = url[len("s3://"):].partition("/")
        if not self.bucket:
            raise ExportError(f"bad destination {url!r}: expected s3://BUCKET[/PREFIX]")
        self.prefix = prefix.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                             or os.environ.get("AWS_ENDPOINT_URL"))
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=region,
                               config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                             max_pool_connections=16))
        self._pointer_etag: str | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _fail(self, exc: Exception, doing: str) -> ExportError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return ExportError(f"{self.url}: {doing}: {code or exc}")

    def read(self, rel: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self.key(rel))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._fail(exc, f"reading {rel}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"reading {rel}") from None
        if rel == POINTER:
            self._pointer_etag = obj["ETag"]
        return obj["Body"].read()

    def present(self) -> set[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        found: set[str] = set()
        base = self.key("objects/")
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                for obj in page.get("Contents", []):
                    name = obj["Key"].rsplit("/", 1)[-1]
                    if name.endswith(".zst"):
                        found.add(name[:-4])
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "listing the objects") from None
        return found

    def lacking(self, digests: list[str]) -> list[str]:
        """Those of *digests* whose object is not there."""
        if not digests:
            return []
        present = self.present()
        return [d for d in digests if d not in present]

    def put_object(self, digest: str, src: Path) -> int:
        import io

        from botocore.exceptions import BotoCoreError, ClientError

        buf = io.BytesIO()
        size = copy_verified(src, digest, buf)
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self.key(object_rel(digest)), Body=buf.getvalue(),
                               ContentType="application/zstd", CacheControl=IMMUTABLE)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"uploading object {digest}") from None
        return size

    def sync(self) -> None:
        pass  # a completed PUT is durable

    def put_bytes(self, rel: str, data: bytes, *, pointer: bool = False) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {}
        if pointer:  # replace only the pointer read at the start
            extra = {"IfMatch": self._pointer_etag} if self._pointer_etag else {"IfNoneMatch": "*"}
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data,
                               ContentType="application/json" if rel.endswith(".json") else "application/zstd",
                               CacheControl=NO_CACHE if pointer else IMMUTABLE, **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ExportError(f"{self.url}/{rel} was replaced by another export meanwhile; the objects and "
                                  f"snapshot written are harmless, export again") from None
            raise self._fail(exc, f"writing {rel}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"writing {rel}") from None


def _target(dest: str | Path, endpoint_url: str | None):
    text = str(dest)
    if text.startswith("s3://"):
        return _S3Target(text, endpoint_url)
    if "://" in text:
        raise ExportError(f"cannot export to {text}: give a directory or s3://BUCKET/PREFIX")
    return _DirTarget(Path(text))


# ------------------------------------------------------------------ exporting


def export_repository(repo, dest: str | Path, *, signer: Signer | None = None, endpoint_url: str | None = None,
                      jobs: int = 4, previous: ExportResult | None = None,
                      skip_unchanged: bool = False) -> ExportResult:
    """Export *repo* into *dest* (a directory or ``s3://BUCKET/PREFIX``); see the module text.

    *previous*, the result of this process's last export into *dest*, spares reading its
    snapshot back. *skip_unchanged*: when the pointer records the index's present state
    (``index_state``), nothing is read or written (a coordinator asking before each task),
    and the objects the last snapshot names are trusted to be there (only the new troves'
    are looked for); without it the tree is checked whole (missing objects written again)."""
    started = time.monotonic()
    state = index.state(repo.db)  # read before the snapshot: a commit in between exports again next time
    key = signer.key_id if signer else None
    with _target(dest, endpoint_url) as target:
        old = _current_pointer(target)
        old_key = (old.get("signature") or {}).get("key_id") if old else None
        same_tree = bool(old and old_key == key and old.get("label") == repo.label)
        if skip_unchanged and same_tree and state and old.get("index_state") == state \
                and old.get("appbuild") == __version__:
            return ExportResult(dest=target.url, serial=int(old["serial"]), snapshot_written=False,
                                objects_written=0, objects_skipped=int(old.get("objects") or 0), bytes_written=0,
                                seconds=time.monotonic() - started, signed=signer is not None,
                                troves=int(old.get("troves") or 0), digest=str(old.get("sha256") or ""))
        same_label = bool(old and old.get("label") == repo.label)
        base_body = _base_body(target, old, previous) if same_label and isinstance(old.get("index_mark"), dict) \
            else None
        snapshot = _read_snapshot(repo.db, old if base_body is not None else None, base_body,
                                  trust_tree=skip_unchanged and same_label)
        body, digest = snapshot.body, snapshot.digest
        missing = target.lacking(snapshot.check)
        written_bytes = 0
        if missing:
            with ThreadPoolExecutor(max(1, jobs)) as pool:
                for size in pool.map(lambda d: target.put_object(d, repo.store.path_of(d)), missing):
                    written_bytes += size
        target.sync()
        serial = int(old.get("serial", 0)) if old else 0
        fresh = not (same_tree and old.get("sha256") == digest)
        delta_bytes = 0
        pointer = None
        if fresh:
            rel = f"snapshots/{digest}.json.zst"
            compressed = snap.compress(body)
            target.put_bytes(rel, compressed)
            written_bytes += len(compressed)
            serial += 1
            delta = snapshot.delta or (_delta(target, old, snapshot.document(), previous) if same_label else None)
            if delta is not None:
                delta_body = snap.encode(delta)
                delta_rel = f"snapshots/{digest}.from-{delta['base']}.json.zst"
                delta_data = snap.compress(delta_body)
                target.put_bytes(delta_rel, delta_data)
                written_bytes += len(delta_data)
                delta_bytes = len(delta_body)
                delta = {"base": delta["base"], "snapshot": delta_rel, "size": len(delta_body),
                         "sha256": hashlib.sha256(delta_body).hexdigest()}
            pointer = {
                "format": FORMAT, "serial": serial, "label": repo.label, "snapshot": rel, "sha256": digest,
                # the export tree's identity: serials count within one tree (another tree served at the
                # same URL later, a coordinator's fresh export on a reused port, is not a rollback)
                "tree": (old or {}).get("tree") if isinstance((old or {}).get("tree"), str) else uuid.uuid4().hex,
                "size": len(body), "objects": snapshot.objects, "troves": snapshot.troves,
                **({"delta": delta} if delta else {}),
            }
        elif old.get("index_state") != state or old.get("appbuild") != __version__ \
                or old.get("index_mark") != snapshot.mark:
            # the same snapshot (a commit that changed nothing exported): the pointer says which
            # index state it is, so the next skip_unchanged export need not read the index
            pointer = {k: v for k, v in old.items() if k not in ("signature", "created", "index_state", "appbuild")}
        if pointer is not None:
            pointer.update({"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "index_state": state, "appbuild": __version__, "index_mark": snapshot.mark})
            target.sync()
            target.put_bytes(POINTER, json.dumps(sign_document(pointer, signer), indent=1, sort_keys=True).encode()
                             + b"\n", pointer=True)
        return ExportResult(dest=target.url, serial=serial, snapshot_written=fresh, objects_written=len(missing),
                            objects_skipped=snapshot.objects - len(missing), bytes_written=written_bytes,
                            seconds=time.monotonic() - started, signed=signer is not None,
                            troves=snapshot.troves, digest=digest, body=body, delta_bytes=delta_bytes)


@dataclass
class _Snapshot:
    """The snapshot an export writes: its JSON, what it names, and how it relates to the last one."""

    body: bytes
    digest: str  # sha256 of body
    troves: int
    objects: int  # distinct objects its troves name
    check: list[str]  # the objects to look for in the tree (sorted)
    mark: dict  # the index mark of its troves (snapshot.dump_since)
    delta: dict | None  # the delta from the last snapshot, when made from the index
    dumped: snap.IndexDump = field(repr=False)

    def document(self) -> dict:
        """The whole document (only for a snapshot not made from the last one)."""
        return self.dumped.document()


def _read_snapshot(conn, old: dict | None, base_body: bytes | None, *, trust_tree: bool) -> _Snapshot:
    """The index behind *conn* as a snapshot, in one read transaction. With the last pointer
    *old* and its snapshot's JSON *base_body*, when the index starts with the troves it marks,
    only the troves committed since are read (their objects the only ones to look for when
    *trust_tree*: the last snapshot's are there) and the delta comes from them; otherwise
    the index is read whole (every object it names to look for)."""
    with snap.reading(conn):
        dumped = snap.dump_since(conn, old.get("index_mark") if old else None)
        if dumped.base_troves:
            body = dumped.encode_after(base_body)
            added = {"troves": dumped.troves, "build_logs": [x for x in dumped.build_logs
                                                             if x[0] >= dumped.base_troves]}
            new = snap.referenced(added)
            if trust_tree:
                check = sorted(new)
                objects = int(old.get("objects") or 0) + len(new - _named_before(conn, old["index_mark"]["last_id"],
                                                                                 new))
            else:
                check = sorted(index.referenced_contents(conn))
                objects = len(check)
            delta = dumped.delta(old["sha256"])
        else:
            body = snap.encode(dumped.document())
            check = sorted(snap.referenced(dumped.document()))
            objects, delta = len(check), None
    return _Snapshot(body, hashlib.sha256(body).hexdigest(), dumped.mark["troves"], objects, check, dumped.mark,
                     delta, dumped)


def _named_before(conn, last_id: int, digests: set[str]) -> set[str]:
    """Those of *digests* that troves up to id *last_id* name (a file, a build log or a
    ``*_blob`` info entry): objects an earlier snapshot counted already."""
    logs = {h for (h,) in conn.execute("SELECT sha256 FROM build_logs WHERE trove_id <= ?", (last_id,))}
    found = {d for d in digests if d in logs or conn.execute(
        "SELECT 1 FROM files WHERE sha256 = ? AND trove_id <= ? LIMIT 1", (d, last_id)).fetchone()}
    rest = digests - found
    if rest:  # info blobs: read only the troves that have any
        for (info,) in conn.execute("SELECT info FROM troves WHERE id <= ? AND info LIKE '%\\_blob\"%' ESCAPE '\\'",
                                    (last_id,)):
            found.update(v for k, v in json.loads(info).items()
                         if k.endswith("_blob") and isinstance(v, str) and v in rest)
    return found


def _base_body(target, old: dict, previous: ExportResult | None) -> bytes | None:
    """The JSON of the snapshot the pointer *old* names (this process's last export's, or read
    back from the tree and checked against the pointer's sha256); None when it is gone or damaged."""
    base = old.get("sha256")
    if not isinstance(base, str):
        return None
    if previous is not None and previous.digest == base and previous.body is not None:
        return previous.body
    data = target.read(f"snapshots/{base}.json.zst")
    if data is None:
        return None
    try:
        body = snap.decompress(data, what=base)
    except RepositoryError:
        return None
    return body if hashlib.sha256(body).hexdigest() == base else None


def _delta(target, old: dict, doc: dict, previous: ExportResult | None) -> dict | None:
    """The delta from the snapshot *old* names to *doc* (read whole: the last pointer carries
    no index mark, or the index does not start with the troves it marks); None when there can
    be none (the old snapshot gone, damaged, or not a prefix of the new one)."""
    base = old.get("sha256")
    body = _base_body(target, old, previous)
    if body is None:
        return None
    try:
        before = snap.parse(body, what=base)
    except RepositoryError:
        return None
    return snap.make_delta(before, doc, base)


def _current_pointer(target) -> dict | None:
    data = target.read(POINTER)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("serial"), int):
        raise ExportError(f"{target.url}/{POINTER} is not an appbuild export pointer: the destination holds "
                          f"something else; export to an empty directory or prefix")
    return doc
