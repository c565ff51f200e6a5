"""The lookaside cache against a real HTTP server on 127.0.0.1: fetch by sha256, bad
checksums, mirrors, a warm cache that needs no network, and a damaged cached copy that
is noticed when it is used and fetched again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appbuilder.core.errors import ChecksumMismatch, SourceError
from appbuilder.core.fileio import verify_file
from appbuilder.upstream.lookaside import Lookaside
from tests.servers import StaticServer


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    (root / "main").mkdir(parents=True)
    (root / "mirror-a").mkdir()
    (root / "mirror-b" / "pub").mkdir(parents=True)
    s = StaticServer(root)
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path):
    return Lookaside(tmp_path / "lookaside")


def publish(server: StaticServer, rel: str, data: bytes) -> str:
    path = server.directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def cache_files(cache: Lookaside) -> list[Path]:
    return sorted(p for p in cache.root.rglob("*") if p.is_file()) if cache.root.exists() else []


def test_fetch_by_sha256_stores_it_under_its_hash(server, cache):
    data = b"tarball bytes\n" * 1000
    digest = publish(server, "main/foo-1.0.tar.gz", data)
    got = cache.fetch(f"{server.url}/main/foo-1.0.tar.gz", digest)
    assert got == cache.root / digest[:2] / digest / "foo-1.0.tar.gz"
    assert got.read_bytes() == data
    assert cache.cached(digest) == got and cache.cached(digest.upper()) == got
    assert server.requests == ["/main/foo-1.0.tar.gz"]
    # a second fetch is a cache hit: no request
    assert cache.fetch(f"{server.url}/main/foo-1.0.tar.gz", digest.upper()) == got
    assert server.requests == ["/main/foo-1.0.tar.gz"]
    assert cache_files(cache) == [got]  # no temporary file left behind


def test_checksum_mismatch_names_both_and_leaves_nothing_in_the_cache(server, cache):
    actual = publish(server, "main/foo.tar.gz", b"what the server has")
    expected = hashlib.sha256(b"what the recipe pinned").hexdigest()
    with pytest.raises(ChecksumMismatch) as exc:
        cache.fetch(f"{server.url}/main/foo.tar.gz", expected)
    msg = str(exc.value)
    assert f"expected sha256 {expected}" in msg and f"got {actual}" in msg
    assert exc.value.expected == expected and exc.value.actual == actual
    assert cache_files(cache) == []
    assert cache.cached(expected) is None and cache.cached(actual) is None


def test_first_url_404_then_mirror_succeeds(server, cache):
    data = b"only on the mirror"
    digest = publish(server, "mirror-a/foo.tar.gz", data)
    got = cache.fetch(f"{server.url}/main/foo.tar.gz", digest, [f"{server.url}/mirror-a/foo.tar.gz"])
    assert got.read_bytes() == data and got.name == "foo.tar.gz"
    assert server.requests == ["/main/foo.tar.gz", "/mirror-a/foo.tar.gz"]


def test_mirror_scheme_expands_to_every_base(server, tmp_path):
    cache = Lookaside(tmp_path / "lookaside", {"gnu": [f"{server.url}/mirror-a/", f"{server.url}/mirror-b/pub"]})
    assert cache.expand("mirror://gnu/hello/hello-2.12.tar.gz") == [
        f"{server.url}/mirror-a/hello/hello-2.12.tar.gz", f"{server.url}/mirror-b/pub/hello/hello-2.12.tar.gz"]
    assert cache.expand("https://example.org/x") == ["https://example.org/x"]
    data = b"hello from the second mirror"
    digest = publish(server, "mirror-b/pub/hello/hello-2.12.tar.gz", data)
    got = cache.fetch("mirror://gnu/hello/hello-2.12.tar.gz", digest)
    assert got.read_bytes() == data and got.name == "hello-2.12.tar.gz"
    assert server.requests == ["/mirror-a/hello/hello-2.12.tar.gz", "/mirror-b/pub/hello/hello-2.12.tar.gz"]


def test_mirror_scheme_in_the_mirror_list(server, tmp_path):
    cache = Lookaside(tmp_path / "lookaside", {"m": [f"{server.url}/mirror-a"]})
    digest = publish(server, "mirror-a/x.bin", b"x")
    got = cache.fetch(f"{server.url}/main/x.bin", digest, ["mirror://m/x.bin"])
    assert got.read_bytes() == b"x"


def test_unknown_mirror_name(cache):
    with pytest.raises(SourceError, match="no mirror list named 'nosuch'"):
        cache.fetch("mirror://nosuch/x.tar.gz", "0" * 64)


def test_every_candidate_failing_lists_them_all(server, cache):
    digest = hashlib.sha256(b"nowhere").hexdigest()
    with pytest.raises(SourceError) as exc:
        cache.fetch(f"{server.url}/main/gone.tar.gz", digest, [f"{server.url}/mirror-a/gone.tar.gz"])
    msg = str(exc.value)
    assert msg.startswith("missing source: cannot fetch gone.tar.gz; tried:")
    lines = msg.lower().splitlines()
    assert f"  {server.url}/main/gone.tar.gz: file not found" in lines
    assert f"  {server.url}/mirror-a/gone.tar.gz: file not found" in lines
    assert cache_files(cache) == []


def test_mismatch_on_one_candidate_and_404_on_another(server, cache):
    publish(server, "mirror-a/foo.tar.gz", b"tampered")
    expected = hashlib.sha256(b"genuine").hexdigest()
    with pytest.raises(SourceError) as exc:
        cache.fetch(f"{server.url}/main/foo.tar.gz", expected, [f"{server.url}/mirror-a/foo.tar.gz"])
    msg = str(exc.value)
    assert msg.startswith(f"checksum mismatch for foo.tar.gz: expected sha256 {expected}")
    assert f"mirror-a/foo.tar.gz: sha256 {hashlib.sha256(b'tampered').hexdigest()}" in msg
    assert cache_files(cache) == []


def test_a_bad_mirror_does_not_stop_a_good_one(server, cache):
    data = b"genuine"
    digest = publish(server, "mirror-b/foo.tar.gz", data)
    publish(server, "mirror-a/foo.tar.gz", b"tampered")
    got = cache.fetch(f"{server.url}/main/foo.tar.gz", digest,
                      [f"{server.url}/mirror-a/foo.tar.gz", f"{server.url}/mirror-b/foo.tar.gz"])
    assert got.read_bytes() == data
    assert cache_files(cache) == [got]


def test_warm_cache_needs_no_network(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = StaticServer(root)
    data = b"fetched once"
    digest = publish(server, "foo.tar.gz", data)
    url = f"{server.url}/foo.tar.gz"
    cache = Lookaside(tmp_path / "lookaside")
    cache.fetch(url, digest)
    server.stop()
    # the server is gone: a cold cache cannot fetch, the warm one needs nothing
    cold = Lookaside(tmp_path / "cold")
    with pytest.raises(SourceError, match="missing source: cannot fetch foo.tar.gz"):
        cold.fetch(url, digest)
    assert Lookaside(tmp_path / "lookaside").fetch(url, digest).read_bytes() == data
    assert Lookaside(tmp_path / "lookaside").fetch("http://127.0.0.1:9/unreachable/foo.tar.gz", digest).read_bytes() == data


def test_add_local_file_and_verify_file(tmp_path, cache):
    src = tmp_path / "local.patch"
    src.write_bytes(b"--- a\n+++ b\n")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    verify_file(src, digest.upper(), what="local.patch")
    with pytest.raises(ChecksumMismatch, match=f"local.patch: expected sha256 {'1' * 64}, got {digest}"):
        verify_file(src, "1" * 64, what="local.patch")
    kept = cache.add(src, digest, "local.patch")
    assert kept.read_bytes() == src.read_bytes() and src.exists()
    assert cache.add(src, digest, "local.patch") == kept  # already there
    assert cache.fetch("https://unused.invalid/local.patch", digest) == kept


# ------------------------------------------------------------------ a damaged cache


def tamper(path: Path) -> None:
    """What a flipped bit on disk, or someone editing the cached file, does."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x20
    path.write_bytes(bytes(raw))


def test_a_tampered_cached_file_is_fetched_again(server, tmp_path):
    warnings: list[str] = []
    cache = Lookaside(tmp_path / "lookaside", warn=warnings.append)
    data = b"genuine tarball bytes\n" * 500
    digest = publish(server, "main/foo-1.0.tar.gz", data)
    url = f"{server.url}/main/foo-1.0.tar.gz"
    got = cache.fetch(url, digest)
    tamper(got)
    damaged = hashlib.sha256(got.read_bytes()).hexdigest()
    again = cache.fetch(url, digest)
    assert again == got and again.read_bytes() == data  # the cached copy is good again
    assert server.requests == ["/main/foo-1.0.tar.gz", "/main/foo-1.0.tar.gz"]
    (warning,) = warnings
    assert str(cache.entry_dir(digest)) in warning and "is damaged" in warning
    assert f"foo-1.0.tar.gz has sha256 {damaged}, not the pinned {digest}" in warning
    assert "fetching it again" in warning
    assert cache_files(cache) == [got]  # nothing of the damaged entry left behind
    # used again: checked again, sound, no request
    assert cache.fetch(url, digest) == got and len(server.requests) == 2 and len(warnings) == 1


def test_a_tampered_cached_file_names_both_problems_when_it_cannot_be_fetched_again(server, tmp_path):
    warnings: list[str] = []
    cache = Lookaside(tmp_path / "lookaside", warn=warnings.append)
    data = b"only fetched once"
    digest = publish(server, "main/bar.tar.gz", data)
    url = f"{server.url}/main/bar.tar.gz"
    got = cache.fetch(url, digest)
    tamper(got)
    damaged = hashlib.sha256(got.read_bytes()).hexdigest()
    (server.directory / "main/bar.tar.gz").unlink()  # gone upstream
    with pytest.raises(SourceError) as exc:
        cache.fetch(url, digest)
    msg = str(exc.value)
    assert msg.startswith(f"the cached copy of bar.tar.gz was damaged (bar.tar.gz has sha256 {damaged}, "
                          f"not the pinned {digest}) and removed; fetching it again failed: missing source")
    assert f"{url}: file not found" in msg.lower()
    assert cache.cached(digest) is None and not cache.entry_dir(digest).exists()
    assert len(warnings) == 1


def test_cached_checks_the_content_and_drops_a_damaged_entry(tmp_path, caplog):
    cache = Lookaside(tmp_path / "lookaside")  # warnings go to the log
    src = tmp_path / "local.patch"
    src.write_bytes(b"--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    kept = cache.add(src, digest, "local.patch")
    assert cache.cached(digest) == kept
    kept.write_bytes(b"--- a\n+++ b\n@@ -1 +1 @@\n-x\n+z\n")  # edited in the cache
    with caplog.at_level("WARNING", logger="appbuilder.upstream.lookaside"):
        assert cache.cached(digest) is None
    assert not cache.entry_dir(digest).exists()
    assert any(f"lookaside cache entry {cache.entry_dir(digest)} is damaged" in r.getMessage() for r in caplog.records)
