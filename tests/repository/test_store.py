"""The content store: put, read, dedup, compression, leftovers, and every read verified
(flipped bytes, truncated, garbage and missing objects)."""

from __future__ import annotations

import hashlib
import os
import random
import time

import pytest
import zstandard

from appbuilder.core.errors import RepositoryError
from appbuilder.core.fileio import sha256_file
from appbuilder.repository.store import ContentStore, DamagedObject, MissingObject


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
    with pytest.raises(MissingObject, match=f"content {digest} is missing") as exc:
        store.read(digest)
    assert str(store.path_of(digest)) in str(exc.value) and "appbuild verify" in str(exc.value)
    with pytest.raises(RepositoryError, match="missing"):
        store.copy_to(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(MissingObject):
        store.check(digest)


def test_copy_to_writes_the_content(store, tmp_path):
    data = os.urandom(100_000)
    digest = store.put_bytes(data)
    out = tmp_path / "out"
    store.copy_to(digest, out)
    assert out.read_bytes() == data
    assert store.check(digest) == len(data)


@pytest.mark.parametrize("size", [0, 100_000, 3 << 20], ids=["empty", "small", "streamed"])
def test_write_new_makes_the_file_with_its_mode(store, tmp_path, size):
    data = random.Random(size).randbytes(size)
    digest = store.put_bytes(data)
    out = tmp_path / "out"
    st = store.write_new(digest, out, 0o4755)
    assert out.read_bytes() == data and oct(st.st_mode & 0o7777) == "0o4755"
    assert (st.st_ino, st.st_size, st.st_ctime_ns) == (out.stat().st_ino, size, out.stat().st_ctime_ns)
    (tmp_path / "elsewhere").write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):  # never through a symlink, never over a file
        store.write_new(digest, link, 0o644)
    assert (tmp_path / "elsewhere").read_bytes() == b"keep"


def test_new_objects_carry_a_zstd_frame_checksum(store):
    digest = store.put_bytes(b"checksummed\n" * 100)
    header = store.path_of(digest).read_bytes()[:18]
    params = zstandard.get_frame_parameters(header)
    assert params.has_checksum and params.content_size == 1200


def _write_old_object(store: ContentStore, data: bytes, **params) -> str:
    """An object as appbuild wrote them before frame checksums (or one without a content size)."""
    digest = hashlib.sha256(data).hexdigest()
    path = store.path_of(digest)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor(level=3, **params).compress(data))
    return digest


@pytest.mark.parametrize("params", [{"write_content_size": True}, {"write_content_size": False}])
def test_objects_without_a_frame_checksum_still_read(store, tmp_path, params):
    data = random.Random(7).randbytes(300_000)
    digest = _write_old_object(store, data, write_checksum=False, **params)
    assert not zstandard.get_frame_parameters(store.path_of(digest).read_bytes()[:18]).has_checksum
    assert store.read(digest) == data
    store.copy_to(digest, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data


def _flip(path, offset: int | None = None) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(raw))


def _read_all(store: ContentStore, digest: str, tmp_path) -> None:
    with store.open(digest) as f:
        while f.read(4096):
            pass


READERS = {
    "read": lambda store, digest, tmp_path: store.read(digest),
    "copy_to": lambda store, digest, tmp_path: store.copy_to(digest, tmp_path / "out"),
    "open": _read_all,
    "check": lambda store, digest, tmp_path: store.check(digest),
    "write_new": lambda store, digest, tmp_path: store.write_new(digest, tmp_path / "out", 0o644),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("checksum", [True, False], ids=["frame-checksum", "old-object"])
def test_a_flipped_byte_is_caught_by_every_read(store, tmp_path, reader, checksum):
    # incompressible data: zstd stores it as raw blocks, so without a frame checksum only
    # the sha256 can notice a flipped bit (zstd itself decodes the block happily)
    data = random.Random(1).randbytes(400_000)
    digest = _write_old_object(store, data, write_checksum=checksum, write_content_size=True)
    _flip(store.path_of(digest))
    with pytest.raises(DamagedObject) as exc:
        READERS[reader](store, digest, tmp_path)
    msg = str(exc.value)
    assert f"stored object {digest} is damaged" in msg
    assert str(store.path_of(digest)) in msg and "appbuild verify" in msg
    assert ("zstd: Restored data doesn't match checksum" if checksum else "hashes to") in msg
    assert exc.value.digest == digest and exc.value.path == store.path_of(digest)
    assert isinstance(exc.value, RepositoryError)
    assert not (tmp_path / "out").exists()  # copy_to leaves no damaged file behind


def test_other_content_under_a_name_is_caught(store, tmp_path):
    data = b"the genuine content\n" * 1000
    digest = store.put_bytes(data)
    # a sound zstd frame (with its own checksum) of other content of the same length
    store.path_of(digest).write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(b"X" + data[1:]))
    out = tmp_path / "out"
    out.write_bytes(b"what was there before")
    with pytest.raises(DamagedObject, match=f"its content hashes to {hashlib.sha256(b'X' + data[1:]).hexdigest()}"):
        store.copy_to(digest, out)
    assert not out.exists()


@pytest.mark.parametrize("reader", READERS)
def test_a_truncated_object_is_caught(store, tmp_path, reader):
    data = random.Random(2).randbytes(500_000)
    digest = store.put_bytes(data)
    path = store.path_of(digest)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DamagedObject, match=r"it is truncated: it holds \d+ of 500000 bytes") as exc:
        READERS[reader](store, digest, tmp_path)
    assert str(path) in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_truncation_and_a_flipped_byte_together(store, tmp_path):
    data = os.urandom(50_000)
    digest = store.put_bytes(data)
    path = store.path_of(digest)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw[: len(raw) - 100]))
    with pytest.raises(DamagedObject, match=f"stored object {digest} is damaged"):
        store.copy_to(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, problem", [
    (b"this is not zstd at all, just text that someone wrote here\n" * 20, "it is not zstd-compressed data"),
    (b"", "the object file is empty"),
])
@pytest.mark.parametrize("reader", READERS)
def test_a_garbage_or_empty_object_is_caught(store, tmp_path, reader, content, problem):
    digest = store.put_bytes(b"real content")
    store.path_of(digest).write_bytes(content)
    with pytest.raises(DamagedObject, match=problem):
        READERS[reader](store, digest, tmp_path)
    assert not (tmp_path / "out").exists()


def test_damage_in_a_zstd_block_header_is_a_clear_error(store, tmp_path):
    data = b"".join(b"line %d of a repetitive text\n" % (i % 300) for i in range(40000))
    digest = store.put_bytes(data)
    _flip(store.path_of(digest), offset=8)  # inside the frame and first block headers
    with pytest.raises(DamagedObject, match=f"stored object {digest} is damaged"):
        store.read(digest)


def test_a_partial_read_is_fine_and_the_end_is_checked(store):
    data = random.Random(3).randbytes(200_000)
    digest = _write_old_object(store, data, write_checksum=False, write_content_size=True)
    with store.open(digest) as f:
        assert f.read(10) == data[:10]  # a prefix: nothing to check yet
    _flip(store.path_of(digest))
    with store.open(digest) as f:
        assert f.read(10) == data[:10]
        with pytest.raises(DamagedObject, match="hashes to"):
            f.read()


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
