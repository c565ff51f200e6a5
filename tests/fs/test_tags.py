"""The tag list (.cvmfstags), publishing with tags, republishing, re-signing and garbage
collection (appbuilder.fs.tags, publish, gc) and their 'appbuild fs' commands. No client
here: see test_client.py."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from dataclasses import replace

import pytest

from appbuilder.fs import keys
from appbuilder.fs import manifest as manifest_mod
from appbuilder.fs import publish as publish_mod
from appbuilder.fs import tags as tags_mod
from appbuilder.fs.catalog import Catalog
from appbuilder.fs.check import check
from appbuilder.fs.gc import GcError, gc
from appbuilder.fs.manifest import MANIFEST_NAME, utc
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectStore
from appbuilder.fs.publish import PublishError, publish, resign
from appbuilder.fs.tags import TAGS_NAME, Tag, TagList, TagListError
from tests.conftest import VENV_BIN, env_for, run_appbuild
from tests.fs.conftest import REPO, make_tree
from tests.fs.test_publish import snapshot

HASH1, HASH2, HASH3 = "1" * 64, "2" * 64, "3" * 64


def manifest_of(out) -> manifest_mod.Manifest:
    return manifest_mod.parse((out / REPO / MANIFEST_NAME).read_bytes()).manifest


def taglist_of(out) -> TagList:
    return tags_mod.parse((out / REPO / TAGS_NAME).read_bytes())


def tree_of(out, catalog: str) -> dict[str, bytes]:
    """Every file of a revision, read back through its catalog and objects (hash-checked)."""
    store = ObjectStore(out / REPO)
    cat = Catalog(store.get(catalog, CATALOG_SUFFIX))
    try:
        return {path: store.get(e.hash) for path, e in cat.walk().items() if e.is_file}
    finally:
        cat.close()


@pytest.mark.parametrize("name", ["1.0-1-2", "v1", "A", "x" * 128, "a_b+c~d.e-f", "0"])
def test_good_tag_names(name):
    assert tags_mod.check_tag_name(name) == name


@pytest.mark.parametrize("name", ["", "-1", ".hidden", "~x", "a b", "a/b", "x" * 129, "é", "latest", "a\n"])
def test_bad_tag_names_are_refused(name):
    with pytest.raises(TagListError, match="bad tag name|'latest' cannot name a tag"):
        tags_mod.check_tag_name(name)


def test_the_tag_list_text_signature_and_checks(tmp_path, keypair):
    private = keys.load_private(keypair.private_path)
    trusted = [keys.load_public(keypair.public_path)]
    taglist = TagList(REPO, 7, 1_700_000_000, 1_700_086_400, (
        Tag("v3", 7, HASH3, 300, 1_699_999_000), Tag("v1", 1, HASH1, 100, 1_600_000_000),
        Tag("v2", 4, HASH2, 200, 1_650_000_000)))
    data = tags_mod.render(taglist, private)
    body, signature = data.split(b"--\n")
    assert body.decode() == (f"N{REPO}\nS7\nT1700000000\nE1700086400\nK{keypair.key_id}\n"
                             f"Gv1 1 {HASH1} 100 1600000000\nGv2 4 {HASH2} 200 1650000000\n"
                             f"Gv3 7 {HASH3} 300 1699999000\n")
    assert len(signature.strip()) == 128 and data.endswith(b"\n")
    parsed = tags_mod.verify(data, trusted, REPO, now=1_700_000_001)
    assert parsed.names() == ["v1", "v2", "v3"] and parsed.key_id == keypair.key_id
    assert parsed.get("v2") == Tag("v2", 4, HASH2, 200, 1_650_000_000) and parsed.get("v9") is None
    assert parsed.newest.name == "v3" and parsed.get("latest") == parsed.newest
    assert tags_mod.parse(data) == parsed

    with pytest.raises(TagListError, match="bad signature"):
        tags_mod.verify(data.replace(b"Gv1 1 ", b"Gv1 2 "), trusted, REPO, now=1_700_000_001)
    other = keys.generate("other.example.org", tmp_path / "other")
    with pytest.raises(TagListError, match=f"unknown key {keypair.key_id}"):
        tags_mod.verify(data, [keys.load_public(other.public_path)], REPO, now=1_700_000_001)
    with pytest.raises(TagListError, match=f"is for repository '{REPO}', not 'else.example.org'"):
        tags_mod.verify(data, trusted, "else.example.org", now=1_700_000_001)
    with pytest.raises(TagListError) as exc:
        tags_mod.verify(data, trusted, REPO, now=1_700_086_400)
    assert str(exc.value) == (f"the tag list of {REPO} (revision 7) expired at 2023-11-15 22:13:20 UTC; the "
                              f"publisher must re-sign it ('appbuild fs resign')")
    assert tags_mod.verify(data, trusted, REPO, now=1_800_000_000, check_expires=False) == parsed


@pytest.mark.parametrize("change, message", [
    (lambda b: b.replace(b"--\n", b""), "no '--' line"),
    (lambda b: b.replace(b"\nT1700000000\n", b"\n"), "no field 'T'"),
    (lambda b: b.replace(b"\nS7\n", b"\nS7\nS8\n"), "field S appears twice"),
    (lambda b: b.replace(b"Gv2 4", b"Gv1 4"), "tag v1 appears twice"),
    (lambda b: b.replace(b"Gv2 4", b"Glatest 4"), "'latest' cannot name a tag"),
    (lambda b: b.replace(b"Gv2 4 " + HASH2.encode(), b"Gv2 4 nothex"), "is not a sha256 hash"),
    (lambda b: b.replace(b" 200 ", b" 2x0 "), "catalog size '2x0' is not a number"),
    (lambda b: b.replace(b"Gv1 1 ", b"Gv1 5 "), "not in revision order"),
    (lambda b: b.replace(b"Gv2 4 ", b"Gv2  4 "), "a tag is 'NAME REVISION CATALOG SIZE TIME'"),
    (lambda b: b.replace(b"\nE1700086400\n", b"\n\n"), "line 4 is empty"),
])
def test_malformed_tag_lists_are_refused(keypair, change, message):
    taglist = TagList(REPO, 7, 1_700_000_000, 1_700_086_400, (Tag("v1", 1, HASH1, 100, 1), Tag("v2", 4, HASH2, 200, 2)))
    data = tags_mod.render(taglist, keys.load_private(keypair.private_path))
    with pytest.raises(TagListError, match=message):
        tags_mod.parse(change(data))


def test_a_tag_never_changes_its_catalog():
    taglist = TagList(REPO, 1, 0, 1, (Tag("v1", 1, HASH1, 100, 5),))
    assert taglist.with_tag(Tag("v1", 1, HASH1, 100, 9)) is taglist  # the same tag again: nothing changes
    two = taglist.with_tag(Tag("v1b", 1, HASH1, 100, 9))
    assert two.names() == ["v1", "v1b"] and two.newest.name == "v1b"
    with pytest.raises(TagListError, match="tag v1 of sw.example.org is revision 1 .* tags are immutable"):
        taglist.with_tag(Tag("v1", 2, HASH2, 100, 9))


def test_publishing_with_tags_republishing_and_immutable_tags(tmp_path, keypair):
    out, trusted = tmp_path / "out", [keys.load_public(keypair.public_path)]
    src = make_tree(tmp_path / "src", {"common": "shared\n", "version": "1\n"})
    first = publish(src, REPO, out, keypair.private_path, tag="1.0-1-1")
    assert first.tag_added and first.revision == 1 and "tagged 1.0-1-1" in first.summary()
    taglist = tags_mod.verify((out / REPO / TAGS_NAME).read_bytes(), trusted, REPO)
    catalog_size = ObjectStore(out / REPO).path(first.catalog, CATALOG_SUFFIX).stat().st_size
    assert taglist.revision == 1 and taglist.expires == first.expires == manifest_of(out).expires
    assert taglist.tags == (Tag("1.0-1-1", 1, first.catalog, catalog_size, taglist.timestamp),)

    # the same tree with the same tag: nothing at all is written
    before = snapshot(out / REPO)
    same = publish(src, REPO, out, keypair.private_path, tag="1.0-1-1")
    assert same.already_published and not same.tag_added and same.revision == 1 and same.bytes_written == 0
    assert snapshot(out / REPO) == before
    assert same.summary().startswith(f"{REPO}: this tree is revision 1 (tag 1.0-1-1) already; no new revision")

    # the same tree with a new tag: the tag is added for revision 1; no new catalog or manifest
    time.sleep(1.1)  # a later signing time
    renamed = publish(src, REPO, out, keypair.private_path, tag="stable")
    assert renamed.already_published and renamed.tag_added and renamed.revision == 1
    after = snapshot(out / REPO)
    assert after[MANIFEST_NAME] == before[MANIFEST_NAME]
    assert set(after) == set(before) and after[TAGS_NAME] != before[TAGS_NAME]
    taglist = tags_mod.verify((out / REPO / TAGS_NAME).read_bytes(), trusted, REPO)
    assert [(t.name, t.revision, t.catalog) for t in taglist.tags] == [("1.0-1-1", 1, first.catalog),
                                                                       ("stable", 1, first.catalog)]
    assert taglist.revision == 1 and taglist.timestamp > tags_mod.parse(before[TAGS_NAME][0]).timestamp

    # a changed tree under a tag that names revision 1: refused, nothing changes
    (src / "version").write_text("2\n")
    with pytest.raises(PublishError) as exc:
        publish(src, REPO, out, keypair.private_path, tag="1.0-1-1")
    assert "tag 1.0-1-1 of sw.example.org is revision 1" in str(exc.value)
    assert "(/version: mtime, content); tags are immutable" in str(exc.value)
    assert manifest_of(out).revision == 1 and (out / REPO / TAGS_NAME).read_bytes() == after[TAGS_NAME][0]

    second = publish(src, REPO, out, keypair.private_path, tag="1.0-1-2")
    assert second.revision == 2 and second.tag_added and taglist_of(out).names() == ["1.0-1-1", "stable", "1.0-1-2"]
    assert taglist_of(out).revision == 2 and taglist_of(out).newest.name == "1.0-1-2"
    untagged = publish(make_tree(tmp_path / "src3", {"common": "shared\n"}), REPO, out, keypair.private_path)
    assert untagged.revision == 3 and taglist_of(out).revision == 3 and len(taglist_of(out).tags) == 3

    # republishing an older tagged version (its tree made again): a no-op naming that revision
    files = tree_of(out, first.catalog)
    assert files["/version"] == b"1\n"
    old_src = make_tree(tmp_path / "src-old", {})
    for name in ("common", "version"):
        (old_src / name).write_bytes(files[f"/{name}"])
    cat = Catalog(ObjectStore(out / REPO).get(first.catalog, CATALOG_SUFFIX))
    for path, e in cat.walk().items():
        os.utime(old_src / path.lstrip("/") if path else old_src, (e.mtime, e.mtime))
    cat.close()
    old = publish(old_src, REPO, out, keypair.private_path, tag="1.0-1-1")
    assert old.already_published and old.revision == 1 and manifest_of(out).revision == 3
    assert check(out / REPO, [keypair.public_path]).ok


def test_the_tag_list_is_written_before_the_manifest_and_an_interrupted_publish_is_finished(
        tmp_path, keypair, monkeypatch):
    out = tmp_path / "out"
    src = make_tree(tmp_path / "src", {"f": "one\n"})
    publish(src, REPO, out, keypair.private_path, tag="v1")
    written: list[str] = []
    real = publish_mod.write_atomic
    monkeypatch.setattr(publish_mod, "write_atomic", lambda path, data, *a: (written.append(path.name),
                                                                             real(path, data, *a)))
    (src / "f").write_text("two\n")
    publish(src, REPO, out, keypair.private_path, tag="v2")
    assert written == [TAGS_NAME, MANIFEST_NAME]

    # killed between the tag list and the manifest: clients still see revision 2, consistently
    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(publish_mod, "_write_manifest", killed)
    (src / "f").write_text("three\n")
    with pytest.raises(KeyboardInterrupt):
        publish(src, REPO, out, keypair.private_path, tag="v3")
    monkeypatch.undo()
    assert manifest_of(out).revision == 2 and taglist_of(out).get("v3").revision == 3
    report = check(out / REPO, [keypair.public_path])
    assert report.ok and report.revisions == [2, 3, 1]
    # publishing it again finishes the job: the manifest names the tagged revision
    done = publish(src, REPO, out, keypair.private_path, tag="v3")
    assert done.completed and done.revision == 3 and "finished an interrupted publish" in done.summary()
    assert manifest_of(out).revision == 3 and manifest_of(out).catalog == taglist_of(out).get("v3").catalog
    assert check(out / REPO, [keypair.public_path]).ok
    # killed there again; then another tree: its revision comes after the highest used (4, the tag's)
    monkeypatch.setattr(publish_mod, "_write_manifest", killed)
    (src / "f").write_text("four\n")
    with pytest.raises(KeyboardInterrupt):
        publish(src, REPO, out, keypair.private_path, tag="v4")
    monkeypatch.undo()
    (src / "f").write_text("five\n")
    assert publish(src, REPO, out, keypair.private_path).revision == 5
    assert taglist_of(out).revision == 5 and taglist_of(out).get("v4").revision == 4
    report = check(out / REPO, [keypair.public_path])
    assert report.ok and report.revisions == [5, 4, 3, 2, 1]


def test_check_verifies_the_tag_list_and_every_tagged_revision(tmp_path, keypair):
    out = tmp_path / "out"
    src = make_tree(tmp_path / "src", {"f": "one\n"})
    v1 = publish(src, REPO, out, keypair.private_path, tag="v1")
    (src / "f").write_text("two\n")
    publish(src, REPO, out, keypair.private_path, tag="v2")
    report = check(out / REPO, [keypair.public_path])
    assert report.ok and report.revisions == [2, 1] and report.objects == 2 and report.files == 1
    assert report.tags.names() == ["v1", "v2"]
    path = out / REPO / TAGS_NAME
    good = path.read_bytes()
    path.write_bytes(good.replace(b"Gv1 1", b"Gv1 2"))
    assert check(out / REPO, [keypair.public_path]).problems == [
        f"tag list: bad signature: the tag list does not verify with key {keypair.key_id}"]
    short = replace(taglist_of(out), expires=taglist_of(out).timestamp + 60)
    path.write_bytes(tags_mod.render(short, keys.load_private(keypair.private_path)))
    assert check(out / REPO, [keypair.public_path], now=short.expires).problems == [
        (f"tag list: the tag list of sw.example.org (revision 2) expired at {utc(short.expires)}; the publisher "
         f"must re-sign it ('appbuild fs resign')")]
    path.write_bytes(good)
    store = ObjectStore(out / REPO)
    old_file = Catalog(store.get(v1.catalog, CATALOG_SUFFIX)).lookup("/f").hash
    store.path(old_file).unlink()
    assert check(out / REPO, [keypair.public_path]).problems == [
        f"/f: object data/{old_file[:2]}/{old_file[2:]} is missing (tag v1 (revision 1))"]
    store.path(v1.catalog, CATALOG_SUFFIX).unlink()
    problems = check(out / REPO, [keypair.public_path]).problems
    assert len(problems) == 1 and problems[0].startswith("catalog of tag v1 (revision 1): object") and "missing" in \
        problems[0]
    path.unlink()
    assert check(out / REPO, [keypair.public_path]).problems[0].startswith(f"no tag list: {path}")


def test_resign_renews_manifest_and_tag_list_with_the_same_content(tmp_path, keypair):
    out, trusted = tmp_path / "out", [keys.load_public(keypair.public_path)]
    src = make_tree(tmp_path / "src", {"f": "one\n"})
    publish(src, REPO, out, keypair.private_path, tag="v1", valid_days=1)
    before_m, before_t = manifest_of(out), taglist_of(out)
    later = before_m.timestamp + 2 * 86400  # the manifest expired a day ago
    with pytest.raises(manifest_mod.ManifestError, match="expired"):
        manifest_mod.verify((out / REPO / MANIFEST_NAME).read_bytes(), trusted, REPO, now=later)
    time.sleep(1.1)
    report = resign(REPO, out, keypair.private_path, valid_days=30)
    after_m = manifest_mod.verify((out / REPO / MANIFEST_NAME).read_bytes(), trusted, REPO, now=later)
    after_t = tags_mod.verify((out / REPO / TAGS_NAME).read_bytes(), trusted, REPO, now=later)
    assert (after_m.catalog, after_m.catalog_size, after_m.revision, after_m.ttl) == \
        (before_m.catalog, before_m.catalog_size, before_m.revision, before_m.ttl)
    assert after_m.timestamp > before_m.timestamp and after_m.expires == after_m.timestamp + 30 * 86400
    assert (after_t.tags, after_t.revision) == (before_t.tags, before_t.revision)
    assert after_t.timestamp == after_m.timestamp and after_t.expires == after_m.expires
    assert report.summary() == (f"{REPO} revision 1 re-signed with key {keypair.key_id}: manifest and tag list "
                                f"(1 tags) valid until {utc(after_m.expires)}")
    assert check(out / REPO, [keypair.public_path]).ok

    # a manifest changed by someone else is not signed again
    good = (out / REPO / MANIFEST_NAME).read_bytes()
    (out / REPO / MANIFEST_NAME).write_bytes(good.replace(b"\nD240\n", b"\nD9\n"))
    with pytest.raises(PublishError, match="bad signature.*refusing to re-sign it"):
        resign(REPO, out, keypair.private_path)
    (out / REPO / MANIFEST_NAME).write_bytes(good)
    # a new key: only with the old one trusted
    new = keys.generate(REPO, tmp_path / "newkeys")
    with pytest.raises(PublishError, match=f"unknown key {keypair.key_id}"):
        resign(REPO, out, new.private_path)
    assert resign(REPO, out, new.private_path, trust=[keypair.public_path]).key_id == new.key_id
    assert check(out / REPO, [new.public_path]).ok and not check(out / REPO, [keypair.public_path]).ok
    # a tagged catalog gone: refused
    ObjectStore(out / REPO).path(before_t.get("v1").catalog, CATALOG_SUFFIX).unlink()
    with pytest.raises(PublishError, match=r"the catalog of revision 1 is unusable .* refusing to re-sign"):
        resign(REPO, out, new.private_path)
    with pytest.raises(PublishError, match="no repository other.example.org"):
        resign("other.example.org", out, new.private_path)


def test_gc_keeps_the_current_and_every_tagged_revision(tmp_path, keypair):
    out = tmp_path / "out"
    src = make_tree(tmp_path / "src", {"common": "in every version\n", "v": "1\n", "only-v1": os.urandom(500)})
    v1 = publish(src, REPO, out, keypair.private_path, tag="v1")
    snap1 = {f"/{p.name}": p.read_bytes() for p in src.iterdir()}
    (src / "only-v1").unlink()
    (src / "v").write_text("2\n")
    make_tree(src, {"only-v2": os.urandom(700)})
    v2 = publish(src, REPO, out, keypair.private_path)
    (src / "only-v2").unlink()
    (src / "v").write_text("3\n")
    make_tree(src, {"only-v3": os.urandom(900)})
    v3 = publish(src, REPO, out, keypair.private_path, tag="v3")
    snap3 = {f"/{p.name}": p.read_bytes() for p in src.iterdir()}
    store = ObjectStore(out / REPO)
    v2_tree = Catalog(store.get(v2.catalog, CATALOG_SUFFIX)).walk()
    v2_only = [store.path(v2_tree[p].hash) for p in ("/only-v2", "/v")] + [store.path(v2.catalog, CATALOG_SUFFIX)]
    garbage_bytes = sum(p.stat().st_size for p in v2_only)
    # leftovers of killed publishes, and a file that is not ours
    (out / REPO / "data" / "txn" / "obj-leftover").write_bytes(b"x" * 10)
    (store.path(v1.catalog).parent / ".tmp-leftover").write_bytes(b"y")
    (out / REPO / "data" / "README").write_text("not an object\n")

    before = snapshot(out / REPO)
    dry = gc(REPO, out, dry_run=True)
    assert snapshot(out / REPO) == before
    assert (dry.objects_deleted, dry.bytes_deleted, dry.temporaries_deleted) == (3, garbage_bytes, 2)
    assert dry.summary().startswith(f"{REPO}: would delete 3 objects ({garbage_bytes} bytes)")
    report = gc(REPO, out)
    assert (report.objects_deleted, report.bytes_deleted, report.temporaries_deleted) == (3, garbage_bytes, 2)
    assert [k.describe() for k in report.kept] == ["revision 3 (current, tag v3)", "revision 1 (tag v1)"]
    assert report.unknown == ["data/README"] and (out / REPO / "data" / "README").exists()
    assert report.objects_kept == 7  # common, v 1, only-v1, v 3, only-v3, two catalogs
    assert not any(p.exists() for p in v2_only)
    assert not list((out / REPO / "data" / "txn").iterdir())
    # v1 and v3 are whole: checked end to end, and their files read back as published
    result = check(out / REPO, [keypair.public_path])
    assert result.ok and result.revisions == [3, 1]
    assert tree_of(out, v1.catalog) == snap1 and tree_of(out, v3.catalog) == snap3
    again = gc(REPO, out)
    assert again.objects_deleted == 0 and again.objects_kept == 7


def test_gc_refuses_when_a_kept_catalog_is_unusable_and_waits_for_no_publisher(tmp_path, keypair):
    out = tmp_path / "out"
    src = make_tree(tmp_path / "src", {"f": "1"})
    v1 = publish(src, REPO, out, keypair.private_path, tag="v1")
    (src / "f").write_text("2")
    publish(src, REPO, out, keypair.private_path)
    (src / "f").write_text("3")
    publish(src, REPO, out, keypair.private_path)
    ObjectStore(out / REPO).path(v1.catalog, CATALOG_SUFFIX).unlink()
    before = snapshot(out / REPO)
    with pytest.raises(GcError, match="the catalog of sw.example.org revision 1 \\(tag v1\\) is unusable .* nothing "
                                      "deleted"):
        gc(REPO, out)
    assert snapshot(out / REPO) == before
    with open(out / REPO / ".publish.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(PublishError, match="another publish, resign or gc of sw.example.org is running"):
            gc(REPO, out)
    with pytest.raises(PublishError, match="no repository"):
        gc(REPO, tmp_path / "elsewhere")


def test_a_gc_killed_at_any_point_leaves_a_valid_repository(tmp_path, keypair, workspace):
    out = tmp_path / "out"
    src = make_tree(tmp_path / "src", {f"d{i % 16}/keep{i}": f"kept {i}\n" for i in range(50)})
    publish(src, REPO, out, keypair.private_path, tag="v1")
    garbage = make_tree(tmp_path / "src", {f"g{i % 64}/garbage{i}": os.urandom(64) for i in range(4000)})
    publish(garbage, REPO, out, keypair.private_path)
    for path in (garbage).glob("g*"):
        for f in path.iterdir():
            f.unlink()
        path.rmdir()
    (src / "last").write_text("the current one\n")
    publish(src, REPO, out, keypair.private_path, tag="v3")
    objects = sorted((out / REPO / "data").glob("??/*"))
    total = len(objects)
    proc = subprocess.Popen([str(VENV_BIN / "appbuild"), "fs", "gc", "--repo", REPO, "--to", str(out)],
                            env=env_for(workspace), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and all(p.exists() for p in objects[:64]):  # until deleting has begun
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    left = len(list((out / REPO / "data").glob("??/*")))
    print(f"gc killed with {total - left} of {total} objects deleted")
    assert left < total
    result = check(out / REPO, [keypair.public_path])
    assert result.ok and result.revisions == [3, 1], result.problems
    finished = gc(REPO, out)
    assert finished.objects_kept == left - finished.objects_deleted
    assert len(list((out / REPO / "data").glob("??/*"))) == 50 + 1 + 2  # files, /last, two catalogs
    assert check(out / REPO, [keypair.public_path]).ok


def test_tags_resign_gc_and_publish_with_a_tag_from_the_command_line(tmp_path, workspace, keypair):
    out = tmp_path / "www"
    src = make_tree(tmp_path / "src", {"x/y": "z"})
    key = ["--key", str(keypair.private_path)]
    first = run_appbuild(workspace, "fs", "publish", str(src), "--repo", REPO, "--to", str(out), *key,
                         "--tag", "1.0-1-1", "--valid-days", "7")
    assert first.stdout.startswith(f"{REPO} revision 1: 1 files") and "tagged 1.0-1-1" in first.stdout
    assert manifest_of(out).expires == manifest_of(out).timestamp + 7 * 86400
    same = run_appbuild(workspace, "fs", "publish", str(src), "--repo", REPO, "--to", str(out), *key,
                        "--tag", "1.0-1-1")
    assert f"{REPO}: this tree is revision 1 (tag 1.0-1-1) already; no new revision" in same.stdout
    (src / "x/y").write_text("changed")
    for args, message in [(["--tag", "1.0-1-1"], "tags are immutable"), (["--tag", "latest"], "'latest' cannot"),
                          (["--valid-days", "0"], "whole number of days from 1")]:
        bad = run_appbuild(workspace, "fs", "publish", str(src), "--repo", REPO, "--to", str(out), *key, *args,
                           check=False)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    run_appbuild(workspace, "fs", "publish", str(src), "--repo", REPO, "--to", str(out), *key)
    (src / "x/y").write_text("third")
    run_appbuild(workspace, "fs", "publish", str(src), "--repo", REPO, "--to", str(out), *key, "--tag", "1.0-1-3")

    listing = run_appbuild(workspace, "fs", "tags", "--repo", REPO, "--to", str(out), "--pub",
                           str(keypair.public_path)).stdout.splitlines()
    t = taglist_of(out)
    assert listing[0] == (f"# {REPO}: tag list revision 3, signed {utc(t.timestamp)}, expires {utc(t.expires)}; "
                          f"signature good (key {keypair.key_id})")
    assert listing[1].split() == ["NAME", "REVISION", "CATALOG", "TAGGED"]
    assert [line.split()[:3] for line in listing[2:]] == [[x.name, str(x.revision), x.catalog] for x in t.tags]
    assert [x.name for x in t.tags] == ["1.0-1-1", "1.0-1-3"] and listing[2].endswith(utc(t.tags[0].timestamp))

    resigned = run_appbuild(workspace, "fs", "resign", "--repo", REPO, "--to", str(out), *key, "--valid-days", "60")
    assert resigned.stdout.startswith(f"{REPO} revision 3 re-signed with key {keypair.key_id}")
    assert manifest_of(out).expires == manifest_of(out).timestamp + 60 * 86400 == taglist_of(out).expires
    collected = run_appbuild(workspace, "fs", "gc", "--repo", REPO, "--to", str(out), "--dry-run")
    assert collected.stdout.startswith(f"{REPO}: would delete 2 objects")  # revision 2's catalog and content
    collected = run_appbuild(workspace, "fs", "gc", "--repo", REPO, "--to", str(out))
    assert collected.stdout.startswith(f"{REPO}: deleted 2 objects")
    assert "of revision 3 (current, tag 1.0-1-3), revision 1 (tag 1.0-1-1)" in collected.stdout
    ok = run_appbuild(workspace, "fs", "check", str(out / REPO), "--pub", str(keypair.public_path))
    assert ok.stdout == (f"{REPO} revision 3: 1 files, 2 tags; revisions 3, 1 checked, 2 objects; signatures, "
                         f"expiry and hashes good\n")
    missing = run_appbuild(workspace, "fs", "tags", "--repo", "none.example.org", "--to", str(out), check=False)
    assert missing.returncode == 1 and "no tag list" in missing.stderr and "Traceback" not in missing.stderr


def test_a_tag_list_changed_by_someone_else_is_not_signed_again_nor_trusted_by_gc(tmp_path, keypair):
    out = tmp_path / "out"
    src = make_tree(tmp_path / "src", {"f": "1"})
    publish(src, REPO, out, keypair.private_path, tag="v1")
    path = out / REPO / TAGS_NAME
    good = path.read_bytes()
    path.write_bytes(good.replace(b"Gv1 1 ", b"Gv0 1 "))  # a tag renamed behind the publisher's back
    (src / "f").write_text("2")
    before = snapshot(out / REPO)
    with pytest.raises(PublishError, match=f"{TAGS_NAME}: bad signature.*not signing it again"):
        publish(src, REPO, out, keypair.private_path, tag="v2")
    with pytest.raises(PublishError, match="bad signature.*not signing it again"):
        resign(REPO, out, keypair.private_path)
    path.write_bytes(b"garbage\n")
    with pytest.raises(PublishError, match="no '--' line before its signature; nothing deleted, since which revisions are tagged"):
        gc(REPO, out)
    path.write_bytes(good)
    assert snapshot(out / REPO) == {**before, TAGS_NAME: (good, path.stat().st_mtime_ns)}
    assert publish(src, REPO, out, keypair.private_path, tag="v2").revision == 2
