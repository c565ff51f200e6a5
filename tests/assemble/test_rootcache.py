"""The cache of root file systems (appbuilder.assemble.rootcache): records and partitions by
key, verified when read back, written by rename, the least recently used dropped; and a key
that changes with every input of the partition."""

from __future__ import annotations

import os
import time

from appbuilder.assemble.rootcache import CachedRoot, RootCache, tree_key
from appbuilder.repository.trove import GROUP, FileEntry, Trove
from appbuilder.repository.versions import Flavor, Version


def partition(tmp_path, name: str, size: int = 1 << 20, fill: bytes = b"ext4") -> object:
    path = tmp_path / name
    with open(path, "wb") as f:
        f.seek(4096)
        f.write(fill * 100)
        f.truncate(size)
    return path


def test_a_kept_partition_is_found_verified_and_a_damaged_one_dropped(tmp_path):
    cache = RootCache(tmp_path / "rootfs", keep=3)
    assert cache.lookup("k1") is None and cache.partition("k1", 1 << 20) is None
    made = partition(tmp_path, "root.ext4")
    cache.store("k1", CachedRoot(5 << 20, 1234), made)
    assert not made.exists()  # moved in
    assert cache.lookup("k1") == CachedRoot(5 << 20, 1234)
    kept = cache.partition("k1", 1 << 20)
    assert kept is not None and kept.read_bytes()[4096:4100] == b"ext4"
    assert cache.partition("k1", 2 << 20) is None  # another size: not kept
    with open(kept, "r+b") as f:
        f.seek(4096)
        f.write(b"EXT4")
    said = []
    assert cache.partition("k1", 1 << 20, say=said.append) is None
    assert not kept.exists() and "is damaged" in said[0]


def test_a_record_that_is_not_one_is_a_miss(tmp_path):
    cache = RootCache(tmp_path, keep=3)
    (tmp_path / "k.json").write_text("{not json")
    assert cache.lookup("k") is None
    (tmp_path / "k.json").write_text('{"format": "appbuild rootfs cache 1", "root_minimum": "x"}')
    assert cache.lookup("k") is None


def test_only_the_newest_partitions_are_kept_and_zero_keeps_none(tmp_path):
    cache = RootCache(tmp_path / "c", keep=10)
    for i in range(4):
        cache.store(f"k{i}", CachedRoot(1, 1), partition(tmp_path, f"p{i}", fill=bytes([65 + i])))
        used = time.time() - 100 + i
        os.utime(tmp_path / "c" / f"k{i}-{1 << 20}.ext4", (used, used))
    cache.keep = 2
    cache.prune()
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        f"k2-{1 << 20}.ext4", "k2.json", f"k3-{1 << 20}.ext4", "k3.json"]
    off = RootCache(tmp_path / "off", keep=0)
    off.store("k", CachedRoot(1, 1), partition(tmp_path, "p"))
    assert off.lookup("k") is None and not (tmp_path / "off").exists()


def test_the_key_changes_with_every_input():
    v = Version.parse("cernvm@cvm:2/1.0-1-1")
    group = Trove("group-x", v, Flavor("x86_64"), kind=GROUP, info={"hostname": "a"})
    files = [FileEntry("/bin/sh", "file", 0o755, size=3, sha256="a" * 64)]
    member = Trove("sh:runtime", v, Flavor("x86_64"), files=files)
    base = dict(skip=set(), merged_usr=True, source_date_epoch=1, scripts=True, hostname="a", extra={})
    key = tree_key(group, [member], [("/etc/hostname", b"a\n", 0o644)], **base)
    assert key == tree_key(group, [member], [("/etc/hostname", b"a\n", 0o644)], **base)
    changed = [
        tree_key(group, [member], [("/etc/hostname", b"b\n", 0o644)], **base),
        tree_key(group, [member], [("/etc/hostname", b"a\n", 0o600)], **base),
        tree_key(group, [Trove("sh:runtime", v, Flavor("x86_64"), files=[
            FileEntry("/bin/sh", "file", 0o755, size=3, sha256="b" * 64)])], [("/etc/hostname", b"a\n", 0o644)], **base),
        tree_key(group, [member], [("/etc/hostname", b"a\n", 0o644)], **{**base, "skip": {"/x"}}),
        tree_key(group, [member], [("/etc/hostname", b"a\n", 0o644)], **{**base, "merged_usr": False}),
        tree_key(group, [member], [("/etc/hostname", b"a\n", 0o644)], **{**base, "source_date_epoch": 2}),
        tree_key(group, [member], [("/etc/hostname", b"a\n", 0o644)], **{**base, "scripts": False}),
        tree_key(group, [member], [("/etc/hostname", b"a\n", 0o644)], **{**base, "hostname": "b"}),
        tree_key(Trove("group-x", v, Flavor("x86_64"), kind=GROUP, info={"hostname": "b"}), [member],
                 [("/etc/hostname", b"a\n", 0o644)], **base),
    ]
    assert len({key, *changed}) == len(changed) + 1
