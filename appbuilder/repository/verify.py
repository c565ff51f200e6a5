"""Checking what the repository holds, the way ``git fsck`` does (``appbuild verify``,
``appbuild show NAME --verify``).

A repository is sound when

* its index (``index.sqlite``) passes SQLite's ``PRAGMA integrity_check`` and
  ``PRAGMA foreign_key_check``;
* every content a trove names (file entries with a sha256, ``*_blob`` entries of trove
  info such as build logs and RPM headers) has its object in the content store;
* every object in the store decompresses and hashes to its name.

Objects are read through the store's verified reader (hashing while decompressing, one
pass), on every core: zstd and hashlib release the GIL, so threads suffice. A damaged
object is listed with the troves (and paths) that use it, so the user knows what to
restore or rebuild. A damaged index does not stop the check of the objects: they are
kept apart from it and are the part that cannot be rebuilt from recipes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from appbuilder.core.cpus import usable_cpus
from appbuilder.core.ui import human_size
from appbuilder.repository import index
from appbuilder.repository.store import ContentStore, DamagedObject
from appbuilder.repository.versions import NVF

INDEX_NAME = "index.sqlite"
SHOWN_USERS = 5  # troves listed per damaged object
INTEGRITY_ROWS = 20  # problems PRAGMA integrity_check reports at most


@dataclass
class ContentCheck:
    """What reading some objects through found."""

    checked: int = 0  # objects read (or found missing)
    content_bytes: int = 0  # uncompressed bytes that hashed right
    stored_bytes: int = 0  # their compressed size on disk
    damaged: dict[str, DamagedObject] = field(default_factory=dict)  # digest -> what is wrong


@dataclass
class Damage:
    """One damaged object and who uses it."""

    digest: str
    path: Path
    problem: str
    users: list[str]
    more_users: int = 0

    @property
    def kind(self) -> str:
        return "missing" if self.problem == "missing" else "corrupt"


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_repository`."""

    repository: Path
    index_problems: list[str] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)
    contents: ContentCheck = field(default_factory=ContentCheck)
    unreferenced: int = 0  # sound objects no trove names (``appbuild gc`` removes them)

    @property
    def ok(self) -> bool:
        return not self.index_problems and not self.damaged

    @property
    def index_path(self) -> Path:
        return self.repository / INDEX_NAME


def _check_one(store: ContentStore, digest: str) -> tuple[str, int, int, DamagedObject | None]:
    try:
        size = store.check(digest)
        stored = store.path_of(digest).stat().st_size
    except DamagedObject as exc:
        return digest, 0, 0, exc
    except FileNotFoundError:  # removed since it was read (`appbuild gc` running meanwhile)
        return digest, size, 0, None
    return digest, size, stored, None


def check_contents(store: ContentStore, digests: Iterable[str], *, jobs: int | None = None) -> ContentCheck:
    """Read every object of *digests* through (each once) on *jobs* threads (default: every core)."""
    todo = sorted(set(digests))
    result = ContentCheck()
    jobs = max(1, jobs or usable_cpus())
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for digest, size, stored, damage in pool.map(lambda d: _check_one(store, d), todo):
            result.checked += 1
            if damage is None:
                result.content_bytes += size
                result.stored_bytes += stored
            else:
                result.damaged[digest] = damage
    return result


def check_index(conn) -> list[str]:
    """What SQLite finds wrong with the index (empty when it is sound)."""
    problems = [row[0] for row in conn.execute(f"PRAGMA integrity_check({INTEGRITY_ROWS})")]
    if problems == ["ok"]:
        problems = []
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        row = f"row {rowid} of {table}" if rowid is not None else f"a row of {table}"
        problems.append(f"{row} refers to a {parent} row that does not exist")
    return problems


def _users(conn, digest: str, blobs: dict[str, list[tuple[NVF, str]]]) -> tuple[list[str], int]:
    found = [f"{nvf} {path}" for nvf, path in index.content_users(conn, digest)]
    found += [f"{nvf} ({key})" for nvf, key in blobs.get(digest, [])]
    return found[:SHOWN_USERS], max(0, len(found) - SHOWN_USERS)


def verify_repository(repository: Path | str, *, jobs: int | None = None) -> VerifyReport:
    """Check the index and every object of the repository in *repository*."""
    report = VerifyReport(Path(repository))
    store = ContentStore(report.repository)
    conn = None
    referenced: set[str] = set()
    blobs: dict[str, list[tuple[NVF, str]]] = {}
    try:
        conn = index.connect(report.index_path)
        report.index_problems = check_index(conn)
        for nvf, key, digest in index.info_blobs(conn):
            blobs.setdefault(digest, []).append((nvf, key))
        referenced = index.file_contents(conn) | set(blobs)
    except index.IndexProblem as exc:
        report.index_problems.append(exc.detail)
    stored = set(store.iter_digests())
    report.contents = check_contents(store, stored | referenced, jobs=jobs)
    report.unreferenced = len(stored - referenced - set(report.contents.damaged)) if conn else 0
    try:
        for digest, damage in sorted(report.contents.damaged.items()):
            users, more = _users(conn, digest, blobs) if conn else ([], 0)
            report.damaged.append(Damage(digest, damage.path, damage.problem, users, more))
    except index.IndexProblem as exc:
        report.index_problems.append(exc.detail)
    finally:
        if conn is not None:
            conn.close()
    return report


def report_lines(report: VerifyReport) -> list[str]:
    """The damage found, one block per problem (nothing when all is well)."""
    lines: list[str] = []
    if report.index_problems:
        lines.append(f"index {report.index_path}: damaged")
        lines += [f"  {line}" for p in report.index_problems for line in p.splitlines()]
    for d in report.damaged:
        lines.append(f"{d.kind} {d.digest}" + ("" if d.kind == "missing" else f": {d.problem}"))
        lines.append(f"  file: {d.path}")
        if d.users:
            lines += [f"  used by {u}" for u in d.users]
            if d.more_users:
                lines.append(f"  and {d.more_users} more")
        elif report.index_problems:
            lines.append("  (which troves use it is unknown: the index is damaged)")
        else:
            lines.append("  used by no trove (`appbuild gc` removes it)")
    return lines


def summary(report: VerifyReport) -> str:
    """One line: what was checked and whether anything is damaged."""
    c = report.contents
    checked = f"{c.checked} objects ({human_size(c.content_bytes)}, {human_size(c.stored_bytes)} stored)"
    if report.ok:
        extra = f"; {report.unreferenced} not used by any trove (`appbuild gc` removes them)" if report.unreferenced else ""
        return f"verified the index and {checked}: no damage{extra}"
    parts, remedies = [], []
    if report.index_problems:
        parts.append("the index is damaged")
        remedies.append(f"{INDEX_NAME} (without the -wal and -shm files beside it)")
    if report.damaged:
        kinds = {k: sum(d.kind == k for d in report.damaged) for k in ("missing", "corrupt")}
        n = len(report.damaged)
        parts.append(f"{n} damaged object{'s' * (n > 1)} ({', '.join(f'{c} {k}' for k, c in kinds.items() if c)})")
        remedies.append("the damaged object files")
    return (f"checked {checked}: {', '.join(parts)}; restore {' and '.join(remedies)} from a backup of the "
            f"repository, with no appbuild running")


def trove_contents(repo, nvf: NVF) -> set[str]:
    """Every content *nvf* and its members name: files and ``*_blob`` info entries."""
    trove = repo.get(nvf)
    digests: set[str] = set()
    for t in [trove, *(repo.get(m) for m in trove.members)]:
        digests.update(f.sha256 for f in t.files if f.sha256)
        digests.update(repo.blobs(t).values())
    return digests


def check_trove(repo, nvf: NVF, *, jobs: int | None = None) -> ContentCheck:
    """Read every content of one trove (and its members) through (``appbuild show --verify``)."""
    return check_contents(repo.store, trove_contents(repo, nvf), jobs=jobs)
