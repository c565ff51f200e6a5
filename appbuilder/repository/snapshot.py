"""Index snapshots: the whole repository index as one JSON document, and back.

A snapshot is what an exported repository (``export.py``) publishes beside its objects
and what a remote reader (``remote.py``) rebuilds its own index from. It holds every
trove in commit order (name, version, flavor, kind, info, commit time, files,
provides, requires, members), the source revisions (which the version allocation
reads) and the input hashes (which decide that a cook is already done), so a
repository opened from it answers every question, and allocates the same next
versions, as the one exported::

    {"format": "appbuild-index-snapshot/1", "label": "cernvm@cvm:2",
     "troves": [{"name": ..., "version": ..., "flavor": ..., "kind": ..., "info": {...},
                 "committed_at": ..., "files": [[path, type, mode, owner, group, size,
                 sha256, target, config, rdev, mtime], ...], "provides": [[cls, name,
                 flags], ...], "requires": [...], "members": [[name, version, flavor], ...]}],
     "source_revisions": [[name, label, upstream, source_count, source_hash], ...],
     "inputs": [[input_hash, trove index in "troves"], ...],
     "build_logs": [[trove index in "troves", sha256], ...]}

The JSON is canonical (sorted keys, no spaces), so the same index gives the same bytes
and an export whose index did not change writes no new snapshot. It is stored
zstd-compressed; its name and the pointer carry the sha256 of the uncompressed JSON.
Loading checks the document's shape and every value's type: a snapshot read over the
network is hostile until checked (its hash and signature are checked before, by the
caller).

**Deltas.** Troves are only ever appended to an index, so the next snapshot usually
starts with every trove of the last one. A delta from snapshot A to snapshot B holds just
B's troves beyond A's (and their build logs), and B's source revisions and input hashes
whole (small)::

    {"format": "appbuild-index-delta/1", "base": "<sha256 of A's JSON>", "base_troves": 123,
     "troves": [...], "source_revisions": [...], "inputs": [[input_hash, position in B], ...],
     "build_logs": [[position in B, sha256], ...]}

A reader holding A's index applies it (:func:`apply_delta`) instead of loading B whole:
what a cluster worker reads after each commit is what the commit added, not the whole
repository again.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass

import zstandard

from appbuilder.core.errors import RepositoryError
from appbuilder.repository import index
from appbuilder.repository.deps import Dependency
from appbuilder.repository.store import is_digest
from appbuilder.repository.trove import FILE_TYPES

FORMAT = "appbuild-index-snapshot/1"
DELTA_FORMAT = "appbuild-index-delta/1"
MAX_SNAPSHOT = 4 << 30  # uncompressed bytes a reader accepts


class BadSnapshot(RepositoryError):
    """A snapshot document is not what an exported index looks like."""


def dump(conn) -> dict:
    """The index behind *conn* as a snapshot document (one read transaction)."""
    with reading(conn):
        return dump_since(conn, None).document()


@contextmanager
def reading(conn):
    """One read transaction on *conn*: every query inside sees the same committed index."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


# the columns naming a trove and its commit, hashed into an export's mark of the index (see dump_since)
_MARKED = ("SELECT troves.id, name, label, upstream, source_count, build_count, flavor, kind, committed_at,"
           " build_logs.sha256 FROM troves LEFT JOIN build_logs ON build_logs.trove_id = troves.id ORDER BY troves.id")


@dataclass
class IndexDump:
    """What :func:`dump_since` read: the troves committed after its base (all of them without
    one), and the source revisions, input hashes and build logs whole (positions count every
    trove, the base's first)."""

    troves: list[dict]
    base_troves: int  # troves before these (0: these are all of them)
    source_revisions: list
    inputs: list
    build_logs: list
    mark: dict  # the mark of the whole index read (the next dump_since's base)

    def document(self) -> dict:
        """The whole snapshot document (only when there was no base)."""
        assert self.base_troves == 0, "a dump after a base holds only the troves added to it"
        return {"format": FORMAT, "troves": self.troves, "source_revisions": self.source_revisions,
                "inputs": self.inputs, "build_logs": self.build_logs}

    def delta(self, base: str) -> dict:
        """The delta from the snapshot *base* (the sha256 of its JSON: the one whose mark this
        dump started from) to this one; what :func:`make_delta` gives for the two documents."""
        return {"format": DELTA_FORMAT, "base": base, "base_troves": self.base_troves, "troves": self.troves,
                "source_revisions": self.source_revisions, "inputs": self.inputs,
                "build_logs": [x for x in self.build_logs if x[0] >= self.base_troves]}

    def encode_after(self, base_body: bytes) -> bytes:
        """The canonical JSON of this snapshot, given the JSON of its base snapshot (the troves
        of *base_body*, then these; the other lists as read): what :func:`encode` gives for the
        whole document, without reading the base's troves back."""
        troves = base_troves_json(base_body)
        if not self.troves:
            return encode_with_troves(troves, self.source_revisions, self.inputs, self.build_logs)
        added = b",".join(encode(t) for t in self.troves)
        head = encode_with_troves(b"", self.source_revisions, self.inputs, self.build_logs)[:-1]
        # one copy of the (large) base troves list, not one per concatenation
        return b"".join([head, memoryview(troves)[:-1], b"," if troves != b"[]" else b"", added, b"]}"])


def dump_since(conn, base: dict | None) -> IndexDump:
    """Read the index behind *conn* (inside a read transaction: :func:`reading`) for a snapshot.

    *base* is the mark of an earlier dump (``{"last_id", "troves", "sha256"}``: the last
    trove's id, the trove count, and a hash of every trove's identity, commit time and build
    log in commit order). When the index still starts with exactly those troves (troves
    are only ever appended, never changed or removed: the mark checks it), only the troves
    after them are read; otherwise (a replaced or diverged index, no base) all of them."""
    if not (isinstance(base, dict) and all(isinstance(base.get(k), int) and not isinstance(base.get(k), bool)
                                           for k in ("last_id", "troves")) and isinstance(base.get("sha256"), str)):
        base = None
    hasher = hashlib.sha256()
    last_id, count, checked = 0, 0, base is None
    position: dict[int, int] = {}
    for row in conn.execute(_MARKED):
        if not checked and row[0] > base["last_id"]:
            checked = True
            if not _marks(base, count, hasher):
                base = None  # the index does not start with the base's troves
        hasher.update(json.dumps(row, separators=(",", ":")).encode() + b"\n")
        position[row[0]] = count
        last_id, count = row[0], count + 1
    if not checked and not _marks(base, count, hasher):
        base = None
    after, first = (base["last_id"], base["troves"]) if base is not None else (-1, 0)
    troves = _read_troves(conn, after, position, first)
    revisions = [list(r) for r in conn.execute(
        "SELECT name, label, upstream, source_count, source_hash FROM source_revisions"
        " ORDER BY name, label, upstream, source_count")]
    inputs = [[h, position[tid]] for h, tid in conn.execute("SELECT input_hash, trove_id FROM inputs"
                                                             " ORDER BY input_hash")]
    logs = [[position[tid], h] for tid, h in conn.execute("SELECT trove_id, sha256 FROM build_logs"
                                                           " ORDER BY trove_id")]
    return IndexDump(troves, count - len(troves), revisions, inputs, logs,
                     {"last_id": last_id, "troves": count, "sha256": hasher.hexdigest()})


def _marks(base: dict, count: int, hasher) -> bool:
    """Whether the troves hashed so far (*count* of them) are the ones *base* marks."""
    return count == base["troves"] and hasher.hexdigest() == base["sha256"]


def _read_troves(conn, after: int, position: dict[int, int], first: int) -> list[dict]:
    """The snapshot entries of the troves whose id is above *after*, in commit order (*first*:
    the position of the first of them)."""
    rows = conn.execute("SELECT id, name, label, upstream, source_count, build_count, flavor, kind, info,"
                        " committed_at FROM troves WHERE id > ? ORDER BY id", (after,)).fetchall()
    troves = [{"name": r[1], "version": f"{r[2]}/{r[3]}-{r[4]}-{r[5]}", "flavor": r[6], "kind": r[7],
               "info": json.loads(r[8]), "committed_at": r[9], "files": [], "provides": [], "requires": [],
               "members": []} for r in rows]

    def entry(tid: int) -> dict:
        return troves[position[tid] - first]

    for tid, *f in conn.execute("SELECT trove_id, path, type, mode, owner, grp, size, sha256, target, config,"
                                " rdev, mtime FROM files WHERE trove_id > ? ORDER BY trove_id, path", (after,)):
        entry(tid)["files"].append(f)
    for table in ("provides", "requires"):
        for tid, cls, name, flags in conn.execute(
                f"SELECT trove_id, cls, name, flags FROM {table} WHERE trove_id > ?"
                f" ORDER BY trove_id, cls, name, flags", (after,)):
            entry(tid)[table].append([cls, name, flags])
    for tid, name, version, flavor in conn.execute(
            "SELECT parent_id, name, version, flavor FROM members WHERE parent_id > ? ORDER BY parent_id, position",
            (after,)):
        entry(tid)["members"].append([name, version, flavor])
    return troves


def encode(doc: dict) -> bytes:
    """The canonical JSON bytes of a snapshot document."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


_TROVES_KEY = b',"troves":'


def encode_with_troves(troves_json: bytes, revisions: list, inputs: list, logs: list) -> bytes:
    """The canonical JSON of a snapshot whose ``troves`` list is *troves_json* (canonical JSON
    already): its keys sorted, ``troves`` comes last."""
    head = encode({"build_logs": logs, "format": FORMAT, "inputs": inputs, "source_revisions": revisions})
    return head[:-1] + _TROVES_KEY + troves_json + b"}"


def base_troves_json(body: bytes) -> bytes:
    """The ``troves`` list of the canonical snapshot JSON *body*, as it is there (the last
    key; the lists before it hold no objects, so its key is the first such text). A body
    that is not canonical snapshot JSON is a :class:`BadSnapshot`."""
    at = body.find(_TROVES_KEY)
    troves = body[at + len(_TROVES_KEY):-1] if at > 0 else b""
    if not (body.startswith(b'{"build_logs":[') and troves.startswith(b"[") and body.endswith(b"]}")):
        raise BadSnapshot("not a canonical snapshot: its troves list is not where it belongs")
    try:
        head = json.loads(body[:at] + b"}")
    except ValueError:
        raise BadSnapshot("not a canonical snapshot: what precedes its troves is not JSON") from None
    if head.get("format") != FORMAT:
        raise BadSnapshot(f"not a canonical snapshot: its format is not {FORMAT}")
    return troves


def compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=True, write_checksum=True).compress(data)


def decompress(data: bytes, *, what: str, limit: int = MAX_SNAPSHOT) -> bytes:
    """Uncompress a stored snapshot, refusing more than *limit* bytes (a zip bomb) or damage."""
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        out = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise BadSnapshot(f"{what} is not a zstd-compressed snapshot ({exc})") from None
    if len(out) > limit:
        raise BadSnapshot(f"{what} expands to more than {limit} bytes: refused")
    return out


def referenced(doc: dict) -> set[str]:
    """Every content digest the snapshot's troves name (files, ``*_blob`` info entries, build logs)."""
    found = {f[6] for t in doc["troves"] for f in t["files"] if f[6]}
    found.update(h for _, h in doc.get("build_logs", []))
    for t in doc["troves"]:
        found.update(v for k, v in t["info"].items() if k.endswith("_blob") and isinstance(v, str))
    return found


def parse(data: bytes, *, what: str) -> dict:
    """A snapshot document from its JSON bytes, its shape checked."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSnapshot(f"{what} is not JSON ({exc})") from None
    check(doc, what=what)
    return doc


def check(doc, *, what: str, before: int | None = None) -> None:
    """Refuse a document that is not a well-formed snapshot (a :class:`BadSnapshot` naming the
    problem); with *before* (the troves of its base, which its positions count first), a
    well-formed delta."""
    kind, wanted = ("index snapshot", FORMAT) if before is None else ("index delta", DELTA_FORMAT)
    before = before or 0

    def bad(problem: str) -> BadSnapshot:
        return BadSnapshot(f"{what} is not a valid {kind}: {problem}")

    if not isinstance(doc, dict) or doc.get("format") != wanted:
        raise bad(f"its format is not {wanted}")
    troves, revisions, inputs = doc.get("troves"), doc.get("source_revisions"), doc.get("inputs")
    if not isinstance(troves, list) or not isinstance(revisions, list) or not isinstance(inputs, list):
        raise bad("troves, source_revisions and inputs must be lists")
    for i, t in enumerate(troves):
        if not isinstance(t, dict) or not all(isinstance(t.get(k), str) for k in ("name", "version", "flavor", "kind")):
            raise bad(f"trove #{i} lacks a name, version, flavor or kind")
        if not isinstance(t.get("info"), dict) or not isinstance(t.get("committed_at"), (int, float)):
            raise bad(f"trove {t['name']} has no info or commit time")
        for key in ("files", "provides", "requires", "members"):
            if not isinstance(t.get(key), list) or not all(isinstance(x, list) for x in t[key]):
                raise bad(f"trove {t['name']}: {key} must be a list of lists")
        for f in t["files"]:
            if (len(f) != 11 or not isinstance(f[0], str) or not f[0].startswith("/") or f[1] not in FILE_TYPES
                    or "\0" in f[0] or ".." in f[0].split("/")
                    or not all(isinstance(f[j], int) and not isinstance(f[j], bool) for j in (2, 5, 8, 9, 10))
                    or not isinstance(f[3], str) or not isinstance(f[4], str)
                    or not (f[6] is None or is_digest(f[6])) or not (f[7] is None or isinstance(f[7], str))):
                raise bad(f"trove {t['name']}: bad file entry {str(f)[:120]}")
        for key in ("provides", "requires", "members"):
            for d in t[key]:
                if len(d) != 3 or not all(isinstance(x, str) for x in d):
                    raise bad(f"trove {t['name']}: bad {key} entry {str(d)[:120]}")
    for r in revisions:
        if (len(r) != 5 or not all(isinstance(r[j], str) for j in (0, 1, 2, 4)) or not isinstance(r[3], int)):
            raise bad(f"bad source revision {str(r)[:120]}")
    logs = doc.get("build_logs", [])
    if not isinstance(logs, list) or not all(
            isinstance(x, list) and len(x) == 2 and isinstance(x[0], int) and not isinstance(x[0], bool)
            and before <= x[0] < before + len(troves) and is_digest(x[1]) for x in logs):
        raise bad("build_logs must be [trove index, sha256] pairs of its troves")
    for h in inputs:
        if (len(h) != 2 or not isinstance(h[0], str) or not isinstance(h[1], int)
                or not 0 <= h[1] < before + len(troves)):
            raise bad(f"bad input entry {str(h)[:120]}")


def load(doc: dict, conn) -> None:
    """Write the snapshot *doc* (checked) into the new, empty index behind *conn*, in one
    transaction."""
    with _consistent(), index.write_transaction(conn) as db:
        ids = _insert_troves(db, doc["troves"])
        db.executemany("INSERT INTO source_revisions VALUES (?, ?, ?, ?, ?)", doc["source_revisions"])
        db.executemany("INSERT INTO inputs VALUES (?, ?)", [(h, ids[i]) for h, i in doc["inputs"]])
        db.executemany("INSERT INTO build_logs VALUES (?, ?)", [(ids[i], h) for i, h in doc.get("build_logs", [])])
        db.execute("INSERT OR REPLACE INTO meta VALUES ('snapshot_loaded', ?)", (str(time.time()),))


@contextmanager
def _consistent():
    """A snapshot the index's constraints refuse is a :class:`BadSnapshot`."""
    import sqlite3

    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise BadSnapshot(f"the snapshot is inconsistent ({exc})") from None


def _insert_troves(db, troves: list[dict]) -> list[int]:
    """Insert checked snapshot troves in order; their new ids."""
    from appbuilder.repository.versions import Version

    ids = []
    for t in troves:
        try:
            v = Version.parse(t["version"])
            index.key_flavor(t["flavor"])
            for k in ("provides", "requires"):
                for c, n, fl in t[k]:
                    Dependency(c, n, frozenset(fl.split()))
            for _, version, flavor in t["members"]:
                Version.parse(version)
                index.key_flavor(flavor)
        except (RepositoryError, ValueError) as exc:
            raise BadSnapshot(f"trove {t['name']} in the snapshot: {exc}") from None
        cur = db.execute(
            "INSERT INTO troves (name, label, upstream, source_count, build_count, flavor, kind, info,"
            " committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (t["name"], v.label, v.upstream, v.source_count, v.build_count, t["flavor"], t["kind"],
             json.dumps(t["info"], sort_keys=True), t["committed_at"]))
        tid = cur.lastrowid
        ids.append(tid)
        db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [(tid, *f) for f in t["files"]])
        for table in ("provides", "requires"):  # as they were: checked above, kept byte for byte
            db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", [(tid, *d) for d in t[table]])
        db.executemany("INSERT INTO members VALUES (?, ?, ?, ?, ?)",
                       [(tid, i, *m) for i, m in enumerate(t["members"])])
    return ids


def make_delta(old: dict, new: dict, base: str) -> dict | None:
    """The delta from snapshot *old* (whose JSON hashes to *base*) to *new*; None when *new*
    does not start with every trove of *old* (then only a whole snapshot will do)."""
    n = len(old["troves"])
    if len(new["troves"]) < n or new["troves"][:n] != old["troves"]:
        return None
    old_logs = old.get("build_logs", [])
    if new.get("build_logs", [])[:len(old_logs)] != old_logs:
        return None
    return {"format": DELTA_FORMAT, "base": base, "base_troves": n, "troves": new["troves"][n:],
            "source_revisions": new["source_revisions"], "inputs": new["inputs"],
            "build_logs": [x for x in new.get("build_logs", []) if x[0] >= n]}


def parse_delta(data: bytes, *, what: str) -> dict:
    """A delta document from its JSON bytes, its shape checked."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSnapshot(f"{what} is not JSON ({exc})") from None
    if not isinstance(doc, dict) or not is_digest(doc.get("base")) or not isinstance(doc.get("base_troves"), int) \
            or isinstance(doc.get("base_troves"), bool) or doc["base_troves"] < 0:
        raise BadSnapshot(f"{what} is not a valid index delta: it names no base snapshot and trove count")
    check(doc, what=what, before=doc["base_troves"])
    return doc


def apply_delta(delta: dict, conn) -> None:
    """Bring the index behind *conn* (a copy of the delta's base, nothing committed to it) to
    the delta's snapshot, in one transaction: its troves appended, source revisions and
    inputs replaced."""
    with _consistent(), index.write_transaction(conn) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM troves ORDER BY id")]
        if len(ids) != delta["base_troves"]:
            raise BadSnapshot(f"the index holds {len(ids)} troves, the delta's base {delta['base_troves']}")
        ids += _insert_troves(db, delta["troves"])
        db.execute("DELETE FROM source_revisions")
        db.executemany("INSERT INTO source_revisions VALUES (?, ?, ?, ?, ?)", delta["source_revisions"])
        db.execute("DELETE FROM inputs")
        db.executemany("INSERT INTO inputs VALUES (?, ?)", [(h, ids[i]) for h, i in delta["inputs"]])
        db.executemany("INSERT INTO build_logs VALUES (?, ?)",
                       [(ids[i], h) for i, h in delta.get("build_logs", [])])
        db.execute("INSERT OR REPLACE INTO meta VALUES ('snapshot_loaded', ?)", (str(time.time()),))
