"""The cache of parsed indexes: plain data kept with marshal, other values pickled, a
damaged entry dropped (the index is parsed again), older entries of a source replaced."""

from __future__ import annotations

from dataclasses import dataclass

from appbuilder.upstream.indexbase import load_cached, store_cached


@dataclass
class Record:
    name: str


def test_plain_data_and_objects_round_trip(tmp_path):
    plain = ([("dash", "0.5", True, 3)], {"dash": [0]}, b"usr/bin/sh shells/dash\n")
    store_cached(tmp_path, "a" * 64, plain, prefix="deb-x")
    assert (tmp_path / f"{'a' * 64}.cache").read_bytes()[:1] == b"M"
    assert load_cached(tmp_path, "a" * 64) == plain
    store_cached(tmp_path, "b" * 64, [Record("toy")], prefix="rpm-x")
    assert (tmp_path / f"{'b' * 64}.cache").read_bytes()[:1] == b"P"
    assert load_cached(tmp_path, "b" * 64) == [Record("toy")]


def test_a_damaged_entry_is_dropped(tmp_path):
    store_cached(tmp_path, "c" * 64, {"k": (1, 2)}, prefix="deb-x")
    entry = tmp_path / f"{'c' * 64}.cache"
    for damage in (entry.read_bytes()[:9], b"Z" + entry.read_bytes()[1:], b""):
        entry.write_bytes(damage)
        assert load_cached(tmp_path, "c" * 64) is None
        assert not entry.exists()
        store_cached(tmp_path, "c" * 64, {"k": (1, 2)}, prefix="deb-x")


def test_a_new_entry_of_a_source_replaces_the_old(tmp_path):
    store_cached(tmp_path, "d" * 64, [1], prefix="deb-x")
    store_cached(tmp_path, "e" * 64, [2], prefix="deb-y")
    store_cached(tmp_path, "f" * 64, [3], prefix="deb-x")
    assert sorted(p.name for p in tmp_path.glob("*.cache")) == [f"{'e' * 64}.cache", f"{'f' * 64}.cache"]
