"""Checking a repository: ``verify_repository`` and ``check_trove``, and the real
``appbuild verify`` / ``appbuild show --files --verify`` on repositories with damaged
objects (flipped bytes, truncated, not zstd, deleted)."""

from __future__ import annotations

import hashlib
import random
import sqlite3

import pytest

from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.verify import (
    check_trove,
    report_lines,
    summary,
    verify_repository,
)
from appbuilder.repository.versions import Flavor
from tests.conftest import make_settings, run_appbuild

HELLO = b"".join(b"hello binary line %d\n" % i for i in range(5000))
WORLD = b"world binary\n" * 3000
README = b"shared readme\n"


def build_repo(path) -> Repository:
    """hello and world, x86_64, each with a binary, a shared README and a build log blob."""
    repo = Repository(path, "cernvm@cvm:2")
    for name, binary in (("hello", HELLO), ("world", WORLD)):
        files = [
            FileEntry(f"/usr/bin/{name}", "file", 0o755, size=len(binary), sha256=repo.store.put_bytes(binary)),
            FileEntry(f"/usr/bin/{name}-link", "symlink", 0o777, target=name),
            FileEntry("/usr/share/doc/README", "file", 0o644, size=len(README), sha256=repo.store.put_bytes(README)),
        ]
        log = repo.store.put_bytes(f"build log of {name}\n".encode())
        repo.commit_package(PackageBuild(name, "1.0", Flavor("x86_64"), f"src-{name}",
                                         [ComponentContents(f"{name}:runtime", files=files)],
                                         build_log=log))
    return repo


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flip_byte(repo: Repository, digest: str) -> None:
    path = repo.store.path_of(digest)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x04
    path.write_bytes(bytes(raw))


@pytest.fixture
def repo(tmp_path):
    r = build_repo(tmp_path / "repo")
    yield r
    r.close()


# ----------------------------------------------------------------- the library


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_sound_repository(repo, jobs):
    report = verify_repository(repo.path, jobs=jobs)
    assert report.ok and report_lines(report) == []
    assert report.contents.checked == 5  # two binaries, one shared README, two build logs
    assert report.contents.content_bytes == len(HELLO) + len(WORLD) + len(README) + len(
        b"build log of hello\n") + len(b"build log of world\n")
    assert report.contents.stored_bytes == sum(p.stat().st_size for p in repo.store.objects.rglob("*.zst"))
    assert summary(report).startswith("verified the index and 5 objects (")
    assert summary(report).endswith(": no damage")


def test_a_flipped_byte_names_the_object_and_its_troves(repo):
    digest = sha(HELLO)
    flip_byte(repo, digest)
    report = verify_repository(repo.path)
    assert not report.ok and report.index_problems == []
    (damage,) = report.damaged
    assert damage.digest == digest and damage.kind == "corrupt"
    assert damage.path == repo.store.path_of(digest)
    assert damage.users == ["hello:runtime=cernvm@cvm:2/1.0-1-1[is: x86_64] /usr/bin/hello"]
    lines = report_lines(report)
    assert lines[0].startswith(f"corrupt {digest}: ")
    assert lines[1] == f"  file: {repo.store.path_of(digest)}"
    assert "1 damaged object (1 corrupt)" in summary(report)


def test_a_deleted_blob_is_missing_and_a_shared_one_lists_every_user(repo):
    log = sha(b"build log of world\n")
    repo.store.path_of(log).unlink()
    repo.store.path_of(sha(README)).write_bytes(b"\x28\xb5\x2f\xfd garbage after a zstd magic number")
    report = verify_repository(repo.path)
    damaged = {d.digest: d for d in report.damaged}
    assert set(damaged) == {log, sha(README)}
    assert damaged[log].kind == "missing"
    assert damaged[log].users == ["world=cernvm@cvm:2/1.0-1-1[is: x86_64] (build_log_blob)"]
    assert damaged[sha(README)].kind == "corrupt"
    assert damaged[sha(README)].users == [
        "hello:runtime=cernvm@cvm:2/1.0-1-1[is: x86_64] /usr/share/doc/README",
        "world:runtime=cernvm@cvm:2/1.0-1-1[is: x86_64] /usr/share/doc/README",
    ]
    assert f"missing {log}" in report_lines(report)
    assert "2 damaged objects (1 missing, 1 corrupt)" in summary(report)


def test_unreferenced_objects_are_checked_too(repo):
    orphan = repo.store.put_bytes(random.Random(5).randbytes(10_000))  # a cook killed before its commit
    report = verify_repository(repo.path)
    assert report.ok and report.unreferenced == 1
    assert "1 not used by any trove" in summary(report)
    flip_byte(repo, orphan)
    report = verify_repository(repo.path)
    (damage,) = report.damaged
    assert damage.digest == orphan and damage.users == []
    assert "  used by no trove (`appbuild gc` removes it)" in report_lines(report)


def test_index_rows_pointing_nowhere_are_reported(repo):
    conn = sqlite3.connect(repo.path / "index.sqlite")  # foreign keys are off by default
    conn.execute("INSERT INTO files VALUES (999, '/ghost', 'file', 420, 'root', 'root', 0, NULL, NULL, 0, 0, 0)")
    conn.commit()
    conn.close()
    report = verify_repository(repo.path)
    assert report.index_problems == ["a row of files refers to a troves row that does not exist"]
    assert report_lines(report)[0] == f"index {repo.path / 'index.sqlite'}: damaged"
    assert "the index is damaged" in summary(report)


def test_check_trove_reads_files_and_blobs_of_one_package(repo):
    flip_byte(repo, sha(WORLD))
    hello = repo.find_one("hello")
    ok = check_trove(repo, hello)
    assert ok.damaged == {} and ok.checked == 3  # binary, README, build log
    world = check_trove(repo, repo.find_one("world"))
    assert list(world.damaged) == [sha(WORLD)]


# ----------------------------------------------------------------- the command line


@pytest.fixture
def cli(tmp_path):
    """Settings of a workspace whose repository holds hello and world."""
    settings = make_settings(tmp_path)
    build_repo(settings.repository).close()
    return settings


def assert_clean_failure(proc) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "ZstdError" not in proc.stderr


def test_verify_command_on_a_sound_repository(cli):
    proc = run_appbuild(cli, "verify")
    assert proc.stdout.strip().startswith("verified the index and 5 objects")
    assert len(proc.stdout.strip().splitlines()) == 1 and proc.stderr == ""


def test_verify_command_lists_damaged_and_missing_objects(cli):
    repo = Repository(cli.repository, cli.label)
    flip_byte(repo, sha(HELLO))
    repo.store.path_of(sha(b"build log of hello\n")).unlink()
    repo.close()
    proc = run_appbuild(cli, "verify", check=False)
    assert_clean_failure(proc)
    out = proc.stdout
    assert f"corrupt {sha(HELLO)}: " in out
    assert f"  file: {cli.repository / 'objects' / sha(HELLO)[:2] / sha(HELLO)}.zst" in out
    assert "  used by hello:runtime=cernvm@cvm:2/1.0-1-1[is: x86_64] /usr/bin/hello" in out
    assert f"missing {sha(b'build log of hello' + bytes([10]))}" in out
    assert "  used by hello=cernvm@cvm:2/1.0-1-1[is: x86_64] (build_log_blob)" in out
    assert "2 damaged objects (1 missing, 1 corrupt)" in proc.stderr


@pytest.mark.parametrize("damage, problem", [
    ("truncate", "it is truncated: it holds"),
    ("garbage", "it is not zstd-compressed data"),
])
def test_truncated_and_garbage_objects_are_clear_messages(cli, damage, problem):
    repo = Repository(cli.repository, cli.label)
    path = repo.store.path_of(sha(WORLD))
    repo.close()
    path.write_bytes(path.read_bytes()[:20] if damage == "truncate" else b"<html>not found</html>\n")
    proc = run_appbuild(cli, "verify", check=False)
    assert_clean_failure(proc)
    assert f"corrupt {sha(WORLD)}: {problem}" in proc.stdout
    proc = run_appbuild(cli, "show", "world", "--files", "--verify", check=False)
    assert_clean_failure(proc)
    assert f"/usr/bin/world  << DAMAGED: {problem}" in proc.stdout


def test_show_verify_marks_damaged_files(cli):
    proc = run_appbuild(cli, "show", "hello", "--files", "--verify")
    assert "DAMAGED" not in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("  verified 3 stored contents (")
    repo = Repository(cli.repository, cli.label)
    flip_byte(repo, sha(HELLO))
    repo.close()
    proc = run_appbuild(cli, "show", "hello", "--files", "--verify", check=False)
    assert_clean_failure(proc)
    lines = proc.stdout.splitlines()
    marked = [line for line in lines if "<< DAMAGED" in line]
    assert len(marked) == 1 and marked[0].split("<<")[0].rstrip().endswith(" /usr/bin/hello")
    assert any(line.strip().startswith("-rw-r--r--") and line.endswith("/usr/share/doc/README") for line in lines)
    assert "  1 of 3 stored contents are damaged: run `appbuild verify`" in proc.stdout
    # world shares only the README with hello: it is sound
    assert run_appbuild(cli, "show", "world", "--verify").returncode == 0


def test_verify_of_a_release_that_is_not_there_is_a_clear_error(cli, tmp_path):
    """A target switches ``appbuild verify`` to checking a published release (tests/release/
    test_verify.py); one that is not a release is one line naming it."""
    proc = run_appbuild(cli, "verify", "/srv/appbuild/releases", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: no release at /srv/appbuild/releases: not a directory"
    proc = run_appbuild(cli, "verify", str(tmp_path), check=False)
    assert proc.returncode == 1 and f"no release at {tmp_path}: it has no SHA256SUMS" in proc.stderr
    proc = run_appbuild(cli, "verify", "--rebuild", check=False)  # release options without a release
    assert proc.returncode == 1 and "check a published release: appbuild verify RELEASE_DIR|URL" in proc.stderr
