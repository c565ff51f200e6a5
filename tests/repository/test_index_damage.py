"""A damaged, unreadable or locked ``index.sqlite``: one clear error naming the file and
what to do, on opening, on later queries and through the real command line, never a
``sqlite3`` traceback."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import weakref

import pytest

from appbuilder.repository import index
from appbuilder.repository.index import DamagedIndex, IndexBusy, IndexConnection
from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.versions import Flavor
from tests.conftest import make_settings, run_appbuild

LABEL = "cernvm@cvm:2"


def fill(repo: Repository, packages: int = 40, files: int = 30) -> None:
    """Enough troves and files that the index spans many pages."""
    content = repo.store.put_bytes(b"x")
    for i in range(packages):
        entries = [FileEntry(f"/usr/share/p{i}/file-{j:04d}-with-a-longish-name", "file", 0o644, size=1,
                             sha256=content) for j in range(files)]
        repo.commit_package(PackageBuild(f"pkg{i}", "1.0", Flavor("x86_64"), f"src{i}",
                                         [ComponentContents(f"pkg{i}:runtime", files=entries)]))


def truncate(path, size: int = 3000) -> None:
    os.truncate(path, size)


def garbage_in_the_middle(path) -> None:
    """Overwrite everything between the first page and the last with random bytes."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(random.Random(9).randbytes(size - 2 * 4096))


DAMAGES = {"truncated": truncate, "garbage": garbage_in_the_middle}


@pytest.fixture
def damaged_settings(tmp_path, request):
    settings = make_settings(tmp_path)
    repo = Repository(settings.repository, settings.label)
    fill(repo)
    repo.close()  # a clean close checkpoints the WAL into index.sqlite
    db = settings.repository / "index.sqlite"
    assert not (settings.repository / "index.sqlite-wal").exists()
    assert os.path.getsize(db) > 10 * 4096
    DAMAGES[request.param](db)
    return settings


@pytest.mark.parametrize("damaged_settings", DAMAGES, indirect=True)
@pytest.mark.parametrize("command", [["query"], ["show", "pkg1"], ["verify"], ["show", "pkg1", "--verify"]])
def test_commands_on_a_damaged_index_fail_with_one_clear_message(damaged_settings, command):
    db = damaged_settings.repository / "index.sqlite"
    proc = run_appbuild(damaged_settings, *command, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "sqlite3." not in proc.stderr
    assert str(db) in proc.stdout + proc.stderr
    if command[0] == "verify":  # the index problem, and the objects checked all the same
        assert proc.stdout.startswith(f"index {db}: damaged\n  database disk image is malformed")
        assert "checked 1 objects" in proc.stderr and "the index is damaged" in proc.stderr
        assert f"restore {db.name}" in proc.stderr
    else:
        assert proc.stderr.count("error:") == 1
        assert f"the repository index {db} is damaged (database disk image is malformed)" in proc.stderr
        assert "Restore index.sqlite from a backup" in proc.stderr and "appbuild verify" in proc.stderr


def test_a_file_that_is_not_a_database(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "index.sqlite").write_text("this is not an SQLite database, it is text\n" * 200)
    with pytest.raises(DamagedIndex, match="is damaged \\(file is not a database\\)") as exc:
        Repository(tmp_path / "repo", LABEL)
    assert exc.value.path == tmp_path / "repo" / "index.sqlite"


def scan_files(path) -> tuple[list[str], int, DamagedIndex | None]:
    """Trove names, then rows of the files table until the end or a damaged page."""
    repo = Repository(path, LABEL)
    rows = 0
    try:
        names = repo.names()
        for _ in repo.db.execute("SELECT * FROM files"):
            rows += 1
    except DamagedIndex as exc:
        return names, rows, exc
    finally:
        repo.close()
    return names, rows, None


def test_damage_found_by_a_later_query_is_translated_too(tmp_path):
    """The index opens (the pages it needs at first are sound), and a query that reaches a
    damaged page, in the middle of its rows, gets the same clear error."""
    repo = Repository(tmp_path / "repo", LABEL)
    fill(repo, packages=20, files=200)
    repo.close()
    db = tmp_path / "repo" / "index.sqlite"
    pristine = db.read_bytes()
    for page in range(len(pristine) // 4096 - 1, 1, -1):  # find a leaf page of the files table
        damaged = bytearray(pristine)
        damaged[page * 4096 + 8: page * 4096 + 4000] = b"\xff" * 3992
        db.write_bytes(bytes(damaged))
        try:
            names, rows, error = scan_files(tmp_path / "repo")
        except DamagedIndex:  # a page the troves need
            continue
        if error is not None and rows:
            break
    else:
        pytest.fail("no page breaks a scan of the files table in the middle")
    assert names == sorted([f"pkg{i}" for i in range(20)] + [f"pkg{i}:runtime" for i in range(20)])
    assert 0 < rows < 20 * 200
    assert str(error).startswith(f"the repository index {db} is damaged (database disk image is malformed)")


def test_a_locked_index_is_its_own_clear_error(tmp_path):
    path = tmp_path / "index.sqlite"
    index.connect(path).close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        waiting = sqlite3.connect(path, timeout=0.1, isolation_level=None, factory=IndexConnection)
        with pytest.raises(IndexBusy, match=f"the repository index {path} is locked \\(database is locked\\)"):
            with index.write_transaction(waiting):
                pass
        waiting.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_errors_that_are_bugs_keep_their_type(tmp_path):
    conn = index.connect(tmp_path / "index.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        conn.execute("SELECT * FROM no_such_table")
    conn.execute("INSERT INTO meta VALUES ('k', 'v')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO meta VALUES ('k', 'v')")
    conn.close()


def test_an_unexpected_sqlite_error_still_gives_a_clean_message(tmp_path):
    """The command line's last resort: an SQLite error the index does not translate (here
    a sound database of some other layout in place of the index) is still one message."""
    settings = make_settings(tmp_path)
    settings.repository.mkdir(parents=True)
    db = settings.repository / "index.sqlite"
    other = sqlite3.connect(db)
    other.execute("CREATE TABLE troves (id INTEGER PRIMARY KEY, name TEXT)")
    other.commit()
    other.close()
    proc = run_appbuild(settings, "query", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("error:") == 1
    assert "an SQLite database cannot be used: no such column: flavor" in proc.stderr
    assert f"If it is the repository index ({db}), `appbuild verify` checks it" in proc.stderr


def test_close_all_closes_every_connection_but_waits_for_threads_still_running(tmp_path, monkeypatch):
    """index.close_all (the quick exit's last step) closes connections made in any thread, so
    the write-ahead log is folded back and removed; while a thread that opened one still
    runs, it closes nothing and says so."""
    monkeypatch.setattr(index, "_open", weakref.WeakSet())  # this test's connections only
    path = tmp_path / "index.sqlite"
    here = index.connect(path)
    go, done = threading.Event(), threading.Event()
    conns = []

    def user():
        conns.append(index.connect(path))
        conns[0].execute("SELECT count(*) FROM troves").fetchone()
        go.set()
        done.wait(30)

    t = threading.Thread(target=user)
    t.start()
    go.wait(30)
    assert path.with_name("index.sqlite-wal").exists()
    assert index.close_all() is False  # the thread may still use its connection
    here.execute("SELECT 1").fetchone()  # nothing was closed
    done.set()
    t.join()
    assert index.close_all() is True
    with pytest.raises(sqlite3.ProgrammingError):
        conns[0].execute("SELECT 1")
    assert not path.with_name("index.sqlite-wal").exists()
    assert not path.with_name("index.sqlite-shm").exists()
