"""``export_repository``: a static tree of objects as stored, a signed versioned snapshot, a pointer written last."""

from __future__ import annotations

import hashlib
import json

import pytest
import zstandard

from appbuilder.repository import snapshot as snap
from appbuilder.repository.export import ExportError, export_repository
from appbuilder.repository.keys import check_document
from appbuilder.repository.remote import open_remote
from appbuilder.repository.repo import Repository
from appbuilder.repository.store import DamagedObject
from tests.conftest import copy_repository
from tests.repository.conftest import commit_synthetic, open_repository, replace_file

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def test_the_tree_holds_every_object_as_stored_and_a_signed_pointer(hello_export, hello_repo, repo_keys):
    tree, result = hello_export
    repo = open_repository(hello_repo)
    pointer = json.loads((tree / "snapshot.json").read_text())
    assert pointer["serial"] == result.serial == 1 and result.signed
    assert check_document(pointer, repo_keys[1], what="the pointer") == repo_keys[0].key_id
    body = zstandard.ZstdDecompressor().decompress((tree / pointer["snapshot"]).read_bytes())
    assert hashlib.sha256(body).hexdigest() == pointer["sha256"] and len(body) == pointer["size"]
    doc = snap.parse(body, what="the snapshot")
    assert len(doc["troves"]) == pointer["troves"] == len(repo.db.execute("SELECT id FROM troves").fetchall())
    wanted = repo.referenced_contents()
    assert snap.referenced(doc) == wanted
    exported = {p.name[:-4] for p in (tree / "objects").glob("*/*.zst")}
    assert exported == wanted and result.objects_written == len(wanted) > 1000
    for digest in sorted(wanted)[::25]:  # copied as stored, never recompressed
        assert (tree / "objects" / digest[:2] / f"{digest}.zst").read_bytes() == repo.store.path_of(digest).read_bytes()
    leftovers = [p for p in tree.rglob(".*") if p.name != ".lock"]
    assert leftovers == []


def test_a_second_export_writes_only_what_changed(tmp_path, hello_repo, repo_keys):
    repo = Repository(copy_repository(hello_repo.repository, tmp_path / "repo"), hello_repo.label)
    tree = tmp_path / "tree"
    first = export_repository(repo, tree, signer=repo_keys[0])
    again = export_repository(repo, tree, signer=repo_keys[0])
    assert (again.serial, again.snapshot_written, again.objects_written) == (1, False, 0)
    assert again.objects_skipped == first.objects_written
    commit_synthetic(repo, "extra", [b"new content one", b"new content two"])
    third = export_repository(repo, tree, signer=repo_keys[0])
    assert (third.serial, third.snapshot_written) == (2, True)
    assert third.objects_written == 3  # two files and the build log
    assert third.objects_skipped == first.objects_written
    pointer = json.loads((tree / "snapshot.json").read_text())
    # the old one stays; the delta from it is written beside the new one
    names = sorted(p.name for p in (tree / "snapshots").iterdir())
    assert pointer["serial"] == 2 and names == sorted([f"{first.digest}.json.zst", f"{third.digest}.json.zst",
                                                       f"{third.digest}.from-{first.digest}.json.zst"])
    assert pointer["delta"]["snapshot"] == f"snapshots/{third.digest}.from-{first.digest}.json.zst"
    unsigned = export_repository(repo, tree)  # a change of key (here: none) is a new snapshot
    assert unsigned.serial == 3 and not unsigned.signed
    assert "signature" not in json.loads((tree / "snapshot.json").read_text())


def test_an_unchanged_index_is_not_read_again_when_asked_and_every_commit_is_seen(tmp_path, hello_repo, repo_keys):
    from appbuilder.repository import index

    repo = Repository(copy_repository(hello_repo.repository, tmp_path / "repo"), hello_repo.label)
    tree = tmp_path / "tree"
    first = export_repository(repo, tree, signer=repo_keys[0], skip_unchanged=True)  # nothing to trust yet
    pointer = json.loads((tree / "snapshot.json").read_text())
    assert first.snapshot_written and pointer["index_state"] == index.state(repo.db) != ""
    assert check_document(pointer, repo_keys[1], what="the pointer") == repo_keys[0].key_id
    victim = sorted((tree / "objects").glob("*/*.zst"))[0]
    victim.unlink()  # a tree damaged behind the export's back
    quick = export_repository(repo, tree, signer=repo_keys[0], skip_unchanged=True)
    assert (quick.serial, quick.snapshot_written, quick.objects_written, quick.body) == (1, False, 0, None)
    assert quick.digest == first.digest and not victim.exists()  # the pointer was trusted: nothing read
    whole = export_repository(repo, tree, signer=repo_keys[0])  # without: the tree is checked whole
    assert whole.objects_written == 1 and victim.exists() and whole.serial == 1
    commit_synthetic(repo, "extra", [b"seen"])  # every commit changes the state: exported
    after = export_repository(repo, tree, signer=repo_keys[0], skip_unchanged=True)
    assert (after.serial, after.snapshot_written, after.objects_written) == (2, True, 2)
    other = Repository(copy_repository(repo.path, tmp_path / "copy"), hello_repo.label)
    commit_synthetic(other, "diverged", [b"only in the copy"])  # a copy of the index that changed: its own token
    assert index.state(other.db) not in ("", index.state(repo.db))
    assert export_repository(other, tree, signer=repo_keys[0], skip_unchanged=True).serial == 3
    assert export_repository(repo, tree, signer=repo_keys[0], skip_unchanged=True).serial == 4


def test_a_damaged_object_stops_the_export_before_the_pointer(tmp_path, repo_keys):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"first"])
    tree = tmp_path / "tree"
    export_repository(repo, tree, signer=repo_keys[0])
    before = (tree / "snapshot.json").read_bytes()
    trove = commit_synthetic(repo, "two", [b"second content"])
    digest = repo.get(repo.get(trove.nvf).members[0]).files[0].sha256
    replace_file(repo.store.path_of(digest), zstandard.ZstdCompressor().compress(b"something else"))
    with pytest.raises(DamagedObject, match=digest):
        export_repository(repo, tree, signer=repo_keys[0])
    assert (tree / "snapshot.json").read_bytes() == before
    assert not (tree / "objects" / digest[:2] / f"{digest}.zst").exists()
    assert [p for p in tree.rglob(".*") if p.name != ".lock"] == []  # no temporary file left


def test_an_export_refuses_a_destination_holding_something_else(tmp_path):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "snapshot.json").write_text("{\"some\": \"thing\"}")
    with pytest.raises(ExportError, match="not an appbuild export pointer"):
        export_repository(repo, tmp_path / "tree")
    with pytest.raises(ExportError, match="give a directory or s3://"):
        export_repository(repo, "ftp://example.org/x")


def test_export_to_s3_then_read_it_over_http(moto_endpoint, monkeypatch, hello_repo, repo_keys, tmp_path):
    import boto3

    for key, value in CREDS.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="repository")
    s3.put_bucket_policy(Bucket="repository", Policy=json.dumps({  # readable by anyone, as a download bucket is
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                "Resource": "arn:aws:s3:::repository/*"}]}))
    repo = open_repository(hello_repo)
    first = export_repository(repo, "s3://repository/cvm", signer=repo_keys[0], endpoint_url=moto_endpoint, jobs=8)
    assert first.objects_written == len(repo.referenced_contents()) and first.serial == 1
    again = export_repository(repo, "s3://repository/cvm", signer=repo_keys[0], endpoint_url=moto_endpoint)
    assert (again.objects_written, again.objects_skipped, again.snapshot_written) == (0, first.objects_written, False)
    head = s3.head_object(Bucket="repository", Key="cvm/snapshot.json")
    assert head["CacheControl"] == "no-cache"
    # the bucket is the static tree: a worker reads it over plain HTTP
    remote = open_remote(f"{moto_endpoint}/repository/cvm", tmp_path / "cache", trusted=repo_keys[1])
    hello = repo.find_one("hello:runtime", arch="x86_64")
    trove = remote.get(hello)
    assert trove == repo.get(hello)
    digests = {f.sha256 for f in trove.files if f.sha256}
    for digest in digests:
        assert remote.store.read(digest) == repo.store.read(digest)
    assert remote.store.fetched == len(digests)
    small = Repository(tmp_path / "small", "cernvm@cvm:2")  # a new snapshot replaces the pointer read
    commit_synthetic(small, "one", [b"one"])
    assert export_repository(small, "s3://repository/small", endpoint_url=moto_endpoint).serial == 1
    commit_synthetic(small, "two", [b"two"])
    second = export_repository(small, "s3://repository/small", endpoint_url=moto_endpoint)
    assert (second.serial, second.objects_written, second.objects_skipped) == (2, 2, 2)
    assert [n.name for n in open_remote(f"{moto_endpoint}/repository/small", tmp_path / "c2").packages()] == \
        ["one", "two"]



def _exported(tree) -> tuple[dict, bytes]:
    """The pointer of the export tree and the snapshot JSON it names (checked against its sha256)."""
    pointer = json.loads((tree / "snapshot.json").read_text())
    body = zstandard.ZstdDecompressor().decompress((tree / pointer["snapshot"]).read_bytes())
    assert hashlib.sha256(body).hexdigest() == pointer["sha256"]
    return pointer, body


@pytest.mark.parametrize("skip_unchanged", [True, False])
def test_an_export_after_commits_reads_only_the_new_troves_and_writes_what_a_whole_read_gives(
        tmp_path, monkeypatch, skip_unchanged):
    """The snapshot made from the last one plus the troves committed since is byte for byte the
    one a whole read of the index gives; so are its delta and its object count; the old
    snapshot is not parsed, in a fresh process (no previous result) or not."""
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"one", b"shared"])
    tree = tmp_path / "tree"
    first = export_repository(repo, tree, skip_unchanged=skip_unchanged)
    before = snap.dump(repo.db)
    commit_synthetic(repo, "two", [b"two", b"shared"])  # "shared" is exported and counted already
    commit_synthetic(repo, "one", [b"one again"], source="s2")  # a rebuild: its input hash moves
    monkeypatch.setattr(snap, "parse", lambda *a, **k: pytest.fail("the old snapshot was parsed"))
    second = export_repository(repo, tree, skip_unchanged=skip_unchanged)
    pointer, body = _exported(tree)
    whole = snap.dump(repo.db)
    assert body == snap.encode(whole) and second.snapshot_written and second.serial == 2
    assert pointer["objects"] == len(repo.referenced_contents()) == 7
    assert (second.objects_written, second.objects_skipped) == (4, 3)  # two files, two build logs
    delta = json.loads(zstandard.ZstdDecompressor().decompress((tree / pointer["delta"]["snapshot"]).read_bytes()))
    assert delta == snap.make_delta(before, whole, first.digest)
    assert pointer["index_mark"]["troves"] == len(whole["troves"]) == second.troves
    commit_synthetic(repo, "three", [b"three"])  # and again, from this process's own last result
    (tree / pointer["snapshot"]).unlink()
    third = export_repository(repo, tree, skip_unchanged=skip_unchanged, previous=second)
    assert _exported(tree)[1] == snap.encode(snap.dump(repo.db)) and third.serial == 3 and third.delta_bytes > 0


def test_an_index_that_is_not_the_one_marked_is_read_whole(tmp_path):
    """A copy of the index that diverged (as many troves as the export marks, other ones), or an
    export whose last snapshot is gone: the index is read whole, the snapshot is still exact."""
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"one"])
    other = Repository(copy_repository(repo.path, tmp_path / "copy"), repo.label)
    commit_synthetic(repo, "two", [b"two"])
    tree = tmp_path / "tree"
    export_repository(repo, tree, skip_unchanged=True)
    commit_synthetic(other, "elsewhere", [b"elsewhere"])  # the same trove count and ids as the export's
    commit_synthetic(other, "more", [b"more"])
    assert len(snap.dump(other.db)["troves"]) > len(snap.dump(repo.db)["troves"])
    diverged = export_repository(other, tree, skip_unchanged=True)
    pointer, body = _exported(tree)
    assert body == snap.encode(snap.dump(other.db)) and "delta" not in pointer and diverged.serial == 2
    assert diverged.objects_written == 4 and pointer["objects"] == len(other.referenced_contents())
    for path in (tree / "snapshots").iterdir():  # the last snapshot gone: read whole, no delta
        path.unlink()
    commit_synthetic(other, "last", [b"last"])
    assert export_repository(other, tree, skip_unchanged=True).serial == 3
    pointer, body = _exported(tree)
    assert body == snap.encode(snap.dump(other.db)) and "delta" not in pointer


def test_a_snapshot_extended_from_a_body_that_is_not_canonical_is_refused(tmp_path):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"one"])
    with snap.reading(repo.db):
        dumped = snap.dump_since(repo.db, None)
    body = snap.encode(dumped.document())
    with snap.reading(repo.db):  # a mark that is not one, or not this index's: the whole index
        assert snap.dump_since(repo.db, {"last_id": "1", "troves": 1, "sha256": "x"}).base_troves == 0
        assert snap.dump_since(repo.db, {**dumped.mark, "sha256": "0" * 64}).base_troves == 0
        assert snap.dump_since(repo.db, dumped.mark).troves == []
    assert dumped.mark["troves"] == 2  # the package and its component
    for bad in (b"{}", body.replace(b'"troves":', b'"trove":'), b'{"build_logs":[],"format":"x","troves":[]}',
                body[:-1]):
        with pytest.raises(snap.BadSnapshot, match="not a canonical snapshot"):
            snap.base_troves_json(bad)
    assert snap.base_troves_json(body) == snap.encode(dumped.troves)
