"""The publisher (appbuilder.fs): objects, catalog, signed manifest, revisions, checks,
and the 'appbuild fs' command line. No client here: see test_client.py."""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import zlib

import pytest

from appbuilder.fs import keys
from appbuilder.fs import manifest as manifest_mod
from appbuilder.fs.catalog import Catalog, CatalogError
from appbuilder.fs.check import check
from appbuilder.fs.manifest import MANIFEST_NAME, ManifestError
from appbuilder.fs.objects import (
    CATALOG_SUFFIX,
    ObjectError,
    ObjectStore,
    relative_path,
)
from appbuilder.fs.publish import PublishError, publish
from tests.conftest import run_appbuild
from tests.fs.conftest import REPO, make_tree


def current(out) -> tuple[manifest_mod.Manifest, Catalog]:
    m = manifest_mod.parse((out / REPO / MANIFEST_NAME).read_bytes()).manifest
    return m, Catalog(ObjectStore(out / REPO).get(m.catalog, CATALOG_SUFFIX))


def test_objects_are_named_by_the_hash_of_their_compressed_bytes(tmp_path):
    store = ObjectStore(tmp_path)
    first = store.put(b"hello\n")
    path = store.path(first.digest)
    assert path.relative_to(tmp_path).as_posix() == f"data/{first.digest[:2]}/{first.digest[2:]}"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first.digest
    assert zlib.decompress(path.read_bytes()) == b"hello\n"
    again = store.put(b"hello\n")
    assert first.written and not again.written and again.digest == first.digest
    assert relative_path(first.digest, "C").endswith("C")
    path.write_bytes(zlib.compress(b"hellO\n"))
    with pytest.raises(ObjectError, match="is corrupt"):
        store.get(first.digest)
    with pytest.raises(ObjectError, match="not a sha256"):
        relative_path("../../etc/passwd")


def test_a_published_tree_has_a_catalog_of_everything_and_a_signed_manifest(tmp_path, keypair):
    src = make_tree(tmp_path / "src", {"a/b/file.txt": "content\n", "run.sh": "#!/bin/sh\n", "empty": b""},
                    {"link": "a/b/file.txt"})
    os.chmod(src / "run.sh", 0o750)
    os.utime(src / "a/b/file.txt", (1_600_000_000, 1_600_000_000))
    report = publish(src, REPO, tmp_path / "out", keypair.private_path)
    assert (report.revision, report.files, report.directories, report.symlinks) == (1, 3, 3, 1)
    assert report.objects_written == 3 and report.bytes_written > 0

    text = (tmp_path / "out" / REPO / MANIFEST_NAME).read_bytes()
    m = manifest_mod.verify(text, [keys.load_public(keypair.public_path)], REPO)
    assert m.revision == 1 and m.repository == REPO and m.key_id == keypair.key_id
    assert text.split(b"\n--\n")[0].startswith(b"C" + m.catalog.encode())

    _, cat = current(tmp_path / "out")
    tree = cat.walk()
    assert set(tree) == {"", "/a", "/a/b", "/a/b/file.txt", "/run.sh", "/empty", "/link"}
    f = tree["/a/b/file.txt"]
    assert f.is_file and f.size == 8 and f.mtime == 1_600_000_000 and stat.S_IMODE(f.mode) == 0o644
    assert stat.S_IMODE(tree["/run.sh"].mode) == 0o750
    assert tree["/link"].is_symlink and tree["/link"].symlink == "a/b/file.txt" and tree["/link"].size == 12
    assert tree[""].inode == 1 and tree["/a"].nlink == 3 and tree["/a/b"].parent == tree["/a"].inode
    assert ObjectStore(tmp_path / "out" / REPO).get(f.hash) == b"content\n"
    assert cat.properties["repository"] == REPO and cat.properties["revision"] == "1"
    assert [e.name for e in cat.listdir(1)] == ["a", "empty", "link", "run.sh"]
    assert cat.lookup("/a/b/file.txt").hash == f.hash and cat.lookup("/a/nothing") is None
    assert check(tmp_path / "out" / REPO, [keypair.public_path]).ok


def test_republishing_writes_only_what_changed(tmp_path, keypair):
    files = {f"dir{i % 10}/file{i}.dat": os.urandom(2000) for i in range(200)}
    src = make_tree(tmp_path / "src", files)
    out = tmp_path / "out"
    first = publish(src, REPO, out, keypair.private_path)
    assert first.objects_written == 200
    (src / "dir3/file3.dat").write_bytes(b"changed")
    second = publish(src, REPO, out, keypair.private_path)
    assert second.revision == 2
    assert second.objects_written == 1 and second.unchanged == 199
    catalog_bytes = ObjectStore(out / REPO).path(second.catalog, CATALOG_SUFFIX).stat().st_size
    manifest_bytes = (out / REPO / MANIFEST_NAME).stat().st_size
    changed = ObjectStore(out / REPO).path(current(out)[1].lookup("/dir3/file3.dat").hash).stat().st_size
    assert second.bytes_written == changed + catalog_bytes + manifest_bytes
    # nothing changed: only a new catalog (its revision differs) and manifest
    third = publish(src, REPO, out, keypair.private_path)
    assert third.revision == 3 and third.objects_written == 0
    # --rehash reads everything again and finds every object already there
    fourth = publish(src, REPO, out, keypair.private_path, rehash=True)
    assert fourth.unchanged == 0 and fourth.objects_written == 0 and fourth.objects_present == 200
    assert not list((out / REPO / "data" / "txn").iterdir())
    assert not [p for p in (out / REPO).iterdir() if p.name.startswith(f".{MANIFEST_NAME}.")]
    assert check(out / REPO, [keypair.public_path]).ok


def test_a_changed_file_with_the_same_size_and_time_is_found_by_rehash(tmp_path, keypair):
    src = make_tree(tmp_path / "src", {"f": "aaaa"})
    os.utime(src / "f", ns=(1_650_000_000_000_000_000,) * 2)
    publish(src, REPO, tmp_path / "out", keypair.private_path)
    (src / "f").write_text("bbbb")
    os.utime(src / "f", ns=(1_650_000_000_000_000_000,) * 2)
    publish(src, REPO, tmp_path / "out", keypair.private_path)
    store = ObjectStore(tmp_path / "out" / REPO)
    assert store.get(current(tmp_path / "out")[1].lookup("/f").hash) == b"aaaa"  # what stat-based detection misses
    publish(src, REPO, tmp_path / "out", keypair.private_path, rehash=True)
    assert store.get(current(tmp_path / "out")[1].lookup("/f").hash) == b"bbbb"


def test_manifest_tampering_unknown_keys_and_other_repositories_are_refused(tmp_path, keypair):
    publish(make_tree(tmp_path / "src", {"f": "x"}), REPO, tmp_path / "out", keypair.private_path)
    text = (tmp_path / "out" / REPO / MANIFEST_NAME).read_bytes()
    trusted = [keys.load_public(keypair.public_path)]
    tampered = text.replace(b"\nS1\n", b"\nS9\n")
    with pytest.raises(ManifestError, match="bad signature"):
        manifest_mod.verify(tampered, trusted, REPO)
    other = keys.generate("other.example.org", tmp_path / "other")
    with pytest.raises(ManifestError, match="unknown key"):
        manifest_mod.verify(text, [keys.load_public(other.public_path)], REPO)
    with pytest.raises(ManifestError, match="not 'else.example.org'"):
        manifest_mod.verify(text, trusted, "else.example.org")
    with pytest.raises(ManifestError, match="no '--' line"):
        manifest_mod.parse(text.replace(b"--\n", b""))


def test_check_finds_missing_and_corrupt_objects_and_a_corrupt_catalog(tmp_path, keypair):
    src = make_tree(tmp_path / "src", {"a": "first\n", "b": "second\n"})
    out = tmp_path / "out"
    publish(src, REPO, out, keypair.private_path)
    store = ObjectStore(out / REPO)
    _, cat = current(out)
    store.path(cat.lookup("/a").hash).unlink()
    victim = store.path(cat.lookup("/b").hash)
    victim.write_bytes(victim.read_bytes()[:-2] + b"zz")
    problems = check(out / REPO, [keypair.public_path]).problems
    assert any("/a" in p and "missing" in p for p in problems)
    assert any("/b" in p and "corrupt" in p for p in problems)
    m, _ = current(out)
    store.path(m.catalog, CATALOG_SUFFIX).write_bytes(b"garbage")
    assert "catalog" in check(out / REPO, [keypair.public_path]).problems[0]
    with pytest.raises(CatalogError):
        Catalog(b"SQLite format 3\x00" + b"\x00" * 100)


def test_bad_input_is_refused_clearly(tmp_path, keypair):
    src = make_tree(tmp_path / "src", {"ok": "x"})
    with pytest.raises(PublishError, match="bad repository name"):
        publish(src, "Bad/Name", tmp_path / "out", keypair.private_path)
    with pytest.raises(PublishError, match="is not a directory"):
        publish(src / "ok", REPO, tmp_path / "out", keypair.private_path)
    with pytest.raises(PublishError, match="No such file or directory"):
        publish(tmp_path / "missing", REPO, tmp_path / "out", keypair.private_path)
    with pytest.raises(keys.KeyFileError, match="keygen"):
        publish(src, REPO, tmp_path / "out", tmp_path / "nope.key")
    bad_name = os.fsencode(str(src)) + b"/caf\xe9"
    open(bad_name, "wb").close()
    with pytest.raises(PublishError, match="UTF-8"):
        publish(src, REPO, tmp_path / "out", keypair.private_path)
    os.unlink(bad_name)
    os.mkfifo(src / "pipe")
    report = publish(src, REPO, tmp_path / "out", keypair.private_path)
    assert report.skipped == ["/pipe"] and report.files == 1
    # one publisher at a time
    with open(tmp_path / "out" / REPO / ".publish.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(PublishError, match="another publish"):
            publish(src, REPO, tmp_path / "out", keypair.private_path)


def test_keygen_publish_and_check_from_the_command_line(tmp_path, workspace):
    proc = run_appbuild(workspace, "fs", "keygen", "--repo", REPO, "-o", str(tmp_path / "keys"))
    assert "key " in proc.stdout and stat.S_IMODE((tmp_path / "keys" / f"{REPO}.key").stat().st_mode) == 0o600
    again = run_appbuild(workspace, "fs", "keygen", "--repo", REPO, "-o", str(tmp_path / "keys"), check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    src = make_tree(tmp_path / "src", {"x/y": "z"})
    out = tmp_path / "www"
    proc = run_appbuild(workspace, "fs", "publish", str(src), "--repo", REPO, "--to", str(out),
                        "--keys", str(tmp_path / "keys"))
    assert f"{REPO} revision 1: 1 files" in proc.stdout
    ok = run_appbuild(workspace, "fs", "check", str(out / REPO), "--pub", str(tmp_path / "keys" / f"{REPO}.pub"))
    assert "signature and hashes good" in ok.stdout
    other = keys.generate("other.example.org", tmp_path / "other")
    bad = run_appbuild(workspace, "fs", "check", str(out / REPO), "--pub", str(other.public_path), check=False)
    assert bad.returncode == 1 and "unknown key" in bad.stderr
    missing = run_appbuild(workspace, "fs", "publish", str(src), "--repo", REPO, "--to", str(out), "--keys",
                           str(tmp_path / "elsewhere"), check=False)
    assert missing.returncode == 1 and "cannot read the repository key" in missing.stderr
