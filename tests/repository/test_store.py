"""The content store: put, read, dedup, compression, verification, leftovers."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from appbuilder.errors import RepositoryError
from appbuilder.fileio import sha256_file
from appbuilder.repository.store import ContentStore


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store")


def object_files(store: ContentStore) -> list:
    return sorted(p for p in store.objects.rglob("*") if p.is_file())


def test_put_bytes_and_read_back(store):
    data = b"hello, content store\n"
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.has(digest)
    assert store.read(digest) == data
    assert store.path_of(digest) == store.objects / digest[:2] / f"{digest}.zst"
    assert list(store.iter_digests()) == [digest]


def test_put_file_and_read_back(store, tmp_path):
    src = tmp_path / "blob"
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    src.write_bytes(data)
    digest = store.put_file(src)
    assert digest == hashlib.sha256(data).hexdigest() == sha256_file(src)
    assert store.read(digest) == data
    with store.open(digest) as f:
        assert f.read(10) == data[:10]


def test_empty_content(store):
    digest = store.put_bytes(b"")
    assert digest == hashlib.sha256(b"").hexdigest()
    assert store.read(digest) == b""


def test_same_content_is_stored_once(store, tmp_path):
    data = b"same bytes " * 100
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(data)
    b.write_bytes(data)
    d1 = store.put_file(a)
    first = object_files(store)
    mtime = store.path_of(d1).stat().st_mtime_ns
    written = store.written
    d2 = store.put_file(b)
    d3 = store.put_bytes(data)
    assert d1 == d2 == d3
    assert object_files(store) == first and len(first) == 1
    assert store.written == written  # nothing compressed or written again
    assert store.path_of(d1).stat().st_mtime_ns == mtime
    other = store.put_bytes(data + b"!")
    assert other != d1 and len(object_files(store)) == 2


def test_compressible_data_is_stored_smaller(store):
    data = b"".join(b"line %d of a very repetitive text file\n" % (i % 50) for i in range(20000))
    digest = store.put_bytes(data)
    stored = store.path_of(digest).stat().st_size
    assert stored < len(data) / 10
    assert store.path_of(digest).read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    assert store.written == stored
    assert store.read(digest) == data


def test_put_file_with_wrong_digest_is_refused_and_leaves_nothing(store, tmp_path):
    src = tmp_path / "x"
    src.write_bytes(b"actual content")
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(RepositoryError, match="content changed while it was stored"):
        store.put_file(src, wrong)
    assert not store.has(wrong)
    assert object_files(store) == []
    assert list(store.tmp.iterdir()) == []


def test_missing_content_is_a_clear_error(store, tmp_path):
    digest = "0" * 64
    with pytest.raises(RepositoryError, match=f"content {digest} is missing"):
        store.read(digest)
    with pytest.raises(RepositoryError, match="missing"):
        store.copy_to(digest, tmp_path / "out")


def test_copy_to_writes_the_content(store, tmp_path):
    data = os.urandom(100_000)
    digest = store.put_bytes(data)
    out = tmp_path / "out"
    store.copy_to(digest, out, verify=True)
    assert out.read_bytes() == data


def _corrupt(store: ContentStore, digest: str, replacement: bytes) -> None:
    """Replace an object file with a valid zstd frame of other content."""
    import zstandard

    path = store.path_of(digest)
    path.write_bytes(zstandard.ZstdCompressor().compress(replacement))


def test_copy_to_verify_detects_corruption(store, tmp_path):
    data = b"the genuine content\n" * 1000
    digest = store.put_bytes(data)
    _corrupt(store, digest, b"X" + data[1:])
    out = tmp_path / "out"
    with pytest.raises(RepositoryError, match=f"stored content {digest} is corrupt"):
        store.copy_to(digest, out, verify=True)
    # without verification the damage goes unnoticed: that is what verify is for
    store.copy_to(digest, tmp_path / "unverified")
    assert (tmp_path / "unverified").read_bytes() != data


def test_damaged_object_bytes_fail_to_read(store, tmp_path):
    import zstandard

    data = os.urandom(50_000)
    digest = store.put_bytes(data)
    path = store.path_of(digest)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    raw = raw[: len(raw) - 100]  # and truncated
    path.write_bytes(bytes(raw))
    with pytest.raises((RepositoryError, zstandard.ZstdError)):
        store.copy_to(digest, tmp_path / "out", verify=True)


def test_sweep_tmp_removes_only_old_leftovers(store):
    old = store.tmp / "obj-old"
    new = store.tmp / "obj-new"
    old.write_bytes(b"half written")
    new.write_bytes(b"being written right now")
    past = time.time() - 7200
    os.utime(old, (past, past))
    store.sweep_tmp(time.time() - 3600)
    assert not old.exists()
    assert new.exists()
    store.sweep_tmp(time.time() + 1)
    assert not new.exists()


def test_remove_returns_size_and_forgets(store):
    digest = store.put_bytes(b"to be removed" * 10)
    size = store.path_of(digest).stat().st_size
    assert store.remove(digest) == size
    assert not store.has(digest)
    assert list(store.iter_digests()) == []
