"""The publisher (appbuilder.fs): objects, catalog, signed manifest, revisions, checks,
and the 'appbuild fs' command line. No client here: see test_client.py."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import sqlite3
import stat
import zlib

import pytest

from appbuilder.assemble.rootfs import ImageEntry
from appbuilder.core.errors import AppbuildError
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
from appbuilder.fs.tags import TAGS_NAME, TagListError
from tests.conftest import run_appbuild
from tests.fs.conftest import REPO, make_tree


def current(out) -> tuple[manifest_mod.Manifest, Catalog]:
    m = manifest_mod.parse((out / REPO / MANIFEST_NAME).read_bytes()).manifest
    return m, Catalog(ObjectStore(out / REPO).get(m.catalog, CATALOG_SUFFIX))


def snapshot(repo_dir) -> dict[str, tuple[bytes, int]]:
    """Every file of a repository directory: content and modification time (ns)."""
    return {str(p.relative_to(repo_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(repo_dir.rglob("*")) if p.is_file()}


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
    assert b"".join(line[:1] for line in text.split(b"\n--\n")[0].split(b"\n")) == b"CBSNTDEAK"
    assert text.split(b"\n--\n")[0].startswith(b"C" + m.catalog.encode())
    assert m.expires == m.timestamp + 30 * 86400 and report.expires == m.expires

    _, cat = current(tmp_path / "out")
    tree = cat.walk()
    assert set(tree) == {"", "/a", "/a/b", "/a/b/file.txt", "/run.sh", "/empty", "/link"}
    f = tree["/a/b/file.txt"]
    assert f.is_file and f.size == 8 and f.mtime == 1_600_000_000 and stat.S_IMODE(f.mode) == 0o644
    assert stat.S_IMODE(tree["/run.sh"].mode) == 0o750
    assert (f.uid, f.gid, f.rdev) == (os.getuid(), os.getgid(), 0)  # a plain tree: the host's owners
    assert cat.schema == "2" and cat.properties["schema"] == "2"
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
    tags_bytes = (out / REPO / TAGS_NAME).stat().st_size
    changed = ObjectStore(out / REPO).path(current(out)[1].lookup("/dir3/file3.dat").hash).stat().st_size
    assert second.bytes_written == changed + catalog_bytes + tags_bytes + manifest_bytes
    # nothing changed: no new revision, nothing written
    before = snapshot(out / REPO)
    third = publish(src, REPO, out, keypair.private_path)
    assert third.already_published and third.revision == 2 and third.catalog == second.catalog
    assert third.objects_written == 0 and third.bytes_written == 0 and "already" in third.summary()
    # --rehash reads everything again and finds every object already there (and the same tree)
    fourth = publish(src, REPO, out, keypair.private_path, rehash=True)
    assert fourth.unchanged == 0 and fourth.objects_written == 0 and fourth.objects_present == 200
    assert fourth.already_published and snapshot(out / REPO) == before
    # a touched file is a new revision (its time differs), with no new object
    os.utime(src / "dir5/file5.dat", (1_600_000_000, 1_600_000_000))
    fifth = publish(src, REPO, out, keypair.private_path)
    assert fifth.revision == 3 and not fifth.already_published and fifth.objects_written == 0
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
    os.chmod(src / "pipe", 0o620)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "sock"))
        report = publish(src, REPO, tmp_path / "out", keypair.private_path)
    assert report.skipped == ["/sock"] and report.files == 1 and report.specials == 1
    pipe = current(tmp_path / "out")[1].lookup("/pipe")
    assert stat.S_ISFIFO(pipe.mode) and stat.S_IMODE(pipe.mode) == 0o620 and pipe.size == 0 and pipe.hash is None
    with pytest.raises(TagListError, match="bad tag name"):
        publish(src, REPO, tmp_path / "out", keypair.private_path, tag="-x")
    with pytest.raises(AppbuildError, match="whole number of days"):
        publish(src, REPO, tmp_path / "out", keypair.private_path, valid_days=0)
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
    assert ok.stdout == f"{REPO} revision 1: 1 files, 0 tags; revisions 1 checked, 1 objects; signatures, expiry " \
                        f"and hashes good\n"
    other = keys.generate("other.example.org", tmp_path / "other")
    bad = run_appbuild(workspace, "fs", "check", str(out / REPO), "--pub", str(other.public_path), check=False)
    assert bad.returncode == 1 and "unknown key" in bad.stderr
    missing = run_appbuild(workspace, "fs", "publish", str(src), "--repo", REPO, "--to", str(out), "--keys",
                           str(tmp_path / "elsewhere"), check=False)
    assert missing.returncode == 1 and "cannot read the repository key" in missing.stderr


def test_a_manifest_without_an_expiry_or_past_it_is_refused(tmp_path, keypair):
    report = publish(make_tree(tmp_path / "src", {"f": "x"}), REPO, tmp_path / "out", keypair.private_path,
                     valid_days=2)
    text = (tmp_path / "out" / REPO / MANIFEST_NAME).read_bytes()
    trusted = [keys.load_public(keypair.public_path)]
    m = manifest_mod.verify(text, trusted, REPO)
    assert m.expires == m.timestamp + 2 * 86400 == report.expires
    assert manifest_mod.verify(text, trusted, REPO, now=m.expires - 1) == m
    with pytest.raises(ManifestError) as exc:
        manifest_mod.verify(text, trusted, REPO, now=m.expires)
    expired_at = manifest_mod.utc(m.expires)
    assert str(exc.value) == (f"the manifest of {REPO} revision 1 expired at {expired_at}; the publisher must "
                              f"re-sign it ('appbuild fs resign')")
    assert expired_at.endswith(" UTC") and expired_at[:4].isdigit()
    # what an older publisher wrote: no E line (signed correctly all the same)
    old = manifest_mod.render(manifest_mod.Manifest(m.catalog, m.catalog_size, 1, REPO, m.timestamp),
                              keys.load_private(keypair.private_path))
    assert b"\nE" not in old
    with pytest.raises(ManifestError, match=f"manifest of {REPO} revision 1 has no expiry time.*appbuild fs resign"):
        manifest_mod.verify(old, trusted, REPO)
    assert manifest_mod.parse(old).manifest.expires == 0
    (tmp_path / "out" / REPO / MANIFEST_NAME).write_bytes(old)
    problems = check(tmp_path / "out" / REPO, [keypair.public_path]).problems
    assert problems == [(f"manifest: the manifest of {REPO} revision 1 has no expiry time (no E line: an older "
                         f"publisher signed it); re-sign it with 'appbuild fs resign'")]
    (tmp_path / "out" / REPO / MANIFEST_NAME).write_bytes(text)
    assert check(tmp_path / "out" / REPO, [keypair.public_path]).ok
    assert "expired at" in check(tmp_path / "out" / REPO, [keypair.public_path], now=m.expires + 1).problems[0]


SCHEMA_1 = """
CREATE TABLE catalog (inode INTEGER PRIMARY KEY, parent INTEGER NOT NULL, name TEXT NOT NULL,
    mode INTEGER NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    hash TEXT, symlink TEXT, nlink INTEGER NOT NULL);
CREATE UNIQUE INDEX catalog_parent_name ON catalog (parent, name);
CREATE TABLE properties (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO catalog VALUES (1, 0, '', 16877, 0, 1600000000, 1600000000000000000, NULL, NULL, 2);
INSERT INTO catalog VALUES (2, 1, 'f', 33188, 1, 1600000000, 1600000000000000000, '{hash}', NULL, 1);
INSERT INTO properties VALUES ('schema', '1'), ('repository', 'sw.example.org'), ('revision', '1');
"""


def test_schema_2_catalogs_have_owners_and_devices_and_schema_1_ones_are_still_read(tmp_path, keypair):
    db = sqlite3.connect(tmp_path / "old.db")
    db.executescript(SCHEMA_1.format(hash="ab" * 32))
    db.close()
    old = Catalog((tmp_path / "old.db").read_bytes())
    assert old.schema == "1"
    f = old.lookup("/f")
    assert f.is_file and (f.uid, f.gid, f.rdev, f.hash) == (0, 0, 0, "ab" * 32)
    assert set(old.walk()) == {"", "/f"}
    old.close()
    # a repository whose current catalog is schema 1: republishing the same tree makes a schema 2 revision
    out = tmp_path / "out"
    src = make_tree(tmp_path / "src", {"f": "x"})
    os.utime(src / "f", ns=(1_600_000_000_000_000_000,) * 2)
    first = publish(src, REPO, out, keypair.private_path)
    store = ObjectStore(out / REPO)
    db = sqlite3.connect(tmp_path / "v1.db")
    db.executescript(SCHEMA_1.format(hash=current(out)[1].lookup("/f").hash))
    db.execute("UPDATE catalog SET mode = ? WHERE inode = 1", (current(out)[1].get(1).mode,))
    db.commit()
    db.close()
    v1 = store.put((tmp_path / "v1.db").read_bytes(), CATALOG_SUFFIX)
    (out / REPO / MANIFEST_NAME).write_bytes(manifest_mod.render(
        manifest_mod.Manifest(v1.digest, v1.compressed_size, 1, REPO, first.expires - 86400, expires=first.expires),
        keys.load_private(keypair.private_path)))
    assert current(out)[1].schema == "1"
    again = publish(src, REPO, out, keypair.private_path)
    assert again.revision == 2 and not again.already_published and again.unchanged == 1
    new = current(out)[1]
    assert new.schema == "2" and new.lookup("/f").uid == os.getuid()
    names = [row[1] for row in new.db.execute("PRAGMA table_info(catalog)")]
    assert names == ["inode", "parent", "name", "mode", "size", "mtime", "mtime_ns", "hash", "symlink", "nlink",
                     "uid", "gid", "rdev"]
    with pytest.raises(CatalogError, match="schema '3'"):
        Catalog(_with_schema(tmp_path / "v1.db", "3"))


def _with_schema(path, schema: str) -> bytes:
    db = sqlite3.connect(path)
    db.execute("UPDATE properties SET value = ? WHERE key = 'schema'", (schema,))
    db.commit()
    db.close()
    return path.read_bytes()


SDE = 1_700_000_000  # the image's SOURCE_DATE_EPOCH


def image_metadata() -> dict[str, ImageEntry]:
    """What assemble.rootfs.StagedRoot.entries says about the staged tree of make_staged()."""
    entries = [ImageEntry("/", "dir", 0o755, mtime=SDE), ImageEntry("/etc", "dir", 0o755, mtime=SDE),
               ImageEntry("/etc/shadow", "file", 0o100640, 0, 42, SDE - 5),
               ImageEntry("/bin", "dir", 0o40755, mtime=SDE), ImageEntry("/bin/sh", "file", 0o4755, 0, 0, SDE),
               ImageEntry("/bin/ash", "symlink", 0o777, 0, 0, SDE),
               ImageEntry("/home", "dir", 0o755, mtime=SDE), ImageEntry("/home/user", "dir", 0o700, 1000, 1000, SDE),
               ImageEntry("/dev", "dir", 0o755, mtime=SDE), ImageEntry("/dev/initctl", "fifo", 0o600, 0, 0, SDE),
               ImageEntry("/dev/console", "char", 0o600, 0, 5, SDE, os.makedev(5, 1)),
               ImageEntry("/dev/sda", "block", 0o660, 0, 6, SDE, os.makedev(8, 0))]
    return {e.path: e for e in entries}


def make_staged(root):
    """A staged tree as the build user leaves it: its own files, modes widened, no devices."""
    src = make_tree(root, {"etc/shadow": "root:*:19000::::::\n", "bin/sh": b"\x7fELF" + bytes(100),
                           "dev/.keep": ""}, {"bin/ash": "sh"})
    (root / "home/user").mkdir(parents=True)
    os.mkfifo(root / "dev/initctl")
    for path in ("etc/shadow", "bin/sh"):
        os.chmod(root / path, 0o644)
    return src


def test_image_metadata_gives_the_published_tree_the_image_s_owners_modes_times_and_devices(tmp_path, keypair):
    out = tmp_path / "out"
    report = publish(make_staged(tmp_path / "staged"), REPO, out, keypair.private_path, metadata=image_metadata())
    assert report.unlisted == ["/dev/.keep"] and report.specials == 3 and report.files == 3
    _, cat = current(out)
    tree = cat.walk()
    shadow = tree["/etc/shadow"]
    assert (shadow.mode, shadow.uid, shadow.gid, shadow.mtime) == (stat.S_IFREG | 0o640, 0, 42, SDE - 5)
    assert tree["/bin/sh"].mode == stat.S_IFREG | 0o4755 and tree["/bin/ash"].mode == stat.S_IFLNK | 0o777
    assert (tree["/home/user"].mode, tree["/home/user"].uid, tree["/home/user"].gid) == (stat.S_IFDIR | 0o700,
                                                                                       1000, 1000)
    assert tree[""].mode == stat.S_IFDIR | 0o755 and tree[""].mtime == SDE and tree["/dev"].nlink == 2
    console, sda, initctl = tree["/dev/console"], tree["/dev/sda"], tree["/dev/initctl"]
    assert stat.S_ISCHR(console.mode) and stat.S_IMODE(console.mode) == 0o600 and console.rdev == os.makedev(5, 1)
    assert (console.gid, console.size, console.hash, console.parent) == (5, 0, None, tree["/dev"].inode)
    assert stat.S_ISBLK(sda.mode) and (os.major(sda.rdev), os.minor(sda.rdev)) == (8, 0) and sda.gid == 6
    assert stat.S_ISFIFO(initctl.mode) and initctl.rdev == 0 and stat.S_IMODE(initctl.mode) == 0o600
    assert [e.name for e in cat.listdir(tree["/dev"].inode)] == [".keep", "console", "initctl", "sda"]
    assert tree["/dev/.keep"].uid == 0 and tree["/dev/.keep"].gid == 0  # not in the metadata: root's
    assert check(out / REPO, [keypair.public_path]).ok

    # staged again from scratch (new host times and owners): the same image, so no new revision
    again = publish(make_staged(tmp_path / "staged-again"), REPO, out, keypair.private_path,
                    metadata=image_metadata())
    assert again.already_published and again.revision == 1 and again.catalog == report.catalog
    assert again.unchanged == 0 and again.objects_written == 0  # every file read again: host times differ
    # one mode differs in the image: a new revision
    changed = image_metadata()
    changed["/etc/shadow"] = ImageEntry("/etc/shadow", "file", 0o600, 0, 42, SDE - 5)
    third = publish(tmp_path / "staged-again", REPO, out, keypair.private_path, metadata=changed)
    assert third.revision == 2 and not third.already_published and third.objects_written == 0
    assert current(out)[1].lookup("/etc/shadow").mode == stat.S_IFREG | 0o600


@pytest.mark.parametrize("path, entry, message", [
    ("/bin/sh", ImageEntry("/bin/sh", "dir", 0o755), "/bin/sh is a dir in the image metadata but a file in"),
    ("/opt/tool", ImageEntry("/opt/tool", "file", 0o755), "/opt/tool is a file in the image metadata but is not in"),
    ("/run/null", ImageEntry("/run/null", "char", 0o666, rdev=os.makedev(1, 3)),
     r"/run/null \(a char in the image metadata\) needs the directory /run, which is not in"),
    ("dev/x", ImageEntry("dev/x", "char", 0o666), "paths must be absolute"),
    ("/dev/x", ImageEntry("/dev/x", "socket", 0o666), "unknown type 'socket'"),
    ("/dev/x", ImageEntry("/dev/x", "char", 0o666, uid=-1), "uid -1 is not a whole number"),
    ("/dev/x", type("Partial", (), {"type": "char", "mode": 0o600, "uid": 0, "gid": 0, "mtime": 0})(),
     "image metadata of /dev/x has no 'rdev'"),
])
def test_image_metadata_that_does_not_fit_the_tree_is_refused(tmp_path, keypair, path, entry, message):
    metadata = {**image_metadata(), path: entry}
    with pytest.raises(PublishError, match=message):
        publish(make_staged(tmp_path / "staged"), REPO, tmp_path / "out", keypair.private_path, metadata=metadata)
    assert not (tmp_path / "out" / REPO / MANIFEST_NAME).exists()
