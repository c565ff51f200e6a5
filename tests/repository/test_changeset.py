"""Changesets: what a worker made, carried to the coordinator, verified, committed in one transaction."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap

import pytest

from appbuilder.repository.changeset import MAGIC, ChangesetRefused, commit_changeset, make_changeset
from appbuilder.repository.repo import Repository
from tests.conftest import PROJECT, copy_repository, make_settings
from tests.repository.conftest import commit_synthetic, open_repository


@pytest.fixture(scope="module")
def made(hello_repo, toolchain_repo):
    """The troves hello_repo's cooks made (libhello, hello and their sub-packages, both arches)."""
    base = Repository(toolchain_repo, hello_repo.label)
    known = set(base.packages())
    repo = open_repository(hello_repo)
    return repo, [n for n in repo.packages() if n not in known], base.referenced_contents()


def coordinator(toolchain_repo, tmp_path) -> Repository:
    """A writable copy of the repository the cooks started from (the toolchain)."""
    return Repository(copy_repository(toolchain_repo, tmp_path / "coordinator"), "cernvm@cvm:2")


def state(repo: Repository) -> tuple:
    return (repo.db.execute("SELECT COUNT(*), MAX(id) FROM troves").fetchone(),
            sorted(repo.store.iter_digests()),
            repo.db.execute("SELECT COUNT(*) FROM inputs").fetchone())


def test_a_changeset_commits_the_very_troves_it_carries(made, toolchain_repo, tmp_path, repo_keys):
    source, packages, held = made
    assert {n.name for n in packages} >= {"libhello", "hello"} and len({n.flavor.arch for n in packages}) == 2
    target = coordinator(toolchain_repo, tmp_path)
    data = make_changeset(source, packages, base_snapshot=held, signer=repo_keys[0])
    committed = commit_changeset(target, data, trusted=repo_keys[1])
    assert committed == packages  # the same versions the local cooks got
    for nvf in packages:
        assert target.get(nvf) == source.get(nvf)
        for member in source.get(nvf).members:
            component = source.get(member)
            assert target.get(member) == component
            for f in component.files:
                if f.sha256:  # stored as sent: the same compressed bytes
                    assert target.store.path_of(f.sha256).read_bytes() == source.store.path_of(f.sha256).read_bytes()
    for nvf in packages:
        info = source.get(nvf).info
        assert target.by_input(info["input_hash"]) == source.by_input(info["input_hash"])
    before = state(target)
    assert commit_changeset(target, data, trusted=repo_keys[1]) == committed  # again: nothing new
    assert state(target) == before
    unsigned = make_changeset(source, packages, base_snapshot=held)  # other bytes, the same troves: skipped
    assert commit_changeset(target, unsigned) == committed and state(target) == before


def test_the_objects_the_base_holds_are_left_out(made, toolchain_repo, tmp_path):
    source, packages, held = made
    hello = [n for n in packages if n.name == "hello" and n.flavor.arch == "x86_64"]
    whole = make_changeset(source, hello)
    slim = make_changeset(source, hello, base_snapshot=held | {f.sha256 for m in source.get(hello[0]).members
                                                                for f in source.get(m).files if f.sha256})
    assert len(slim) < len(whole)
    target = coordinator(toolchain_repo, tmp_path)  # lacks the objects the slim one leaves out
    before = state(target)
    with pytest.raises(ChangesetRefused, match="neither in it nor in the repository"):
        commit_changeset(target, slim)
    assert state(target) == before


def _bad_variants(data: bytes) -> dict[str, bytes]:
    (length,) = struct.unpack(">Q", data[len(MAGIC):len(MAGIC) + 8])
    head_end = len(MAGIC) + 8 + length
    manifest = json.loads(data[len(MAGIC) + 8:head_end])
    flipped = bytearray(data)
    flipped[head_end + manifest["objects"][0][1] // 2] ^= 0x55
    edited = dict(manifest)
    edited["troves"] = json.loads(json.dumps(manifest["troves"]))
    edited["troves"][0]["components"][0]["files"][0][2] = 0o4755  # setuid, after signing
    edited_head = json.dumps(edited).encode()
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    unsigned_head = json.dumps(unsigned).encode()
    return {
        "empty": b"",
        "garbage": os.urandom(4096),
        "not a changeset": b"PK\x03\x04 a zip file",
        "no manifest": MAGIC + b"\x00\x00",
        "manifest not json": MAGIC + struct.pack(">Q", 5) + b"{{{{{",
        "huge length": MAGIC + struct.pack(">Q", 1 << 62) + b"{}",
        "truncated": data[:-1],
        "half": data[: len(data) // 2],
        "trailing garbage": data + b"\0",
        "flipped object byte": bytes(flipped),
        "edited after signing": MAGIC + struct.pack(">Q", len(edited_head)) + edited_head + data[head_end:],
        "signature removed": MAGIC + struct.pack(">Q", len(unsigned_head)) + unsigned_head + data[head_end:],
    }


def test_damaged_or_forged_changesets_are_refused_and_nothing_committed(made, toolchain_repo, tmp_path, repo_keys):
    source, packages, held = made
    target = coordinator(toolchain_repo, tmp_path)
    data = make_changeset(source, packages, base_snapshot=held, signer=repo_keys[0])
    before = state(target)
    for what, bad in _bad_variants(data).items():
        with pytest.raises(ChangesetRefused) as refused:
            commit_changeset(target, bad, trusted=repo_keys[1])
        message = str(refused.value)
        assert message.startswith("refused") and "\n" not in message, (what, message)
        assert state(target) == before, what
    stranger = make_changeset(source, packages, base_snapshot=held, signer=repo_keys[2])
    with pytest.raises(ChangesetRefused, match="not trusted"):
        commit_changeset(target, stranger, trusted=repo_keys[1])
    assert state(target) == before
    assert commit_changeset(target, data, trusted=repo_keys[1]) == packages  # the sound one still commits


def test_versions_are_allocated_by_the_coordinator(tmp_path):
    """A worker's snapshot is behind: the coordinator gives the next version, as a local commit would."""
    coordinator_repo = Repository(tmp_path / "coordinator", "cernvm@cvm:2")
    worker = Repository(tmp_path / "worker", "cernvm@cvm:2")
    commit_synthetic(coordinator_repo, "tool", [b"v1"], source="s1")
    commit_synthetic(coordinator_repo, "tool", [b"v2"], source="s2")  # the coordinator is at 1.0-2-1
    made_there = commit_synthetic(worker, "tool", [b"v3"], source="s3")  # the worker thought 1.0-1-1
    assert made_there.version.revision == "1.0-1-1"
    (nvf,) = commit_changeset(coordinator_repo, make_changeset(worker, [made_there.nvf]))
    assert nvf.version.revision == "1.0-3-1"
    sent, got = worker.get(made_there.nvf), coordinator_repo.get(nvf)
    assert (got.info, got.kind, got.flavor) == (sent.info, sent.kind, sent.flavor)
    assert coordinator_repo.get(got.members[0]).files == worker.get(sent.members[0]).files


KILL_DURING_COMMIT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from appbuilder.repository import index, repo as repo_module
    from appbuilder.repository.changeset import commit_changeset
    from appbuilder.repository.repo import Repository

    inserts = 0
    real_insert = index.insert_trove

    def insert_then_die(conn, trove, committed_at):
        global inserts
        inserts += 1
        if inserts == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the transaction
        return real_insert(conn, trove, committed_at)

    repo_module.index.insert_trove = insert_then_die
    commit_changeset(Repository(sys.argv[1], "cernvm@cvm:2"), Path(sys.argv[2]).read_bytes())
""")


def test_a_kill_9_during_the_commit_leaves_the_previous_state(made, toolchain_repo, tmp_path):
    source, packages, held = made
    target_path = tmp_path / "coordinator"
    target = coordinator(toolchain_repo, tmp_path)
    troves_before = target.db.execute("SELECT COUNT(*) FROM troves").fetchone()
    target.close()
    changeset = tmp_path / "changeset"
    changeset.write_bytes(make_changeset(source, packages, base_snapshot=held))
    script = tmp_path / "kill.py"
    script.write_text(KILL_DURING_COMMIT)
    proc = subprocess.run([sys.executable, str(script), str(target_path), str(changeset), "7"], cwd=PROJECT,
                          env={**os.environ, "PYTHONPATH": str(PROJECT)}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    target = Repository(target_path, "cernvm@cvm:2")
    assert target.db.execute("SELECT COUNT(*) FROM troves").fetchone() == troves_before
    assert target.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert commit_changeset(target, changeset.read_bytes()) == packages  # run again: all of it, once


@pytest.mark.slow
def test_a_cook_over_http_commits_what_a_local_cook_commits(hello_repo, toolchain_repo, repo_keys, tmp_path):
    """Point 5 of issue 17: a worker cooking against the served repository, its changeset committed by the
    coordinator, gives the same troves as the local cook of the same inputs (hello_repo's)."""
    from appbuilder.core.arch import get_arch
    from appbuilder.cook.cook import Cooker, CookOptions
    from appbuilder.recipe.loader import load_recipe
    from appbuilder.repository.remote import open_remote
    from appbuilder.repository.serve import RepositoryServer

    target = coordinator(toolchain_repo, tmp_path)
    worker_settings = make_settings(tmp_path / "worker", workspace=hello_repo.workspace,
                                    cache=tmp_path / "worker" / "cache")
    with RepositoryServer(target, tmp_path / "tree", signer=repo_keys[0]) as server:
        remote = open_remote(server.url, tmp_path / "worker" / "remote", trusted=repo_keys[1])
        result = Cooker(worker_settings, remote).cook(load_recipe(hello_repo.workspace / "recipes" / "libhello"),
                                                      CookOptions(arch=get_arch("x86_64")))
        assert not result.skipped
        made_here = remote.local_commits()
        data = make_changeset(remote, made_here, signer=repo_keys[0])
        exported = server.last.objects_written + server.last.objects_skipped
        assert 0 < remote.store.fetched < exported  # the build root's objects, not the whole repository
    committed = commit_changeset(target, data, trusted=repo_keys[1])
    local = open_repository(hello_repo)
    assert committed == made_here and {n.name for n in committed} == {"libhello"}
    for nvf in committed:
        there, here = target.get(nvf), local.get(nvf)
        # the build log is carried and kept beside the package (not part of it: a parallel make's
        # output order alone makes two logs of the same build differ)
        assert target.store.read(target.build_log(nvf)).startswith(b"toolchain group-toolchain=")
        assert "build_log_blob" not in there.info
        assert there == here  # version, flavor, members, info (input hash, build root, recipe...)
        for member in there.members:
            assert target.get(member) == local.get(member)  # files, contents, provides, requires


def test_a_file_path_leaving_the_root_is_refused(made, toolchain_repo, tmp_path):
    source, packages, held = made
    data = make_changeset(source, packages[:1], base_snapshot=held)
    (length,) = struct.unpack(">Q", data[len(MAGIC):len(MAGIC) + 8])
    manifest = json.loads(data[len(MAGIC) + 8:len(MAGIC) + 8 + length])
    manifest["troves"][0]["components"][0]["files"][0][0] = "/usr/../../etc/cron.d/evil"
    head = json.dumps(manifest).encode()
    forged = MAGIC + struct.pack(">Q", len(head)) + head + data[len(MAGIC) + 8 + length:]
    target = coordinator(toolchain_repo, tmp_path)
    before = state(target)
    with pytest.raises(ChangesetRefused, match="bad file entry '/usr/../../etc/cron.d/evil'"):
        commit_changeset(target, forged)  # no keys trusted: the content is still checked
    assert state(target) == before


def test_a_group_follows_the_versions_of_the_packages_it_came_with(tmp_path):
    from appbuilder.repository.repo import GroupBuild
    from appbuilder.repository.versions import NVF, Flavor, Version

    coordinator_repo = Repository(tmp_path / "coordinator", "cernvm@cvm:2")
    worker = Repository(tmp_path / "worker", "cernvm@cvm:2")
    commit_synthetic(coordinator_repo, "tool", [b"v1"], source="s1")
    commit_synthetic(coordinator_repo, "tool", [b"v2"], source="s2")
    tool = commit_synthetic(worker, "tool", [b"v3"], source="s3")  # 1.0-1-1 here, 1.0-3-1 there

    def group(members, input_hash):
        return GroupBuild("group-x", "1", Flavor("x86_64"), "recipe", input_hash, members)

    grp, _ = worker.commit_group(group([tool.nvf, *tool.members], "closure-1"))
    before = state(coordinator_repo)
    ghost = NVF("ghost", Version.parse("cernvm@cvm:2/1-1-1"), Flavor("x86_64"))
    bad, _ = worker.commit_group(group([tool.nvf, ghost], "closure-2"))
    with pytest.raises(ChangesetRefused, match="group group-x pins 1 troves that are neither"):
        commit_changeset(coordinator_repo, make_changeset(worker, [tool.nvf, bad.nvf]))
    assert state(coordinator_repo) == before  # the package before it was not committed either
    package, committed_group = commit_changeset(coordinator_repo, make_changeset(worker, [tool.nvf, grp.nvf]))
    assert package.version.revision == "1.0-3-1" and committed_group.version.revision == "1-1-1"
    members = coordinator_repo.get(committed_group).members
    assert members == [package, *coordinator_repo.get(package).members]
    assert coordinator_repo.by_input("closure-1") == committed_group
