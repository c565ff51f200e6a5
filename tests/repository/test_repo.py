"""The repository: version allocation, look-ups, gc, and commits that survive kill -9
and concurrent writers."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest

from appbuilder.core.errors import RepositoryError
from appbuilder.repository.deps import Dependency
from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository
from appbuilder.repository.trove import COMPONENT, PACKAGE, FileEntry
from appbuilder.repository.versions import NVF, Flavor, TroveSpec, Version

LABEL = "cernvm@cvm:2"


@pytest.fixture
def repo(tmp_path):
    r = Repository(tmp_path / "repo", LABEL)
    yield r
    r.close()


def stored_file(repo: Repository, path: str, data: bytes, **kw) -> FileEntry:
    return FileEntry(path=path, type="file", mode=kw.pop("mode", 0o644), size=len(data),
                     sha256=repo.store.put_bytes(data), **kw)


def package(repo: Repository, name: str = "hello", upstream: str = "1.0", arch: str | None = "x86_64", *,
            source: str = "src-1", input_hash: str | None = None, rebuild: bool = False,
            provides=(), files: dict[str, bytes] | None = None, label: str | None = None) -> PackageBuild:
    files = files if files is not None else {f"/usr/bin/{name}": f"{name} {upstream} {source}".encode()}
    runtime = ComponentContents(
        f"{name}:runtime",
        files=[stored_file(repo, p, d, mode=0o755) for p, d in files.items()],
        provides={Dependency.parse(p) for p in provides},
        requires={Dependency.parse("file: /bin/sh")},
    )
    doc = ComponentContents(f"{name}:doc", files=[stored_file(repo, f"/usr/share/doc/{name}/README", b"readme")])
    return PackageBuild(name, upstream, Flavor(arch), source, [runtime, doc], input_hash=input_hash,
                        rebuild=rebuild, label=label)


def revisions(repo: Repository, name: str) -> list[str]:
    return [f"{n.version.revision}[{n.flavor}]" for n in repo.versions(name)]


# ----------------------------------------------------------------- version allocation


def test_first_commit_is_1_1_and_records_package_and_components(repo):
    pkg = repo.commit_package(package(repo))
    assert str(pkg.nvf) == "hello=cernvm@cvm:2/1.0-1-1[is: x86_64]"
    assert pkg.kind == PACKAGE
    assert [m.name for m in pkg.members] == ["hello:doc", "hello:runtime"]
    got = repo.get(pkg.nvf)
    assert got.members == pkg.members and got.info["source_hash"] == "src-1"
    runtime = repo.get(repo.find_one("hello:runtime"))
    assert runtime.kind == COMPONENT and runtime.version == pkg.version
    assert [f.path for f in runtime.files] == ["/usr/bin/hello"]
    assert runtime.files[0].mode == 0o755
    assert repo.store.read(runtime.files[0].sha256) == b"hello 1.0 src-1"
    assert runtime.requires == {Dependency.parse("file: /bin/sh")}


def test_same_source_next_build_count_per_flavor(repo):
    repo.commit_package(package(repo))
    repo.commit_package(package(repo))
    repo.commit_package(package(repo, arch="x86"))
    repo.commit_package(package(repo))
    repo.commit_package(package(repo, arch="x86"))
    repo.commit_package(package(repo, arch=None))
    assert revisions(repo, "hello") == [
        "1.0-1-1[is: x86_64]", "1.0-1-2[is: x86_64]", "1.0-1-1[is: x86]",
        "1.0-1-3[is: x86_64]", "1.0-1-2[is: x86]", "1.0-1-1[]",
    ]
    # components carry the package's version
    assert revisions(repo, "hello:doc") == revisions(repo, "hello")


def test_new_source_hash_bumps_source_count_and_restarts_builds(repo):
    repo.commit_package(package(repo, source="a"))
    repo.commit_package(package(repo, source="a"))
    repo.commit_package(package(repo, source="b"))
    repo.commit_package(package(repo, source="b", arch="x86"))
    repo.commit_package(package(repo, source="b"))
    # going back to an older source is a new source revision, not the old one again
    repo.commit_package(package(repo, source="a"))
    assert revisions(repo, "hello") == [
        "1.0-1-1[is: x86_64]", "1.0-1-2[is: x86_64]", "1.0-2-1[is: x86_64]",
        "1.0-2-1[is: x86]", "1.0-2-2[is: x86_64]", "1.0-3-1[is: x86_64]",
    ]


def test_new_upstream_starts_at_1_1(repo):
    repo.commit_package(package(repo, "hello", "1.0", source="a"))
    repo.commit_package(package(repo, "hello", "1.0", source="b"))
    repo.commit_package(package(repo, "hello", "1.1", source="b"))
    repo.commit_package(package(repo, "hello", "1.1", source="c"))
    # another package's counts are its own
    repo.commit_package(package(repo, "other", "1.0", source="a"))
    assert revisions(repo, "hello") == ["1.0-1-1[is: x86_64]", "1.0-2-1[is: x86_64]",
                                        "1.1-1-1[is: x86_64]", "1.1-2-1[is: x86_64]"]
    assert revisions(repo, "other") == ["1.0-1-1[is: x86_64]"]


def test_other_label_counts_separately(repo):
    repo.commit_package(package(repo))
    pkg = repo.commit_package(package(repo, label="cernvm@cvm:3"))
    assert str(pkg.version) == "cernvm@cvm:3/1.0-1-1"
    assert repo.versions("hello", label="cernvm@cvm:3") == [pkg.nvf]
    with pytest.raises(RepositoryError, match="bad label"):
        repo.commit_package(package(repo, label="nolabel"))


def test_same_input_hash_is_reused_not_recommitted(repo):
    first = repo.commit_package(package(repo, input_hash="in-1"))
    again = repo.commit_package(package(repo, input_hash="in-1"))
    assert again.nvf == first.nvf
    assert len(repo.versions("hello")) == 1 and len(repo.versions("hello:runtime")) == 1
    assert repo.by_input("in-1") == first.nvf
    assert repo.by_input("in-unknown") is None


def test_a_group_is_restored_with_its_recorded_version_and_pins(repo):
    from appbuilder.repository.repo import GroupBuild

    pkg = repo.commit_package(package(repo))
    members = [pkg.nvf, *(c for c in pkg.members)]
    nvf = NVF("group-x", Version(LABEL, "2.0", 1, 7), Flavor("x86_64"))
    info = {"image_group": True, "source_date_epoch": 1_700_000_123, "input_hash": "closure-1", "source_hash": "grp-1"}
    group = repo.restore_group(nvf, members, info)
    assert group.nvf == nvf and sorted(group.members) == sorted(members)
    assert repo.get(nvf, with_files=False).info["source_date_epoch"] == 1_700_000_123
    assert repo.restore_group(nvf, members, info).nvf == nvf  # already there: kept as it is
    # resolving the same closure again names the restored version, not a new one
    again, new = repo.commit_group(GroupBuild("group-x", "2.0", Flavor("x86_64"), "grp-1", "closure-1", members))
    assert again.nvf == nvf and not new
    # a pin the repository lacks: a clear error, nothing recorded
    ghost = NVF("ghost", Version(LABEL, "1.0", 1, 1), Flavor("x86_64"))
    other = NVF("group-y", Version(LABEL, "1.0", 1, 1), Flavor("x86_64"))
    with pytest.raises(RepositoryError, match="lacks 1 of its pins: ghost="):
        repo.restore_group(other, [*members, ghost], info)
    assert repo.versions("group-y") == []


def test_nvf_parses_what_it_prints():
    text = "busybox:runtime=cernvm@cvm:2/1.35.0-1-3[is: x86_64]"
    assert str(NVF.parse(text)) == text
    assert str(NVF.parse("keys=cernvm@cvm:2/1.0-1-1[]")) == "keys=cernvm@cvm:2/1.0-1-1[]"
    with pytest.raises(RepositoryError, match="bad trove identity"):
        NVF.parse("busybox")


def test_rebuild_gives_a_new_build_count_and_takes_over_the_input_hash(repo):
    first = repo.commit_package(package(repo, input_hash="in-1"))
    forced = repo.commit_package(package(repo, input_hash="in-1", rebuild=True))
    assert first.version.revision == "1.0-1-1" and forced.version.revision == "1.0-1-2"
    assert repo.by_input("in-1") == forced.nvf
    assert repo.get(forced.nvf).info["input_hash"] == "in-1"


def test_commit_refuses_contents_missing_from_the_store(repo):
    build = package(repo)
    build.components[0].files.append(FileEntry("/usr/bin/ghost", "file", 0o755, size=3, sha256="f" * 64))
    with pytest.raises(RepositoryError, match="contents not in the store.*/usr/bin/ghost"):
        repo.commit_package(build)
    assert repo.versions("hello") == [] and repo.names() == []


def test_failed_transaction_rolls_back_everything(repo):
    """A commit that fails half way (a duplicate component) leaves no trace, not even a source revision."""
    build = package(repo, source="s1")
    build.components.append(ComponentContents("hello:doc", files=[]))  # the same component twice
    with pytest.raises(sqlite3.IntegrityError):
        repo.commit_package(build)
    assert repo.names() == []
    assert repo.db.execute("SELECT COUNT(*) FROM source_revisions").fetchone()[0] == 0
    assert repo.db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0
    assert repo.commit_package(package(repo, source="s2")).version.revision == "1.0-1-1"


# ----------------------------------------------------------------- reading


@pytest.fixture
def filled(repo):
    repo.commit_package(package(repo, "hello", "1.0", source="a"))
    repo.commit_package(package(repo, "hello", "1.0", "x86", source="a"))
    repo.commit_package(package(repo, "hello", "1.0", source="b"))
    repo.commit_package(package(repo, "hello", "1.1", source="b"))
    repo.commit_package(package(repo, "noarch", "2", None, source="a"))
    repo.commit_package(package(repo, "libz", "1.3", "x86_64", provides=["soname: ELF64/libz.so.1(ZLIB_1.2 x86_64)"],
                                files={"/usr/lib64/libz.so.1": b"z64"}))
    repo.commit_package(package(repo, "libz", "1.3", "x86", provides=["soname: ELF32/libz.so.1(ZLIB_1.2 x86)"],
                                files={"/usr/lib/libz.so.1": b"z32"}))
    return repo


def test_find_by_name_version_and_flavor(filled):
    r = filled
    assert [str(n.version.revision) for n in r.find("hello")] == ["1.0-1-1", "1.0-1-1", "1.0-2-1", "1.1-1-1"]
    assert [n.version.revision for n in r.find("hello=1.0")] == ["1.0-1-1", "1.0-1-1", "1.0-2-1"]
    assert [n.version.revision for n in r.find("hello=1.0-2")] == ["1.0-2-1"]
    assert [str(n.flavor) for n in r.find("hello[is: x86]")] == ["is: x86"]
    assert [n.version.revision for n in r.find("hello", arch="x86")] == ["1.0-1-1"]
    assert r.find("hello=cernvm@cvm:2/1.1-1-1") == [r.latest("hello", arch="x86_64")]
    assert r.find("hello=9.9") == [] and r.find("nothing") == []
    assert r.find(TroveSpec("hello", "1.1")) == r.find("hello=1.1")


def test_find_one_gives_newest_or_says_what_exists(filled):
    r = filled
    assert r.find_one("hello").version.revision == "1.1-1-1"
    assert r.find_one("hello", arch="x86").flavor == Flavor("x86")
    with pytest.raises(RepositoryError, match=r"no trove matches hello=2\.0; it has: .*1\.1-1-1\[is: x86_64\]"):
        r.find_one("hello=2.0")
    with pytest.raises(RepositoryError, match="no trove matches nosuch; there is no trove of that name"):
        r.find_one("nosuch")
    with pytest.raises(RepositoryError, match="no trove matches"):
        r.find_one(TroveSpec("hello", None, Flavor("x86")), arch="x86_64")


def test_find_one_says_when_only_another_arch_was_cooked(filled):
    r = filled
    r.commit_package(package(r, "only64", "1.0"))
    with pytest.raises(RepositoryError, match=r"it has: 1\.0-1-1\[is: x86_64\] \(none for x86: cook it with --arch x86"):
        r.find_one("only64", arch="x86")
    with pytest.raises(RepositoryError) as err:  # hello has x86 builds: the version is what is missing
        r.find_one("hello=2.0", arch="x86")
    assert "none for x86" not in str(err.value)


def test_latest_prefers_the_exact_flavor_and_accepts_arch_independent(filled):
    r = filled
    assert r.latest("hello", arch="x86").flavor == Flavor("x86")
    assert r.latest("hello", arch="x86_64").version.revision == "1.1-1-1"
    assert r.latest("noarch", arch="x86").flavor == Flavor(None)
    assert r.latest("nothing") is None
    r.commit_package(package(r, "noarch", "2", "x86", source="a"))
    r.commit_package(package(r, "noarch", "2", None, source="a"))  # newer, but not the exact flavor
    assert r.latest("noarch", arch="x86").flavor == Flavor("x86")
    assert r.latest("noarch").flavor == Flavor(None)


def test_providers_match_flags_and_elf_class(filled):
    r = filled
    p64 = r.providers(Dependency.parse("soname: ELF64/libz.so.1(x86_64)"))
    assert [(n.name, str(n.flavor)) for n in p64] == [("libz:runtime", "is: x86_64")]
    assert r.providers(Dependency.parse("soname: ELF64/libz.so.1(ZLIB_1.2 x86_64)")) == p64
    assert r.providers(Dependency.parse("soname: ELF64/libz.so.1(ZLIB_9.9 x86_64)")) == []
    p32 = r.providers(Dependency.parse("soname: ELF32/libz.so.1"))
    assert [str(n.flavor) for n in p32] == ["is: x86"]
    assert r.providers(Dependency.parse("soname: ELF64/libz.so.1(x86)")) == []
    assert r.providers(Dependency.parse("trove: libz:runtime")) == []


def test_owners_of_a_path(filled):
    r = filled
    owners = r.owners("/usr/bin/hello")
    assert {n.name for n in owners} == {"hello:runtime"} and len(owners) == 4
    assert [n.name for n in r.owners("/usr/lib/libz.so.1")] == ["libz:runtime"]
    assert r.owners("/nowhere") == []


def test_names_packages_and_get(filled):
    r = filled
    assert "hello" in r.names() and "hello:runtime" in r.names()
    assert {n.name for n in r.packages()} == {"hello", "noarch", "libz"}
    assert r.groups() == []
    nvf = r.find_one("hello:doc")
    assert r.get(nvf, with_files=False).files == []
    assert [f.path for f in r.get(nvf).files] == ["/usr/share/doc/hello/README"]
    with pytest.raises(RepositoryError, match="no trove hello:doc="):
        r.get(NVF(nvf.name, Version.parse(f"{LABEL}/7.0-1-1"), nvf.flavor))


# ----------------------------------------------------------------- gc


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_gc_removes_only_unreferenced_objects_older_than_the_grace(repo):
    pkg = repo.commit_package(package(repo))
    referenced = repo.referenced_contents()
    blob = repo.store.put_bytes(b"a build log")
    repo.commit_package(PackageBuild("logged", "1", Flavor("x86_64"), "s", [], build_log=blob))
    old_orphan = repo.store.put_bytes(b"left by a cook killed before its commit")
    new_orphan = repo.store.put_bytes(b"stored by a cook that has not committed yet")
    for digest in [*referenced, blob, old_orphan]:
        _age(repo.store.path_of(digest), 7200)
    leftover = repo.store.tmp / "obj-interrupted"
    leftover.write_bytes(b"half")
    _age(leftover, 7200)

    size = repo.store.path_of(old_orphan).stat().st_size
    assert repo.gc(grace_seconds=3600) == (1, size)
    assert not repo.store.has(old_orphan)
    assert repo.store.has(new_orphan)  # within the grace period
    assert all(repo.store.has(d) for d in referenced) and repo.store.has(blob)
    assert not leftover.exists()
    # every file of the package is still readable
    for m in pkg.members:
        for f in repo.get(m).files:
            assert repo.store.read(f.sha256)
    assert repo.gc(grace_seconds=0)[0] == 1 and not repo.store.has(new_orphan)
    assert repo.gc(grace_seconds=0) == (0, 0)


# ----------------------------------------------------------------- kill -9 and concurrent writers

WRITER = r"""
import sys, time
from appbuilder.repository import index
from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.versions import Flavor
from appbuilder.repository.deps import Dependency

path, name, tag, count, nfiles, arch, source_mode, pause = sys.argv[1:9]
count, nfiles = int(count), int(nfiles)

if pause == "pause-in-transaction":  # stop for good inside the transaction, after every insert
    real_insert = index.insert_trove
    def insert_and_hang(conn, trove, committed_at):
        tid = real_insert(conn, trove, committed_at)
        if trove.kind == "package":
            print("in-transaction", flush=True)
            time.sleep(600)
        return tid
    index.insert_trove = insert_and_hang

repo = Repository(path, "cernvm@cvm:2")
print("ready", flush=True)
for i in range(count):
    comps = []
    for comp in ("lib", "runtime"):
        files = []
        for j in range(nfiles):
            data = (f"{tag} {i} {comp} {j}\n" * 30).encode()
            files.append(FileEntry(f"/usr/share/{name}/{comp}/{j:04d}", "file", 0o644, size=len(data),
                                   sha256=repo.store.put_bytes(data)))
        comps.append(ComponentContents(f"{name}:{comp}", files,
                                       provides={Dependency("file", f"/usr/share/{name}/{comp}/0000")}))
    source = f"{tag}-{i}" if source_mode == "new-source" else "same-source"
    pkg = repo.commit_package(PackageBuild(name, "1.0", Flavor(arch), source, comps))
    print("committed", pkg.version.revision, flush=True)
"""

COMPONENTS = ("lib", "runtime")


def writer(repo_path: Path, name: str, tag: str, *, count: int = 1000, nfiles: int = 150, arch: str = "x86_64",
           source_mode: str = "new-source", pause: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(repo_path), name, tag, str(count), str(nfiles), arch, source_mode,
         pause or "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def check_consistent(repo_path: Path, name: str, nfiles: int) -> list:
    """The invariants a reader must always see; returns the package NVFs."""
    repo = Repository(repo_path, LABEL)
    try:
        assert repo.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert repo.db.execute("PRAGMA foreign_key_check").fetchall() == []
        packages = repo.find(name)
        member_nvfs = set()
        for nvf in packages:
            pkg = repo.get(nvf)
            assert sorted(m.name for m in pkg.members) == [f"{name}:{c}" for c in COMPONENTS]
            for m in pkg.members:
                assert m.version == nvf.version and m.flavor == nvf.flavor
                comp = repo.get(m)  # raises when the member is missing
                assert len(comp.files) == nfiles, f"{m} has {len(comp.files)} files"
                assert comp.provides
                for f in comp.files:
                    assert repo.store.has(f.sha256), f"{m}: {f.path} content {f.sha256} missing"
                member_nvfs.add(m)
        # no component is visible without the package that holds it
        components = {n for c in COMPONENTS for n in repo.find(f"{name}:{c}")}
        assert components == member_nvfs
        # and no row of a commit that did not finish: troves, files, dependencies
        mine = "(name=? OR name LIKE ?)"
        args = (name, f"{name}:%")
        counts = dict(repo.db.execute(f"SELECT kind, COUNT(*) FROM troves WHERE {mine} GROUP BY kind", args))
        assert counts.get("package", 0) == len(packages)
        assert counts.get("component", 0) == len(COMPONENTS) * len(packages)
        ids = f"SELECT id FROM troves WHERE {mine}"
        assert repo.db.execute(f"SELECT COUNT(*) FROM files WHERE trove_id IN ({ids})", args).fetchone()[0] == \
            len(COMPONENTS) * nfiles * len(packages)
        assert repo.db.execute(f"SELECT COUNT(*) FROM provides WHERE trove_id IN ({ids})", args).fetchone()[0] == \
            len(COMPONENTS) * len(packages)
        assert repo.db.execute(f"SELECT COUNT(*) FROM members WHERE parent_id IN ({ids})", args).fetchone()[0] == \
            len(COMPONENTS) * len(packages)
        # nothing dangles: every file, dependency and member row belongs to a trove
        for table, col in (("files", "trove_id"), ("provides", "trove_id"), ("members", "parent_id")):
            assert repo.db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {col} NOT IN (SELECT id FROM troves)").fetchone()[0] == 0
        # no source revision was recorded by a commit that did not happen
        assert repo.db.execute("SELECT COUNT(*) FROM source_revisions WHERE name=?", (name,)).fetchone()[0] == \
            len({n.version.source_count for n in packages})
        return packages
    finally:
        repo.close()


def test_kill_9_during_commits_leaves_the_previous_state_intact(tmp_path):
    """Robustness (a few seconds): a writer committing in a loop is SIGKILLed at ten
    different moments; after each kill the repository holds exactly the commits that
    finished, each whole, and nothing of the one that was cut short."""
    repo_path = tmp_path / "repo"
    nfiles = 150
    rng = random.Random(20240601)
    total = 0
    saw_progress = 0
    for round_ in range(10):
        proc = writer(repo_path, "pkg", f"round{round_}", nfiles=nfiles)
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        seen = ""
        if round_ % 2:  # every other round, kill only once commits are under way, however slow the disk
            seen = proc.stdout.readline()
            assert seen.startswith("committed"), proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        printed = (seen + out).count("committed")

        saw_progress += printed > 0
        packages = check_consistent(repo_path, "pkg", nfiles)
        # the last commit may have finished just before the kill, without being printed
        assert printed <= len(packages) - total <= printed + 1
        total = len(packages)
        # every commit had a new source: counts run 1..n without a gap or a repeat
        assert sorted(n.version.source_count for n in packages) == list(range(1, total + 1))
        assert {n.version.build_count for n in packages} <= {1}
    assert saw_progress >= 5 and total >= 5  # the kills did land between and during commits

    # what killed writers stored but never committed is invisible, and gc removes it
    repo = Repository(repo_path, LABEL)
    try:
        repo.gc(grace_seconds=0)
        referenced = repo.referenced_contents()
        assert set(repo.store.iter_digests()) == referenced
        assert list(repo.store.tmp.iterdir()) == []
    finally:
        repo.close()
    check_consistent(repo_path, "pkg", nfiles)


def test_kill_9_inside_the_transaction_commits_nothing(tmp_path):
    repo_path = tmp_path / "repo"
    done = writer(repo_path, "pkg", "first", count=1, nfiles=20)
    assert done.wait(timeout=60) == 0, done.stderr.read()

    proc = writer(repo_path, "pkg", "second", count=1, nfiles=20, pause="pause-in-transaction")
    assert proc.stdout.readline() == "ready\n", proc.stderr.read()
    assert proc.stdout.readline() == "in-transaction\n", proc.stderr.read()
    # a reader meanwhile opens the repository at once and sees only the finished commit
    with ThreadPoolExecutor(1) as pool:
        reader = pool.submit(check_consistent, repo_path, "pkg", 20)
        try:
            seen = reader.result(timeout=20)
        except FutureTimeout:
            proc.kill()  # lets the blocked reader go
            raise AssertionError("a reader opening the repository waited for a running commit") from None
    assert len(seen) == 1
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)

    packages = check_consistent(repo_path, "pkg", 20)
    assert [n.version.revision for n in packages] == ["1.0-1-1"]
    # the next commit gets the version the killed one would have had
    again = writer(repo_path, "pkg", "third", count=1, nfiles=20)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "committed 1.0-2-1" in out
    assert [n.version.revision for n in check_consistent(repo_path, "pkg", 20)] == ["1.0-1-1", "1.0-2-1"]


def test_two_writers_at_once_both_succeed_with_unique_versions(tmp_path):
    """Two processes commit to one (new) repository at the same time: same source
    (build counts must interleave) and new sources (source counts must interleave)."""
    repo_path = tmp_path / "repo"
    n = 12
    procs = [
        writer(repo_path, "same", "a", count=n, nfiles=30, source_mode="same-source"),
        writer(repo_path, "same", "b", count=n, nfiles=30, source_mode="same-source"),
        writer(repo_path, "fresh", "a", count=n, nfiles=30),
        writer(repo_path, "fresh", "b", count=n, nfiles=30),
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.count("committed") == n

    same = check_consistent(repo_path, "same", 30)
    assert sorted(v.version.build_count for v in same) == list(range(1, 2 * n + 1))
    assert {v.version.source_count for v in same} == {1}
    fresh = check_consistent(repo_path, "fresh", 30)
    assert sorted(v.version.source_count for v in fresh) == list(range(1, 2 * n + 1))
    # what each writer was told matches the repository
    told_same = sorted(line.split()[1] for out, _ in results[:2] for line in out.splitlines() if line.startswith("committed"))
    assert told_same == sorted(v.version.revision for v in same)
    assert len(set(told_same)) == 2 * n
