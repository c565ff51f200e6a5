"""The repository: the content store plus the index, behind one small interface.

Writers hand over a :class:`PackageBuild` (a package and the contents of its
components, without versions); the repository allocates the version inside the same
transaction that records it:

* same upstream and the same source hash as the newest source revision: same source
  count, next build count for that flavor;
* a different source hash: next source count, build count 1;
* a new upstream version: counts start again at 1-1.

Readers ask for troves by name, by exact NVF, by what they provide or by the paths
they own.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from appbuilder.core.errors import RepositoryError
from appbuilder.repository import index
from appbuilder.repository.deps import Dependency
from appbuilder.repository.index import (
    NVF_COLUMNS,
    flavor_key,
    row_nvf,
    write_transaction,
)
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import COMPONENT, GROUP, PACKAGE, FileEntry, Trove
from appbuilder.repository.versions import NVF, Flavor, TroveSpec, Version, best_match, check_label


@dataclass
class ComponentContents:
    """What a cook or an import found for one component, before it has a version."""

    name: str  # full name, "busybox:runtime"
    files: list[FileEntry] = field(default_factory=list)
    provides: set[Dependency] = field(default_factory=set)
    requires: set[Dependency] = field(default_factory=set)
    info: dict = field(default_factory=dict)


@dataclass
class PackageBuild:
    """A package ready to commit: the repository gives it its version."""

    name: str
    upstream: str
    flavor: Flavor
    source_hash: str  # identity of the recipe and its sources (or of an imported file)
    components: list[ComponentContents]
    input_hash: str | None = None  # everything that went into the build; reused to skip
    info: dict = field(default_factory=dict)
    label: str | None = None
    rebuild: bool = False  # a forced rebuild of the same inputs: new build count
    # the digest of the stored build log: kept beside the package, not part of it (two cooks of
    # the same inputs make the same package; their logs differ, a parallel make's order alone)
    build_log: str | None = None


@dataclass
class GroupBuild:
    """A resolved group ready to commit: the repository gives it its version."""

    name: str
    upstream: str
    flavor: Flavor
    source_hash: str  # the group recipe
    input_hash: str  # the recipe and the exact closure
    members: list[NVF]
    requires: set[Dependency] = field(default_factory=set)
    info: dict = field(default_factory=dict)
    label: str | None = None


class Repository:
    """A versioned, content-addressed trove repository in one directory."""

    def __init__(self, path: Path | str, label: str):
        self.path = Path(path)
        self.label = check_label(label)
        self.path.mkdir(parents=True, exist_ok=True)
        self.store = ContentStore(self.path)
        self._local = threading.local()
        self._connections: list = []
        self.db  # create the schema now, in the caller's thread

    @property
    def db(self):
        """This thread's connection to the index (SQLite connections are per thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = index.connect(self.path / "index.sqlite")
            self._connections.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._connections:
            conn.close()
        self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ writing

    def commit_package(self, build: PackageBuild) -> Trove:
        """Record a package and its components atomically; returns the package trove.

        File contents must already be in the content store.
        """
        return self.commit_packages([build])[0]

    def commit_packages(self, builds: list[PackageBuild]) -> list[Trove]:
        """Record several packages in one transaction (all or none), after one sync of the
        store: what an import of many upstream packages commits."""
        labels = [check_label(b.label or self.label) for b in builds]
        for build in builds:
            for comp in build.components:
                missing = [f.path for f in comp.files if f.sha256 and not self.store.has(f.sha256)]
                if missing:
                    raise RepositoryError(f"{comp.name}: contents not in the store: {missing[:3]}")
        self.store.sync()
        with write_transaction(self.db) as db:
            return [self._insert_package(db, build, label)[0] for build, label in zip(builds, labels)]

    def _insert_package(self, db, build: PackageBuild, label: str) -> tuple[Trove, bool]:
        """Inside a write transaction: the package trove of *build* and whether it is new."""
        if build.input_hash and not build.rebuild:
            done = db.execute(
                "SELECT trove_id FROM inputs WHERE input_hash=?", (build.input_hash,)
            ).fetchone()
            if done:  # someone committed the very same build meanwhile
                return index.load_trove(db, done[0], with_files=False), False
        version = self._allocate_version(db, build, label)
        now = time.time()
        components = [
            Trove(c.name, version, build.flavor, kind=COMPONENT, files=c.files,
                  provides=c.provides, requires=c.requires, info=c.info)
            for c in sorted(build.components, key=lambda c: c.name)
        ]
        for comp in components:
            index.insert_trove(db, comp, now)
        package = Trove(
            build.name, version, build.flavor, kind=PACKAGE,
            members=[c.nvf for c in components],
            info={**build.info, "source_hash": build.source_hash,
                  "input_hash": build.input_hash},
        )
        pid = index.insert_trove(db, package, now)
        if build.build_log:
            db.execute("INSERT INTO build_logs VALUES (?, ?)", (pid, build.build_log))
        if build.input_hash:  # the newest build of these inputs is the one to reuse
            db.execute("INSERT OR REPLACE INTO inputs VALUES (?, ?)", (build.input_hash, pid))
        return package, True

    def _allocate_version(self, db, build: "PackageBuild | GroupBuild", label: str) -> Version:
        latest = db.execute(
            "SELECT source_count, source_hash FROM source_revisions"
            " WHERE name=? AND label=? AND upstream=? ORDER BY source_count DESC LIMIT 1",
            (build.name, label, build.upstream),
        ).fetchone()
        if latest and latest[1] == build.source_hash:
            source_count = latest[0]
        else:
            source_count = latest[0] + 1 if latest else 1
            db.execute(
                "INSERT INTO source_revisions VALUES (?, ?, ?, ?, ?)",
                (build.name, label, build.upstream, source_count, build.source_hash),
            )
        top = db.execute(
            "SELECT MAX(build_count) FROM troves WHERE name=? AND label=? AND upstream=?"
            " AND source_count=? AND flavor=?",
            (build.name, label, build.upstream, source_count, flavor_key(build.flavor)),
        ).fetchone()[0]
        return Version(label, build.upstream, source_count, (top or 0) + 1)

    def commit_group(self, build: "GroupBuild") -> tuple[Trove, bool]:
        """Record a group trove (exact member pins); returns it and whether it is new.

        The same closure (input hash) yields the existing group version; a new closure
        gets the next build count, a changed group recipe the next source count.
        """
        label = check_label(build.label or self.label)
        with write_transaction(self.db) as db:
            return self._insert_group(db, build, label)

    def _insert_group(self, db, build: "GroupBuild", label: str) -> tuple[Trove, bool]:
        """Inside a write transaction: the group trove of *build* and whether it is new."""
        done = db.execute("SELECT trove_id FROM inputs WHERE input_hash=?", (build.input_hash,)).fetchone()
        if done:
            return index.load_trove(db, done[0], with_files=False), False
        version = self._allocate_version(db, build, label)
        group = Trove(build.name, version, build.flavor, kind=GROUP, members=list(build.members),
                      requires=set(build.requires),
                      info={**build.info, "source_hash": build.source_hash, "input_hash": build.input_hash})
        gid = index.insert_trove(db, group, time.time())
        db.execute("INSERT INTO inputs VALUES (?, ?)", (build.input_hash, gid))
        return group, True

    def restore_group(self, nvf: NVF, members: list[NVF], info: dict) -> Trove:
        """Record a group trove with the exact version and pins recorded elsewhere (an image
        store's manifest), when this repository lacks it: rebuilding that version needs the
        very pins, not a new resolution. Every member must be in the repository; the
        group's input hash is recorded too, so resolving the same closure later gives this
        same version."""
        label = check_label(nvf.version.label)
        with write_transaction(self.db) as db:
            tid = index.trove_id(db, nvf)
            if tid is not None:
                return index.load_trove(db, tid, with_files=False)
            missing = [m for m in members if index.trove_id(db, m) is None]
            if missing:
                def has(m: NVF) -> str:
                    have = [n.version.revision for n in self.versions(m.name, arch=m.flavor.arch)]
                    return f"{m} (the repository has {', '.join(have) if have else 'no version'})"

                raise RepositoryError(f"cannot restore {nvf}: the repository lacks {len(missing)} of its pins: "
                                      + ", ".join(has(m) for m in missing[:8])
                                      + (" ..." if len(missing) > 8 else ""))
            group = Trove(nvf.name, nvf.version, nvf.flavor, kind=GROUP, members=sorted(members), info=dict(info))
            gid = index.insert_trove(db, group, time.time())
            input_hash = info.get("input_hash")
            if input_hash and not db.execute("SELECT 1 FROM inputs WHERE input_hash=?", (input_hash,)).fetchone():
                db.execute("INSERT INTO inputs VALUES (?, ?)", (input_hash, gid))
            source_hash = info.get("source_hash")
            v = nvf.version
            if source_hash and not db.execute(
                    "SELECT 1 FROM source_revisions WHERE name=? AND label=? AND upstream=? AND source_count=?",
                    (nvf.name, label, v.upstream, v.source_count)).fetchone():
                db.execute("INSERT INTO source_revisions VALUES (?, ?, ?, ?, ?)",
                           (nvf.name, label, v.upstream, v.source_count, source_hash))
        return group

    # ------------------------------------------------------------------ reading

    def by_input(self, input_hash: str) -> NVF | None:
        row = self.db.execute(
            f"SELECT {NVF_COLUMNS} FROM troves JOIN inputs ON inputs.trove_id = troves.id"
            " WHERE input_hash=?",
            (input_hash,),
        ).fetchone()
        return row_nvf(row) if row else None

    def get(self, nvf: NVF, *, with_files: bool = True) -> Trove:
        tid = index.trove_id(self.db, nvf)
        if tid is None:
            raise RepositoryError(f"no trove {nvf} in the repository")
        return index.load_trove(self.db, tid, with_files=with_files)

    def names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT name FROM troves ORDER BY name")]

    def versions(self, name: str, *, arch: str | None = None, label: str | None = None) -> list[NVF]:
        """Every version of *name*, oldest first (commit order)."""
        sql = f"SELECT {NVF_COLUMNS} FROM troves WHERE name=?"
        args: list = [name]
        if label:
            sql += " AND label=?"
            args.append(label)
        sql += " ORDER BY id"
        found = [row_nvf(r) for r in self.db.execute(sql, args)]
        if arch:
            found = [n for n in found if n.flavor.installable_on(arch)]
        return found

    def latest(self, name: str, *, arch: str | None = None, label: str | None = None) -> NVF | None:
        found = self.versions(name, arch=arch, label=label)
        if arch:  # prefer the exact flavor over an architecture-independent one
            exact = [n for n in found if n.flavor.arch is not None]
            found = exact or found
        return found[-1] if found else None

    def find(self, spec: TroveSpec | str, *, arch: str | None = None) -> list[NVF]:
        """Troves matching a user's ``name[=version][[flavor]]``, oldest first."""
        if isinstance(spec, str):
            spec = TroveSpec.parse(spec)
        found = self.versions(spec.name, arch=arch)
        if spec.version:
            found = [n for n in found if n.version.matches(spec.version)]
        if spec.flavor is not None:  # conary's rules: the flags must fit, the architecture be the same
            asked = spec.flavor
            found = [n for n in found if (n.flavor.arch == asked.arch or asked.arch is None and asked.flags)
                     and asked.score(n.flavor) is not None]
        return found

    def find_one(self, spec: TroveSpec | str, *, arch: str | None = None) -> NVF:
        """The newest trove matching *spec*, or an error that says what exists."""
        found = self.find(spec, arch=arch)
        if not found:
            spec_name = spec.name if isinstance(spec, TroveSpec) else TroveSpec.parse(spec).name
            known = self.versions(spec_name)
            hint = (
                "; it has: " + ", ".join(f"{n.version.revision}[{n.flavor}]" for n in known[-5:])
                if known else "; there is no trove of that name"
            )
            if arch and known and not self.versions(spec_name, arch=arch):
                hint += f" (none for {arch}: cook it with --arch {arch}, or import it for {arch})"
            raise RepositoryError(f"no trove matches {spec}{hint}")
        if isinstance(spec, str):
            spec = TroveSpec.parse(spec)
        if spec.flavor is not None and spec.flavor.flags:
            return best_match(found, spec.flavor) or found[-1]
        return found[-1]

    def providers(self, dep: Dependency) -> list[NVF]:
        """Troves with a provision meeting *dep* (by its class's rule: flags included), oldest first."""
        rows = self.db.execute(
            f"SELECT {NVF_COLUMNS}, provides.flags FROM troves JOIN provides ON provides.trove_id = troves.id"
            " WHERE provides.cls=? AND provides.name=? ORDER BY troves.id",
            (dep.kind.name, dep.name),
        )
        meet = dep.kind.flags_meet
        return [row_nvf(r) for r in rows if meet(dep.flags, frozenset(r[6].split()))]

    def owners(self, path: str) -> list[NVF]:
        """Troves holding *path*, oldest first."""
        rows = self.db.execute(
            f"SELECT {NVF_COLUMNS} FROM troves JOIN files ON files.trove_id = troves.id"
            " WHERE files.path=? ORDER BY troves.id",
            (path,),
        )
        return [row_nvf(r) for r in rows]

    def of_kind(self, kind: str) -> list[NVF]:
        rows = self.db.execute(f"SELECT {NVF_COLUMNS} FROM troves WHERE kind=? ORDER BY name, id", (kind,))
        return [row_nvf(r) for r in rows]

    def packages(self) -> list[NVF]:
        return self.of_kind(PACKAGE)

    def groups(self) -> list[NVF]:
        return self.of_kind(GROUP)

    # ------------------------------------------------------------------ upkeep

    def build_log(self, nvf: NVF) -> str | None:
        """The digest of the build log of the package *nvf* (read it with ``store.read``); None
        when it has none (imported capsules). Kept beside the package: not in its info."""
        tid = index.trove_id(self.db, nvf)
        if tid is None:
            raise RepositoryError(f"no trove {nvf} in the repository")
        log = index.build_log(self.db, tid)
        if log is None:  # committed before logs were kept beside troves
            legacy = self.get(nvf, with_files=False).info.get(index.BUILD_LOG)
            log = legacy if isinstance(legacy, str) else None
        return log

    def blobs(self, trove: Trove) -> dict[str, str]:
        """The contents kept beside *trove*'s files, by name: ``*_blob`` info entries and its build log."""
        found = {k: v for k, v in trove.info.items() if k.endswith("_blob") and isinstance(v, str)}
        if trove.kind == PACKAGE:
            log = self.build_log(trove.nvf)
            if log:
                found[index.BUILD_LOG] = log
        return found

    def referenced_contents(self) -> set[str]:
        """Every content digest a trove names: file contents and ``*_blob`` info entries."""
        return index.referenced_contents(self.db)

    def gc(self, *, grace_seconds: float = 3600) -> tuple[int, int]:
        """Delete stored contents no trove references (left by interrupted commits).

        Objects younger than *grace_seconds* are kept: a cook running right now may have
        stored them and not committed yet.
        """
        cutoff = time.time() - grace_seconds
        self.store.sweep_tmp(cutoff)
        keep = self.referenced_contents()
        count = size = 0
        for digest in list(self.store.iter_digests()):
            if digest not in keep and self.store.path_of(digest).stat().st_mtime < cutoff:
                size += self.store.remove(digest)
                count += 1
        return count, size
