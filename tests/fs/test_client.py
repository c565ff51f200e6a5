"""The real cvmfs2 client (cooked by appbuild from recipes/cvmfs-client, run from its
materialized runtime closure) mounted with FUSE on this host, against a published
repository on a local HTTP server: reads, listings, symlinks, owners and devices,
verification (the per-repository key whitelist, expiry, replays), tags (-o tag=,
--tags, --diff), caching, quota, offline mode, proxies and servers with failover, and
bad input. Every refusal is checked for the reason the client prints."""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from appbuilder.core.fileio import write_atomic as write_atomically
from appbuilder.fs import keys
from appbuilder.fs.catalog import build as build_catalog
from appbuilder.fs.manifest import MANIFEST_NAME, Manifest, parse, render
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectStore
from appbuilder.fs.publish import publish
from appbuilder.fs.tags import TAGS_NAME, TagList
from appbuilder.fs.tags import parse as parse_tags
from appbuilder.fs.tags import render as render_tags
from tests.fs.conftest import REPO, Mount, make_tree
from tests.servers import ForwardProxy, StaticServer, closed_port

pytestmark = pytest.mark.slow


def catalog_of(setup):
    from appbuilder.fs.catalog import Catalog

    m = parse((setup.repo_dir / MANIFEST_NAME).read_bytes()).manifest
    return m, Catalog(ObjectStore(setup.repo_dir).get(m.catalog, CATALOG_SUFFIX))


def object_path(setup, path: str):
    return ObjectStore(setup.repo_dir).path(catalog_of(setup)[1].lookup(path).hash)


def tamper(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def drop_page_cache(path) -> None:
    """Forget the kernel's cached pages of one file, so reads reach cvmfs2 again."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_the_closure_is_the_client_and_the_libraries_its_sonames_need(cvmfs_client):
    # busybox provides /bin/sh for mount.cvmfs; the rest are the client's sonames
    assert cvmfs_client.members == ["busybox:runtime", "cvmfs-client:config", "cvmfs-client:runtime", "libc6:deb",
                                    "libfuse3-3:deb", "libsodium23:deb", "libsqlite3-0:deb", "zlib1g:deb"]
    version = subprocess.run(cvmfs_client.argv("--version"), capture_output=True, text=True)
    assert version.returncode == 0 and "cvmfs2 (appbuild)" in version.stdout


def test_reads_listings_symlinks_and_attributes_come_from_the_repository(setup):
    m = setup.mount()
    mnt = m.mountpoint
    assert sorted(os.listdir(mnt)) == ["README", "bin", "current", "lib", "share"]
    assert (mnt / "README").read_text() == "the release\n"
    assert (mnt / "lib/data.bin").read_bytes() == bytes(range(256)) * 4096
    assert (mnt / "share/doc/empty").read_bytes() == b""
    assert os.readlink(mnt / "current") == "bin/run.sh" and (mnt / "current").read_text().startswith("#!/bin/sh")
    assert sorted(os.listdir(mnt / "share/up")) == ["run.sh"]
    st = (mnt / "bin/run.sh").stat()
    src = (setup.source / "bin/run.sh").stat()
    assert st.st_size == src.st_size and int(st.st_mtime) == int(src.st_mtime)
    assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(src.st_mode) and st.st_uid == 0  # as published (a ro mount)
    assert os.getxattr(mnt, "user.revision") == b"1" and os.getxattr(mnt, "user.fqrn") == REPO.encode()
    assert os.getxattr(mnt / "README", "user.hash").decode() == catalog_of(setup)[1].lookup("/README").hash
    assert os.getxattr(mnt, "user.host").decode() == f"{setup.server.url}/{REPO}"
    with pytest.raises(OSError) as exc:
        open(mnt / "README", "w")
    assert exc.value.errno in (errno.EROFS, errno.EACCES)
    with pytest.raises(FileNotFoundError):
        (mnt / "nothing").stat()
    assert os.statvfs(mnt).f_files == 11  # entries in the catalog, the root included
    # objects are fetched when opened, not before
    fetched = [r for r in setup.server.requests if "/data/" in r and not r.endswith("C")]
    assert len(fetched) == 4  # README, data.bin, empty, run.sh (read through the link)


def test_a_hash_mismatch_is_refused_evicted_and_the_next_server_tried(setup):
    mirror_dir = setup.tmp / "mirror"
    shutil.copytree(setup.out, mirror_dir)  # a second server with the same objects
    readme = catalog_of(setup)[1].lookup("/README").hash
    data = catalog_of(setup)[1].lookup("/lib/data.bin").hash
    tamper(ObjectStore(setup.repo_dir).path(readme))  # bad on the first server only
    tamper(ObjectStore(setup.repo_dir).path(data))  # bad on both
    tamper(ObjectStore(mirror_dir / REPO).path(data))
    mirror = StaticServer(mirror_dir)
    try:
        config = setup.configure(servers=f"{setup.server.url}/@fqrn@;{mirror.url}/@fqrn@")
        m = setup.mount(config)
        assert (m.mountpoint / "README").read_text() == "the release\n"
        log = setup.log()
        assert f"hash mismatch: the object {readme} arrived with hash" in log and "switched to server" in log
        with pytest.raises(OSError) as exc:
            (m.mountpoint / "lib/data.bin").read_bytes()
        assert exc.value.errno == errno.EIO
        assert data not in setup.cached_objects() and readme in setup.cached_objects()
        assert not list((setup.tmp / "cache" / REPO / "txn").iterdir())  # the bad bytes are gone
    finally:
        mirror.stop()


def test_bad_signatures_unknown_keys_and_other_repositories_refuse_the_mount(setup):
    path = setup.repo_dir / MANIFEST_NAME
    original = path.read_bytes()
    path.write_bytes(original.replace(b"\nS1\n", b"\nS7\n"))
    bad = setup.mount(expect_failure=True)
    assert bad.proc.returncode == 1 and "bad signature" in bad.stderr and "refusing to mount" in bad.stderr

    other = keys.generate("other.example.org", setup.tmp / "other")
    path.write_bytes(render(parse(original).manifest, keys.load_private(other.private_path)))
    unknown = setup.mount(expect_failure=True, name="mnt2")
    assert f"unknown key {other.key_id}" in unknown.stderr and setup.keypair.key_id in unknown.stderr

    m = parse(original).manifest
    renamed = Manifest(**{**m.__dict__, "repository": "else.example.org"})
    path.write_bytes(render(renamed, keys.load_private(setup.keypair.private_path)))
    wrong = setup.mount(expect_failure=True, name="mnt3")
    assert "for repository 'else.example.org'" in wrong.stderr
    assert not any(mt.mounted() for mt in setup.mounts)


def test_a_corrupt_catalog_refuses_the_mount_and_a_damaged_cached_one_is_fetched_again(setup):
    m, _ = catalog_of(setup)
    store = ObjectStore(setup.repo_dir)
    catalog_object = store.path(m.catalog, CATALOG_SUFFIX)
    saved = catalog_object.read_bytes()
    tamper(catalog_object)
    refused = setup.mount(expect_failure=True)
    assert "cannot fetch the catalog" in refused.stderr and "hash mismatch" in refused.stderr
    catalog_object.write_bytes(saved)

    # correctly signed and hashed, but not a catalog: the publisher wrote garbage
    garbage = store.put(b"SQLite format 3\x00" + os.urandom(4000), CATALOG_SUFFIX)
    later = int(time.time()) + 3600
    write_atomically(setup.repo_dir / MANIFEST_NAME, render(
        Manifest(garbage.digest, garbage.compressed_size, 2, REPO, 1, expires=later),
        keys.load_private(setup.keypair.private_path)))
    corrupt = setup.mount(expect_failure=True, name="mnt2")
    assert "catalog" in corrupt.stderr and ("corrupt" in corrupt.stderr or "not a database" in corrupt.stderr)

    # a catalog of the wrong schema
    wrong = store.put(build_catalog([], {"repository": REPO}).replace(b"schema", b"schemX"), CATALOG_SUFFIX)
    write_atomically(setup.repo_dir / MANIFEST_NAME, render(
        Manifest(wrong.digest, wrong.compressed_size, 3, REPO, 1, expires=later),
        keys.load_private(setup.keypair.private_path)))
    assert "catalog" in setup.mount(expect_failure=True, name="mnt3").stderr

    # a good revision again; its cached catalog is damaged on disk: fetched again
    publish(setup.source, REPO, setup.out, setup.keypair.private_path)
    first = setup.mount(name="mnt4")
    assert (first.mountpoint / "README").read_text() == "the release\n"
    first.stop()
    cached = next((setup.tmp / "cache" / REPO / "catalogs").glob("*.db"))
    cached.write_bytes(cached.read_bytes()[:1000] + b"\x00" * 3000)
    again = setup.mount(name="mnt5")
    assert (again.mountpoint / "README").read_text() == "the release\n"
    assert "cached catalog" in setup.log() and "damaged" in setup.log()


def test_the_cache_quota_evicts_the_least_recently_used_and_a_full_cache_refuses(tmp_path, setup):
    files = {f"f{i}": os.urandom(300 * 1024) for i in range(5)}
    make_tree(setup.source / "big", files)
    publish(setup.source, REPO, setup.out, setup.keypair.private_path)
    m = setup.mount(setup.configure(quota_mb=1))
    hashes = {name: catalog_of(setup)[1].lookup(f"/big/{name}").hash for name in files}
    for name in ("f0", "f1", "f2", "f3", "f4"):
        assert (m.mountpoint / "big" / name).read_bytes() == files[name]
    cached = setup.cached_objects()
    assert {hashes["f2"], hashes["f3"], hashes["f4"]} <= cached
    assert hashes["f0"] not in cached and hashes["f1"] not in cached
    used = sum(p.stat().st_size for p in (setup.tmp / "cache" / REPO).rglob("*") if p.is_file() and p.name != "lock")
    assert used <= 1 << 20
    # the least recently used goes first: f2 is read again, so f3 is evicted for f0
    (m.mountpoint / "big/f2").read_bytes()
    (m.mountpoint / "big/f0").read_bytes()
    assert hashes["f3"] not in setup.cached_objects() and hashes["f2"] in setup.cached_objects()
    # open files are never evicted: with three held open there is no room for a fourth
    held = [open(m.mountpoint / "big" / n, "rb") for n in ("f0", "f2", "f4")]
    try:
        with pytest.raises(OSError) as exc:
            open(m.mountpoint / "big/f1", "rb")
        assert exc.value.errno == errno.ENOSPC
        assert "the cache is full (quota): " in setup.log() and "the disk is full" not in setup.log()
    finally:
        for f in held:
            f.close()
    assert (m.mountpoint / "big/f1").read_bytes() == files["f1"]  # room again once they are closed


def test_a_file_larger_than_the_quota_is_refused(setup):
    make_tree(setup.source, {"huge": os.urandom(3 << 20)})
    publish(setup.source, REPO, setup.out, setup.keypair.private_path)
    m = setup.mount(setup.configure(quota_mb=2))
    with pytest.raises(OSError) as exc:
        (m.mountpoint / "huge").read_bytes()
    assert exc.value.errno == errno.ENOSPC and "the cache is full (quota): 3 MB do not fit in a quota of 2 MB" in setup.log()
    assert (m.mountpoint / "README").read_text() == "the release\n"


def test_the_quota_holds_while_the_disk_has_room_and_the_disk_limits_it_beyond(setup):
    """The cache's share of its file system: a quota the disk can give is the limit (df on
    the mount shows it); a quota larger than the disk's free space is reported at mount with
    the effective limit, which df shows instead (the real free space of the tests' disk)."""
    m = setup.mount(setup.configure(quota_mb=100))
    cache = re.escape(str(setup.tmp / "cache" / REPO))
    assert re.search(rf"cache {cache}: 0 MB in use, quota 100 MB, the file system has \d+ MB free", setup.log())
    vfs = os.statvfs(m.mountpoint)
    assert vfs.f_blocks * vfs.f_frsize == 100 << 20
    m.stop()

    free_mb = shutil.disk_usage(setup.tmp).free >> 20
    quota = free_mb * 4 + 1000  # more than this disk can give
    m = setup.mount(setup.configure(quota_mb=quota, name="big-quota"), name="mnt2")
    said = re.search(rf"warning: cache {cache}: 0 MB in use; the quota \(CVMFS_QUOTA_LIMIT\) is {quota} MB, but the "
                     r"file system has only (\d+) MB free: the effective limit is (\d+) MB until the disk has room",
                     setup.log())
    assert said, setup.log()
    free, effective = int(said.group(1)), int(said.group(2))
    slack = max(512, free // 50)  # others write to this disk meanwhile
    assert abs(free - free_mb) < slack and free - 2 <= effective <= free
    vfs = os.statvfs(m.mountpoint)
    assert abs((vfs.f_blocks * vfs.f_frsize >> 20) - effective) < slack
    assert (m.mountpoint / "README").read_text() == "the release\n"
    assert "the disk is full" not in setup.log() and "the cache is full" not in setup.log()


def test_offline_everything_cached_keeps_working_and_a_remount_uses_the_cache(setup):
    m = setup.mount()
    assert (m.mountpoint / "README").read_text() == "the release\n"
    setup.server.stop()
    drop_page_cache(m.mountpoint / "README")
    assert (m.mountpoint / "README").read_text() == "the release\n"
    assert sorted(os.listdir(m.mountpoint / "bin")) == ["run.sh"]
    with pytest.raises(OSError) as exc:
        (m.mountpoint / "lib/data.bin").read_bytes()  # never fetched
    assert exc.value.errno == errno.EIO
    m.stop()
    again = setup.mount(name="mnt2")
    assert (again.mountpoint / "README").read_text() == "the release\n"
    assert "mounting revision 1 from the cache (offline)" in setup.log()
    assert os.getxattr(again.mountpoint, "user.host") == b"offline"


def test_proxies_fail_over_within_and_across_groups_and_a_failed_proxy_is_skipped(setup):
    proxy = ForwardProxy(setup.server.url)
    dead = closed_port()
    try:
        config = setup.configure(proxy=f"http://127.0.0.1:{dead};http://127.0.0.1:{proxy.port}|http://127.0.0.1:{dead}")
        m = setup.mount(config)
        assert (m.mountpoint / "README").read_text() == "the release\n"
        assert (m.mountpoint / "lib/data.bin").read_bytes()[:4] == bytes(range(4))
        assert any(r.endswith("/.cvmfspublished") for r in proxy.requests)
        assert sum("/data/" in r for r in proxy.requests) >= 3  # catalog, README, data.bin
        assert os.getxattr(m.mountpoint, "user.proxy").decode() == f"http://127.0.0.1:{proxy.port}"
        log = setup.log()
        assert f"proxy http://127.0.0.1:{dead} failed; skipping it" in log
        # the dead proxy is tried once, then skipped: later downloads go straight to the live one
        assert log.count(f"proxy http://127.0.0.1:{dead}]") <= 2
    finally:
        proxy.stop()


def test_a_dead_proxy_group_falls_back_to_direct(setup):
    config = setup.configure(proxy=f"http://127.0.0.1:{closed_port()};DIRECT")
    m = setup.mount(config)
    assert (m.mountpoint / "README").read_text() == "the release\n"
    assert os.getxattr(m.mountpoint, "user.proxy") == b"DIRECT"


def test_a_new_revision_is_seen_by_the_next_mount_and_a_replayed_older_one_is_refused(setup):
    m = setup.mount()
    assert (m.mountpoint / "README").read_text() == "the release\n"
    m.stop()
    old_manifest = (setup.repo_dir / MANIFEST_NAME).read_bytes()
    (setup.source / "README").write_text("the next release\n")
    publish(setup.source, REPO, setup.out, setup.keypair.private_path)
    newer = setup.mount(name="mnt2")
    assert (newer.mountpoint / "README").read_text() == "the next release\n"
    assert os.getxattr(newer.mountpoint, "user.revision") == b"2"
    newer.stop()
    new_manifest = (setup.repo_dir / MANIFEST_NAME).read_bytes()
    # a server (or a stale proxy, or a man in the middle) that offers revision 1 again: a
    # replay, refused; the client keeps revision 2 from its cache, offline, and says so
    (setup.repo_dir / MANIFEST_NAME).write_bytes(old_manifest)
    kept = setup.mount(name="mnt3")
    assert os.getxattr(kept.mountpoint, "user.revision") == b"2"
    assert os.getxattr(kept.mountpoint, "user.host") == b"offline"
    assert (kept.mountpoint / "README").read_text() == "the next release\n"
    kept.stop()  # (its stderr is read once it has exited)
    assert re.search(r"replay: the manifest has revision 1 signed \S+Z, older than the cached verified copy "
                     r"\(revision 2 signed \S+Z\)", kept.stderr), kept.stderr
    assert "mounting revision 2 from the cache (offline)" in kept.stderr
    # revision 2 again, but signed before the copy seen: an old signature, a replay too
    m2 = parse(new_manifest).manifest
    earlier = Manifest(**{**m2.__dict__, "timestamp": m2.timestamp - 100})
    (setup.repo_dir / MANIFEST_NAME).write_bytes(render(earlier, keys.load_private(setup.keypair.private_path)))
    again = setup.mount(name="mnt4")
    assert os.getxattr(again.mountpoint, "user.host") == b"offline"
    again.stop()
    assert "replay: the manifest has revision 2 signed" in again.stderr
    assert "replay: the manifest" in setup.log()  # in the log too


def test_a_configuration_without_servers_or_keys_is_refused(setup):
    config = setup.configure()
    (config / "config.d" / f"{REPO}.conf").write_text("# nothing\n")
    m = setup.mount(config, expect_failure=True)
    assert "CVMFS_SERVER_URL is not set" in m.stderr
    empty_keys = setup.tmp / "nokeys"
    empty_keys.mkdir()
    m = setup.mount(setup.configure(keys_dir=empty_keys, name="cfg2"), expect_failure=True, name="mnt2")
    assert "no public keys" in m.stderr
    m = setup.mount(setup.configure(servers=f"http://127.0.0.1:{closed_port()}/@fqrn@", name="cfg3"),
                    expect_failure=True, name="mnt3")
    assert "no server can be reached" in m.stderr and "no cached manifest" in m.stderr


def test_the_mount_helper_detaches_once_mounted(setup):
    config = setup.configure()
    mnt = setup.tmp / "detached"
    mnt.mkdir()
    proc = subprocess.run(setup.client.argv("-c", str(config), REPO, str(mnt)), capture_output=True, text=True,
                          timeout=30)
    try:
        assert proc.returncode == 0, proc.stderr
        assert (mnt / "README").read_text() == "the release\n"
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_bad_manifest_counts_as_that_server_failing_then_the_cache_is_used_offline(setup):
    setup.mount().stop()  # the cache now holds a verified manifest and its catalog
    path = setup.repo_dir / MANIFEST_NAME
    path.write_bytes(path.read_bytes().replace(b"\nS1\n", b"\nS5\n"))
    # a good copy on the second server is taken; with none, the cached copy, offline
    mirror_dir = setup.tmp / "mirror"
    shutil.copytree(setup.out, mirror_dir)
    (mirror_dir / REPO / MANIFEST_NAME).write_bytes(path.read_bytes().replace(b"\nS5\n", b"\nS1\n"))
    mirror = StaticServer(mirror_dir)
    try:
        config = setup.configure(servers=f"{setup.server.url}/@fqrn@;{mirror.url}/@fqrn@")
        good = setup.mount(config, name="mnt2")
        assert os.getxattr(good.mountpoint, "user.host").decode() == f"{mirror.url}/{REPO}"
        good.stop()
        assert "bad signature: the manifest does not verify" in good.stderr and "offline" not in good.stderr
    finally:
        mirror.stop()
    config = setup.configure(servers=f"{setup.server.url}/@fqrn@;http://127.0.0.1:{closed_port()}/@fqrn@",
                             name="cfg2")
    cached = setup.mount(config, name="mnt3")
    assert os.getxattr(cached.mountpoint, "user.host") == b"offline"
    assert (cached.mountpoint / "README").read_text() == "the release\n"
    cached.stop()
    assert re.search(r"no server offers a manifest this client accepts \(bad signature: the manifest does not "
                     r"verify with key \w+\); mounting revision 1 from the cache \(offline\)", cached.stderr), \
        cached.stderr


# ------------------------------------------------------------------ trust, tags, owners (issue 14)


def mount_with(setup, *extra: str, config=None, expect_failure: bool = False, name: str = "mnt") -> Mount:
    """A mount with more command line arguments (-o tag=...)."""
    m = Mount(setup.client, config or setup.configure(), setup.tmp / name, extra=list(extra))
    setup.mounts.append(m)
    return m.start(expect_failure=expect_failure)


def tool(setup, config, *args: str) -> subprocess.CompletedProcess:
    """cvmfs2 in a tool mode (--tags, --diff)."""
    return subprocess.run(setup.client.argv("-c", str(config), *args), capture_output=True, text=True, timeout=60)


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def private_key(setup):
    return keys.load_private(setup.keypair.private_path)


def signed_manifest(setup, **changes) -> bytes:
    """The published manifest with *changes*, signed with the repository's key."""
    m = parse((setup.repo_dir / MANIFEST_NAME).read_bytes()).manifest
    return render(Manifest(**{**m.__dict__, **changes}), private_key(setup))


def publish_two_tags(setup) -> None:
    """The setup's tree tagged v1 (revision 1), then v2 (revision 2): README changed, a file
    added, one deleted, a mode changed, and a time alone changed."""
    publish(setup.source, REPO, setup.out, setup.keypair.private_path, tag="v1")
    (setup.source / "README").write_text("the next release\n")
    (setup.source / "new.txt").write_text("new\n")
    os.unlink(setup.source / "share/doc/empty")
    os.chmod(setup.source / "bin/run.sh", 0o700)
    os.utime(setup.source / "lib/data.bin", (1, 1))
    publish(setup.source, REPO, setup.out, setup.keypair.private_path, tag="v2")


def test_a_manifest_without_expiry_or_past_it_is_refused_and_a_cached_one_serves_offline_even_expired(setup):
    path = setup.repo_dir / MANIFEST_NAME
    good = path.read_bytes()
    path.write_bytes(signed_manifest(setup, expires=int(time.time()) - 60))
    expired = setup.mount(expect_failure=True)
    assert re.search(rf"refusing to mount {REPO}: no server offers a manifest this client accepts \(the manifest "
                     r"expired at \S+Z \(now \S+Z\); the publisher must re-sign it\) and there is no cached manifest",
                     expired.stderr), expired.stderr
    path.write_bytes(signed_manifest(setup, expires=0))
    assert b"\nE" not in path.read_bytes()
    never = setup.mount(expect_failure=True, name="mnt2")
    assert "the manifest has no expiry time (no E line" in never.stderr and "refusing to mount" in never.stderr

    path.write_bytes(good)
    fresh = setup.mount(name="mnt3")
    assert (fresh.mountpoint / "README").read_text() == "the release\n"
    fresh.stop()
    cached = setup.tmp / "cache" / REPO / "manifest"
    assert cached.read_bytes() == good  # the verified copy is kept
    # the cached copy has expired since (it was verified when fetched), and no server can be reached
    cached.write_bytes(signed_manifest(setup, expires=int(time.time()) - 60))
    setup.server.stop()
    offline = setup.mount(name="mnt4")
    assert (offline.mountpoint / "README").read_text() == "the release\n"
    offline.stop()
    assert re.search(r"no server can be reached \(.*\); mounting revision 1 from the cache \(offline\) \(it expired "
                     r"at \S+Z; it was verified when fetched\)", offline.stderr), offline.stderr


def test_only_keys_listed_for_the_repository_are_trusted(setup):
    other = keys.generate("other.example.org", setup.tmp / "other")
    path = setup.repo_dir / MANIFEST_NAME
    path.write_bytes(render(parse(path.read_bytes()).manifest, keys.load_private(other.private_path)))
    # the other key sits beside ours, named for its own repository: not trusted for this one
    both = setup.tmp / "keys-both"
    both.mkdir()
    shutil.copy(setup.keypair.public_path, both / f"{REPO}.pub")
    shutil.copy(other.public_path, both / "other.example.org.pub")
    refused = setup.mount(setup.configure(keys_dir=both, name="cfg-both"), expect_failure=True)
    assert (f"the manifest is signed by an unknown key {other.key_id}: it is not one of the keys trusted for {REPO} "
            f"({setup.keypair.key_id}, from {both}/{REPO}.pub, {both}/{REPO}/*.pub, {both}/example.org/*.pub)"
            in refused.stderr), refused.stderr
    assert "refusing to mount" in refused.stderr
    # listed for it: in the repository's own key directory, or in its domain's (as CernVM-FS)
    for n, rel in enumerate([f"{REPO}/release-manager.pub", "example.org/domain.pub"]):
        d = setup.tmp / f"keys{n}"
        (d / rel).parent.mkdir(parents=True)
        shutil.copy(other.public_path, d / rel)
        m = setup.mount(setup.configure(keys_dir=d, name=f"cfg{n}"), name=f"mnt{n}")
        assert (m.mountpoint / "README").read_text() == "the release\n"
        m.stop()
    # or named by CVMFS_PUBLIC_KEY in the repository's configuration
    config = setup.configure(keys_dir=both, name="cfg-public-key")
    with open(config / "config.d" / f"{REPO}.conf", "a") as f:
        f.write(f"CVMFS_PUBLIC_KEY={other.public_path}\n")
    m = setup.mount(config, name="mnt-public-key")
    assert (m.mountpoint / "README").read_text() == "the release\n"
    m.stop()
    # a directory holding only another repository's key has none for this one
    only = setup.tmp / "keys-other"
    only.mkdir()
    shutil.copy(other.public_path, only / "other.example.org.pub")
    none = setup.mount(setup.configure(keys_dir=only, name="cfg-other"), expect_failure=True, name="mnt-none")
    assert (f"no public keys for {REPO} (looked for {only}/{REPO}.pub, {only}/{REPO}/*.pub, {only}/example.org/*.pub)"
            in none.stderr), none.stderr


def test_a_tag_mounts_its_revision_after_newer_ones_and_latest_the_newest(setup):
    tags_file = setup.repo_dir / TAGS_NAME
    untagged = tags_file.read_bytes()  # every revision writes the list; none is tagged yet
    tags_file.unlink()
    missing = mount_with(setup, "-o", "tag=latest", expect_failure=True, name="mnt-missing")
    assert re.search(rf"refusing to mount {REPO} tag latest: no server has the tag list \(HTTP 404 for \S+/"
                     r"\.cvmfstags\) and there is no cached tag list", missing.stderr), missing.stderr
    tags_file.write_bytes(untagged)
    none = mount_with(setup, "-o", "tag=latest", expect_failure=True, name="mnt-none")
    assert f"the tag list of {REPO} (revision 1) has no tags: 'latest' names none" in none.stderr, none.stderr
    publish_two_tags(setup)
    plain = setup.mount()
    assert (plain.mountpoint / "README").read_text() == "the next release\n"
    assert "user.tag" not in os.listxattr(plain.mountpoint)
    plain.stop()

    v1 = mount_with(setup, "-o", "tag=v1", name="mnt-v1")
    assert (v1.mountpoint / "README").read_text() == "the release\n"
    assert (v1.mountpoint / "share/doc/empty").exists() and not (v1.mountpoint / "new.txt").exists()
    assert os.getxattr(v1.mountpoint, "user.tag") == b"v1" and os.getxattr(v1.mountpoint, "user.revision") == b"1"
    assert os.getxattr(v1.mountpoint, "user.root_hash").decode() == parse_tags(
        (setup.repo_dir / TAGS_NAME).read_bytes()).get("v1").catalog
    v1.stop()
    latest = mount_with(setup, "-o", "tag=latest", name="mnt-latest")
    assert (latest.mountpoint / "README").read_text() == "the next release\n"
    assert os.getxattr(latest.mountpoint, "user.tag") == b"v2"
    assert os.getxattr(latest.mountpoint, "user.revision") == b"2"
    latest.stop()

    unknown = mount_with(setup, "-o", "tag=v9", expect_failure=True, name="mnt-v9")
    assert (f"refusing to mount {REPO} tag v9: there is no tag 'v9' in {REPO}'s tag list (revision 2); its tags: "
            "v1, v2 (or 'latest')" in unknown.stderr), unknown.stderr

    # offline: the cached tag list and catalog
    setup.server.stop()
    offline = mount_with(setup, "-o", "tag=v1", name="mnt-offline")
    assert (offline.mountpoint / "README").read_text() == "the release\n"
    assert os.getxattr(offline.mountpoint, "user.host") == b"offline"
    offline.stop()
    assert re.search(r"no server can be reached \(.*\); using the cached tag list \(revision 2, signed \S+Z\) "
                     r"\(offline\)", offline.stderr), offline.stderr


def test_tags_and_diff_print_the_verified_list_and_the_changes_beside_a_running_mount(setup):
    publish_two_tags(setup)
    config = setup.configure()
    mounted = mount_with(setup, "-o", "tag=v1", config=config)  # the tools use its cache meanwhile
    listing = tool(setup, config, "--tags", REPO)
    assert listing.returncode == 0, listing.stderr
    tl = parse_tags((setup.repo_dir / TAGS_NAME).read_bytes())
    assert [t.name for t in tl.tags] == ["v1", "v2"]
    assert listing.stdout.splitlines() == [
        f"# {REPO}: tag list revision 2 signed {iso(tl.timestamp)} expires {iso(tl.expires)} "
        f"(online from {setup.server.url}/{REPO})",
        *(f"{t.name} {t.revision} {t.catalog} {iso(t.timestamp)}" for t in tl.tags)]

    diff = tool(setup, config, "--diff", "v1", "latest", REPO)
    assert diff.returncode == 0, diff.stderr
    # sorted by path; data.bin's time alone changed: not a difference
    assert diff.stdout == "M /README\nM /bin/run.sh\nA /new.txt\nD /share/doc/empty\n"
    back = tool(setup, config, "--diff", "v2", "v1", REPO)
    assert back.stdout == "M /README\nM /bin/run.sh\nD /new.txt\nA /share/doc/empty\n"
    assert tool(setup, config, "--diff", "v1", "v1", REPO).stdout == ""
    # v2's catalog was fetched, checked and kept in the shared cache; the mount went on serving
    assert (setup.tmp / "cache" / REPO / "catalogs" / f"{tl.get('v2').catalog}.db").exists()
    drop_page_cache(mounted.mountpoint / "README")
    assert (mounted.mountpoint / "README").read_text() == "the release\n"
    assert not list((setup.tmp / "cache" / REPO / "txn").iterdir())

    bad = tool(setup, config, "--diff", "v1", "v9", REPO)
    assert bad.returncode == 1 and bad.stdout == ""
    assert f"cannot compare v1 with v9: there is no tag 'v9' in {REPO}'s tag list" in bad.stderr

    mounted.stop()
    setup.server.stop()  # offline: the cached list and catalogs
    offline = tool(setup, config, "--tags", REPO)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.splitlines()[0].endswith("(offline: cached copy)")
    assert offline.stdout.splitlines()[1:] == listing.stdout.splitlines()[1:]
    assert "no server can be reached" in offline.stderr and "using the cached tag list" in offline.stderr
    assert tool(setup, config, "--diff", "v1", "v2", REPO).stdout == diff.stdout


def test_a_tampered_forged_expired_or_replayed_tag_list_is_refused(setup):
    publish(setup.source, REPO, setup.out, setup.keypair.private_path, tag="v1")
    path = setup.repo_dir / TAGS_NAME
    v1_list = path.read_bytes()
    config = setup.configure()
    path.write_bytes(v1_list.replace(b"\nGv1 1 ", b"\nGv1 7 "))
    tampered = tool(setup, config, "--tags", REPO)
    assert tampered.returncode == 1 and tampered.stdout == ""
    assert (f"no tag list of {REPO}: no server offers a tag list this client accepts (bad signature: the tag list "
            "does not verify with key" in tampered.stderr), tampered.stderr
    assert "and there is no cached tag list" in tampered.stderr
    refused = mount_with(setup, "-o", "tag=v1", config=config, expect_failure=True)
    assert f"refusing to mount {REPO} tag v1: no server offers a tag list" in refused.stderr
    assert "bad signature: the tag list does not verify" in refused.stderr

    tl = parse_tags(v1_list)
    other = keys.generate("other.example.org", setup.tmp / "other")
    for forged, reason in [
        (render_tags(TagList(**{**tl.__dict__, "expires": int(time.time()) - 60}), private_key(setup)),
         r"the tag list expired at \S+Z \(now \S+Z\)"),
        (render_tags(TagList(**{**tl.__dict__, "repository": "else.example.org"}), private_key(setup)),
         rf"the tag list is for repository 'else.example.org', not '{REPO}'"),
        (render_tags(tl, keys.load_private(other.private_path)),
         rf"the tag list is signed by an unknown key {other.key_id}: it is not one of the keys trusted for {REPO}"),
    ]:
        path.write_bytes(forged)
        r = tool(setup, config, "--tags", REPO)
        assert r.returncode == 1 and re.search(reason, r.stderr), r.stderr

    # replay: once revision 2's list has been seen, revision 1's is refused; the cached one serves
    path.write_bytes(v1_list)
    assert tool(setup, config, "--tags", REPO).returncode == 0
    (setup.source / "README").write_text("the next release\n")
    publish(setup.source, REPO, setup.out, setup.keypair.private_path, tag="v2")
    assert tool(setup, config, "--tags", REPO).stdout.startswith(f"# {REPO}: tag list revision 2 ")
    path.write_bytes(v1_list)
    replayed = tool(setup, config, "--tags", REPO)
    assert replayed.returncode == 0
    assert replayed.stdout.startswith(f"# {REPO}: tag list revision 2 ")
    assert replayed.stdout.splitlines()[0].endswith("(offline: cached copy)")
    assert re.search(r"replay: the tag list has revision 1 signed \S+Z, older than the cached verified copy "
                     r"\(revision 2 signed \S+Z\)", replayed.stderr), replayed.stderr
    latest = mount_with(setup, "-o", "tag=latest", config=config, name="mnt2")
    assert (latest.mountpoint / "README").read_text() == "the next release\n"
    latest.stop()
    assert "replay: the tag list has revision 1" in latest.stderr and "using the cached tag list" in latest.stderr


def test_owners_groups_and_devices_are_served_as_published_and_schema_1_is_still_read(setup):
    def md(kind, mode, uid=0, gid=0, rdev=0):
        return SimpleNamespace(type=kind, mode=mode, uid=uid, gid=gid, mtime=1700000000, rdev=rdev)

    publish(setup.source, REPO, setup.out, setup.keypair.private_path, tag="plain")
    metadata = {"/README": md("file", 0o640, 1000, 100), "/bin": md("dir", 0o750, 0, 4),
                "/share/null": md("char", 0o666, rdev=os.makedev(1, 3)),
                "/share/loop0": md("block", 0o660, 0, 6, os.makedev(7, 0)),
                "/share/pipe": md("fifo", 0o644, 1000, 1000)}
    publish(setup.source, REPO, setup.out, setup.keypair.private_path, metadata=metadata, tag="owned")
    config = setup.configure()
    m = setup.mount(config)
    mnt = m.mountpoint
    st = (mnt / "README").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 100, 0o640)
    st = (mnt / "bin").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 4, 0o750)
    null, loop0, pipe = (os.lstat(mnt / "share" / n) for n in ("null", "loop0", "pipe"))
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(loop0.st_mode) and loop0.st_rdev == os.makedev(7, 0) and loop0.st_gid == 6
    assert stat.S_ISFIFO(pipe.st_mode) and (pipe.st_uid, pipe.st_gid) == (1000, 1000)
    assert sorted(os.listdir(mnt / "share")) == ["doc", "loop0", "null", "pipe", "up"]
    m.stop()
    diff = tool(setup, config, "--diff", "plain", "owned", REPO)
    assert diff.stdout == "M /README\nM /bin\nA /share/loop0\nA /share/null\nA /share/pipe\n", diff.stderr

    # the same catalog in schema 1 (no owners, groups or devices: read as root's)
    manifest, _ = catalog_of(setup)
    store = ObjectStore(setup.repo_dir)
    db_path = setup.tmp / "schema1.db"
    db_path.write_bytes(store.get(manifest.catalog, CATALOG_SUFFIX))
    with sqlite3.connect(db_path) as db:
        db.execute(f"DELETE FROM catalog WHERE (mode & {0o170000}) IN "
                   f"({stat.S_IFCHR}, {stat.S_IFBLK}, {stat.S_IFIFO})")
        for column in ("uid", "gid", "rdev"):
            db.execute(f"ALTER TABLE catalog DROP COLUMN {column}")
        db.execute("UPDATE properties SET value = '1' WHERE key = 'schema'")
    db.close()
    old = store.put(db_path.read_bytes(), CATALOG_SUFFIX)
    (setup.repo_dir / MANIFEST_NAME).write_bytes(signed_manifest(
        setup, catalog=old.digest, catalog_size=old.compressed_size, revision=manifest.revision + 1))
    m = setup.mount(config, name="mnt2")
    st = (m.mountpoint / "README").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o640)
    assert (m.mountpoint / "README").read_text() == "the release\n"
    assert sorted(os.listdir(m.mountpoint / "share")) == ["doc", "up"]


def test_a_cached_object_cut_short_by_a_power_cut_is_fetched_again(setup):
    """The cache writes an object's data to the disk before it gets its name; one that a crash still
    left shorter than the catalog says (or empty) is not served: it is fetched again."""
    m = setup.mount()
    assert (m.mountpoint / "lib/data.bin").read_bytes() == bytes(range(256)) * 4096
    m.stop()
    digest = catalog_of(setup)[1].lookup("/lib/data.bin").hash
    cached = setup.tmp / "cache" / REPO / "data" / digest[:2] / digest[2:]
    assert cached.stat().st_size == 256 * 4096
    cached.write_bytes(b"")  # what ext4 may leave of a file renamed just before a power cut
    m = setup.mount(name="again")
    assert (m.mountpoint / "lib/data.bin").read_bytes() == bytes(range(256)) * 4096
    assert cached.stat().st_size == 256 * 4096
    assert re.search(rf"the cached object {digest} has 0 bytes, not {256 * 4096}: fetching it again", setup.log())
