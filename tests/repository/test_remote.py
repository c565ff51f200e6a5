"""``open_remote``: a repository read over HTTP from an export, fetching (and checking) only what is read."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading

import pytest
import zstandard

from appbuilder.repository.export import export_repository
from appbuilder.repository.snapshot import BadSnapshot
from appbuilder.repository.remote import RemoteError, RemoteRefused, open_remote
from appbuilder.repository.repo import Repository
from appbuilder.repository.serve import RepositoryServer
from tests.conftest import free_port
from tests.repository.conftest import (
    _Quiet,
    commit_synthetic,
    copy_tree,
    open_repository,
    replace_file,
    static_server,
)


@pytest.fixture(scope="module")
def hello_server(hello_repo, repo_keys, tmp_path_factory):
    """``RepositoryServer`` (what ``appbuild repo serve`` runs) on hello_repo, on 127.0.0.1."""
    repo = open_repository(hello_repo)
    with RepositoryServer(repo, tmp_path_factory.mktemp("served") / "tree", signer=repo_keys[0]) as server:
        yield server, repo


def test_a_worker_fetches_only_the_objects_it_reads(hello_server, repo_keys, tmp_path):
    server, repo = hello_server
    remote = open_remote(server.url, tmp_path / "cache", trusted=repo_keys[1])
    assert remote.store.fetched == 0 and remote.packages() == repo.packages()
    hello = remote.get(remote.find_one("hello:runtime", arch="x86_64"))
    needed = {f.sha256 for f in hello.files if f.sha256}
    for f in hello.files:
        if f.type == "file":
            remote.store.copy_to(f.sha256, tmp_path / "out")
            assert (tmp_path / "out").read_bytes() == repo.store.read(f.sha256)
    exported = server.last.objects_written + server.last.objects_skipped
    assert remote.store.fetched == len(needed) and exported > 100 * len(needed)
    assert len(list((tmp_path / "cache" / "objects").glob("*/*.zst"))) == len(needed)
    again = open_remote(server.url, tmp_path / "cache", trusted=repo_keys[1])  # cached: nothing fetched again
    for digest in needed:
        again.store.read(digest)
    assert again.store.fetched == 0


def test_the_snapshot_answers_as_the_repository_does(hello_server, repo_keys, tmp_path):
    server, repo = hello_server
    remote = open_remote(server.url, tmp_path / "cache", trusted=repo_keys[1])
    rows = repo.db.execute("SELECT id, name FROM troves ORDER BY id").fetchall()
    assert [n for _, n in rows] == [r[0] for r in remote.db.execute("SELECT name FROM troves ORDER BY id")]
    for nvf in repo.packages() + repo.groups() + repo.of_kind("component"):
        assert remote.get(nvf) == repo.get(nvf)
    for (input_hash,) in repo.db.execute("SELECT input_hash FROM inputs"):
        assert remote.by_input(input_hash) == repo.by_input(input_hash)
    query = "SELECT * FROM source_revisions ORDER BY 1, 2, 3, 4"
    assert remote.db.execute(query).fetchall() == repo.db.execute(query).fetchall()


def test_what_a_worker_commits_stays_in_its_cache(hello_server, repo_keys, tmp_path):
    server, repo = hello_server
    remote = open_remote(server.url, tmp_path / "cache", trusted=repo_keys[1])
    trove = commit_synthetic(remote, "worker-made", [b"made on a worker"])
    assert remote.local_commits() == [trove.nvf]
    assert repo.find("worker-made") == []
    assert open_remote(server.url, tmp_path / "other-cache", trusted=repo_keys[1]).find("worker-made") == []
    private = open_remote(server.url, tmp_path / "cache", trusted=repo_keys[1], scratch=tmp_path / "task")
    commit_synthetic(private, "task-made", [b"made by one task"])
    assert remote.find("task-made") == [] and private.find("worker-made") != []


@pytest.fixture
def own_tree(hello_export, tmp_path):
    """A copy of the hello export this test may damage, served by a plain static server."""
    tree = copy_tree(hello_export[0], tmp_path / "tree")
    with static_server(tree) as url:
        yield tree, url


def test_a_tampered_object_is_refused_naming_its_url(own_tree, hello_repo, repo_keys, tmp_path):
    tree, url = own_tree
    remote = open_remote(url, tmp_path / "cache", trusted=repo_keys[1])
    hello = remote.get(remote.find_one("hello:runtime", arch="x86_64"))
    digest = next(f.sha256 for f in hello.files if f.sha256)
    rel = f"objects/{digest[:2]}/{digest}.zst"
    replace_file(tree / rel, zstandard.ZstdCompressor().compress(b"#!/bin/sh\nrm -rf /\n"))
    with pytest.raises(RemoteRefused, match=f"{url.rstrip('/')}/{rel}.*tampered"):
        remote.store.read(digest)
    assert not remote.store.has(digest) and list((tmp_path / "cache" / "tmp").iterdir()) == []
    replace_file(tree / rel, b"not zstd at all")
    with pytest.raises(RemoteRefused, match="tampered"):
        remote.store.read(digest)


def test_a_tampered_snapshot_is_refused(own_tree, repo_keys, tmp_path):
    tree, url = own_tree
    pointer = json.loads((tree / "snapshot.json").read_text())
    snapshot = tree / pointer["snapshot"]
    doc = json.loads(zstandard.ZstdDecompressor().decompress(snapshot.read_bytes()))
    doc["troves"][0]["files"] = []  # a smaller, different index, same name
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    replace_file(snapshot, zstandard.ZstdCompressor(write_content_size=True).compress(data))
    with pytest.raises(RemoteRefused, match=f"{pointer['snapshot']} hashes to .* tampered"):
        open_remote(url, tmp_path / "cache", trusted=repo_keys[1])
    assert not list((tmp_path / "cache" / "snapshots").glob("*.sqlite"))


def test_signatures_are_checked_when_keys_are_trusted(own_tree, hello_repo, repo_keys, tmp_path):
    tree, url = own_tree
    signer, trusted, stranger, _ = repo_keys
    pointer = json.loads((tree / "snapshot.json").read_text())
    forged = dict(pointer, label="evil@evil:1")
    replace_file(tree / "snapshot.json", json.dumps(forged).encode())
    with pytest.raises(RemoteRefused, match="BAD signature of .*snapshot.json"):
        open_remote(url, tmp_path / "c1", trusted=trusted)
    repo = open_repository(hello_repo)
    export_repository(repo, tree, signer=stranger)  # re-signed (new serial) by a key nobody trusts
    with pytest.raises(RemoteRefused, match="signed by key .* which is not trusted"):
        open_remote(url, tmp_path / "c2", trusted=trusted)
    export_repository(repo, tree)  # unsigned
    with pytest.raises(RemoteRefused, match="not signed, but keys are trusted"):
        open_remote(url, tmp_path / "c3", trusted=trusted)
    assert open_remote(url, tmp_path / "c4").packages() == repo.packages()  # no keys trusted: hashes only


def test_a_snapshot_with_the_right_hash_but_a_bad_shape_is_refused(tmp_path):
    """Without trusted keys only hashes protect a reader: what the snapshot says is checked too."""
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"one"])
    tree = tmp_path / "tree"
    export_repository(repo, tree)
    pointer = json.loads((tree / "snapshot.json").read_text())
    doc = json.loads(zstandard.ZstdDecompressor().decompress((tree / pointer["snapshot"]).read_bytes()))
    doc["troves"][0]["files"][0][0] = "/usr/share/../../../etc/passwd"
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(body).hexdigest()
    (tree / "snapshots" / f"{digest}.json.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
    pointer.update(sha256=digest, size=len(body), snapshot=f"snapshots/{digest}.json.zst")
    replace_file(tree / "snapshot.json", json.dumps(pointer).encode())
    with static_server(tree) as url:
        with pytest.raises(BadSnapshot, match="bad file entry"):
            open_remote(url, tmp_path / "cache")


def test_an_older_snapshot_than_one_seen_is_refused(tmp_path, repo_keys):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"one"])
    tree = tmp_path / "tree"
    export_repository(repo, tree, signer=repo_keys[0])
    old = (tree / "snapshot.json").read_bytes()
    commit_synthetic(repo, "two", [b"two"])
    export_repository(repo, tree, signer=repo_keys[0])
    assert open_remote(str(tree), tmp_path / "dir-cache", trusted=repo_keys[1]).serial == 2  # a directory too
    assert open_remote(f"file://{tree}", tmp_path / "dir-cache", trusted=repo_keys[1]).serial == 2
    with static_server(tree) as url:
        assert open_remote(url, tmp_path / "cache", trusted=repo_keys[1]).serial == 2
        replace_file(tree / "snapshot.json", old)  # a replay of the (validly signed) first pointer
        with pytest.raises(RemoteRefused, match="older than snapshot 2 already read"):
            open_remote(url, tmp_path / "cache", trusted=repo_keys[1])


def test_transient_errors_are_retried_and_a_dead_server_named(tmp_path):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    trove = commit_synthetic(repo, "one", [b"flaky content"])
    tree = tmp_path / "tree"
    export_repository(repo, tree)
    failures: dict[str, int] = {}
    lock = threading.Lock()

    class Flaky(_Quiet):
        def send_head(self):
            with lock:
                failures[self.path] = failures.get(self.path, 0) + 1
                first = failures[self.path] == 1
            if first:
                self.send_error(503, "try again")
                return None
            return super().send_head()

    with static_server(tree, Flaky) as url:
        remote = open_remote(url, tmp_path / "cache")
        digest = remote.get(remote.get(trove.nvf).members[0]).files[0].sha256
        assert remote.store.read(digest) == b"flaky content"
    assert failures and all(n == 2 for n in failures.values())
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RemoteError, match=f"cannot fetch {dead}/snapshot.json"):
        open_remote(dead, tmp_path / "cache2")
    shutil.rmtree(tree / "snapshots")
    with static_server(tree) as url:
        with pytest.raises(RemoteError, match="does not exist"):
            open_remote(url, tmp_path / "cache3")


def test_after_a_commit_a_reader_fetches_only_the_delta(tmp_path, repo_keys):
    """A reader holding the last snapshot's index applies the delta the export wrote beside
    the new snapshot; the index it gets is the one the whole snapshot gives."""
    from appbuilder.repository import snapshot as snap

    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"one"])
    tree = tmp_path / "tree"
    first = export_repository(repo, tree, signer=repo_keys[0])
    assert "delta" not in json.loads((tree / "snapshot.json").read_text()) and first.delta_bytes == 0
    reader = open_remote(str(tree), tmp_path / "cache", trusted=repo_keys[1])
    assert reader.find("one")
    commit_synthetic(repo, "two", [b"two", b"three"])
    commit_synthetic(repo, "one", [b"one again"], source="s2")  # a rebuild: its input hash points elsewhere
    second = export_repository(repo, tree, signer=repo_keys[0])  # the old snapshot read back from the tree
    pointer = json.loads((tree / "snapshot.json").read_text())
    assert pointer["delta"]["base"] == first.digest and 0 < second.delta_bytes < pointer["size"]
    full = tree / pointer["snapshot"]
    kept = full.read_bytes()
    full.unlink()  # a reader with the base never asks for the whole snapshot
    delta_reader = open_remote(str(tree), tmp_path / "cache", trusted=repo_keys[1])
    full.write_bytes(kept)
    whole_reader = open_remote(str(tree), tmp_path / "fresh-cache", trusted=repo_keys[1])
    assert snap.dump(delta_reader.db) == snap.dump(whole_reader.db) == snap.dump(repo.db)
    assert delta_reader.remote_contents() == whole_reader.remote_contents()
    assert {str(n) for n in delta_reader.find("one")} == {str(n) for n in repo.find("one")}
    assert delta_reader.local_commits() == []
    # this process's own last export spares the read-back: the same delta
    commit_synthetic(repo, "four", [b"four"])
    tree2 = tmp_path / "tree2"
    last = export_repository(repo, tree2)
    commit_synthetic(repo, "five", [b"five"])
    (tree2 / "snapshots" / f"{last.digest}.json.zst").unlink()  # not read: the result is passed
    assert export_repository(repo, tree2, previous=last).delta_bytes > 0


def test_a_task_s_private_copy_is_ready_at_once_and_the_cached_index_once_closed(tmp_path, repo_keys):
    """With a scratch directory the reader gets its private copy of a new snapshot's index at
    once (from the whole snapshot, then from a delta); the cached index it was made from is
    synced and put in place, and the serial remembered, by the time the reader is closed.
    What the task commits stays in its copy."""
    from appbuilder.repository import snapshot as snap

    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"one"])
    tree = tmp_path / "tree"
    cache = tmp_path / "cache"
    for serial, name in ((1, None), (2, "two")):
        if name:
            commit_synthetic(repo, name, [name.encode()])
        result = export_repository(repo, tree, signer=repo_keys[0])
        if name:  # a reader holding the last snapshot's index reads only the delta
            (tree / "snapshots" / f"{result.digest}.json.zst").rename(tmp_path / "whole")
        task = open_remote(str(tree), cache, trusted=repo_keys[1], scratch=tmp_path / f"task{serial}")
        assert task.private and task.index_path == tmp_path / f"task{serial}" / "index.sqlite"
        assert snap.dump(task.db) == snap.dump(repo.db)
        commit_synthetic(task, "mine", [b"a task's own cook"])
        task.close()
        cached = cache / "snapshots" / f"{result.digest}.sqlite"
        assert cached.is_file() and not [p for p in cached.parent.iterdir() if p.name.startswith(".")]
        assert [v["serial"] for v in json.loads((cache / "remote.json").read_text()).values()] == [serial]
        reader = open_remote(str(tree), cache, trusted=repo_keys[1])  # the cached index as published: no fetch
        assert snap.dump(reader.db) == snap.dump(repo.db) and not reader.find("mine")
        reader.close()


def test_a_tampered_delta_is_refused(tmp_path, repo_keys):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"one"])
    tree = tmp_path / "tree"
    export_repository(repo, tree, signer=repo_keys[0])
    open_remote(str(tree), tmp_path / "cache", trusted=repo_keys[1])
    commit_synthetic(repo, "two", [b"two"])
    export_repository(repo, tree, signer=repo_keys[0])
    pointer = json.loads((tree / "snapshot.json").read_text())
    rel = pointer["delta"]["snapshot"]
    doc = json.loads(zstandard.ZstdDecompressor().decompress((tree / rel).read_bytes()))
    doc["troves"][0]["name"] = "evil"
    replace_file(tree / rel, zstandard.ZstdCompressor(write_content_size=True).compress(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()))
    with pytest.raises(RemoteRefused, match=f"delta .*{rel} hashes to .* tampered"):
        open_remote(str(tree), tmp_path / "cache", trusted=repo_keys[1])
    assert len(list((tmp_path / "cache" / "snapshots").glob("*.sqlite"))) == 1  # only the first one
    # a reader without the base loads the whole (intact) snapshot and never reads the delta
    assert open_remote(str(tree), tmp_path / "other", trusted=repo_keys[1]).find("two")


def test_a_server_serves_nothing_before_its_first_export_and_says_why_it_failed(hello_repo, tmp_path):
    import urllib.error
    import urllib.request

    from appbuilder.core.errors import AppbuildError

    (tmp_path / "file").write_text("not a directory\n")
    server = RepositoryServer(open_repository(hello_repo), tmp_path / "file" / "tree").start()  # returns at once
    try:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(server.url + "snapshot.json", timeout=30)
        assert answer.value.code == 503 and "could not be exported" in answer.value.reason
        with pytest.raises(AppbuildError, match="Not a directory"):
            server.ready()
    finally:
        server.close()
    with pytest.raises(AppbuildError, match="Not a directory"):  # as a context manager: before anything is served
        with RepositoryServer(open_repository(hello_repo), tmp_path / "file" / "tree"):
            pass


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_private_index_copy_is_consistent_while_another_writes(tmp_path, journal):
    """A task's private copy of a snapshot index holds what was committed, never a writer's
    uncommitted change, in either journal mode (the file copied under SQLite's shared lock,
    or its backup for WAL)."""
    import sqlite3

    from appbuilder.repository.remote import _copy_index

    src = tmp_path / "snapshot.sqlite"
    with sqlite3.connect(src) as db:
        db.execute(f"PRAGMA journal_mode={journal}")
        db.execute("CREATE TABLE t (n INTEGER)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5000)])
    writer = sqlite3.connect(src, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM t WHERE n < 2500")  # not committed while the copy is made
    _copy_index(src, tmp_path / "copy.sqlite")
    writer.execute("ROLLBACK")
    writer.close()
    with sqlite3.connect(tmp_path / "copy.sqlite") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 5000
