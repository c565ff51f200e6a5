"""The real cvmfs2 client (cooked by appbuild from recipes/cvmfs-client, run from its
materialized runtime closure) mounted with FUSE on this host, against a published
repository on a local HTTP server: reads, listings, symlinks, verification, caching,
quota, offline mode, proxies and servers with failover, and bad input."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess

import pytest

from appbuilder.core.fileio import write_atomic as write_atomically
from appbuilder.fs import keys
from appbuilder.fs.catalog import build as build_catalog
from appbuilder.fs.manifest import MANIFEST_NAME, Manifest, parse, render
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectStore
from appbuilder.fs.publish import publish
from tests.fs.conftest import REPO, make_tree
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
                                    "libfuse3-3:deb", "libsqlite3-0:deb", "libssl3:deb", "zlib1g:deb"]
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
    assert stat.S_IMODE(st.st_mode) == 0o555 and st.st_uid == 0  # read-only: no write bits
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
    write_atomically(setup.repo_dir / MANIFEST_NAME, render(
        Manifest(garbage.digest, garbage.compressed_size, 2, REPO, 1), keys.load_private(setup.keypair.private_path)))
    corrupt = setup.mount(expect_failure=True, name="mnt2")
    assert "catalog" in corrupt.stderr and ("corrupt" in corrupt.stderr or "not a database" in corrupt.stderr)

    # a catalog of the wrong schema
    wrong = store.put(build_catalog([], {"repository": REPO}).replace(b"schema", b"schemX"), CATALOG_SUFFIX)
    write_atomically(setup.repo_dir / MANIFEST_NAME, render(
        Manifest(wrong.digest, wrong.compressed_size, 3, REPO, 1), keys.load_private(setup.keypair.private_path)))
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


def test_a_new_revision_is_seen_by_the_next_mount_and_an_older_one_is_not_taken(setup):
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
    # a server (or a stale proxy) that offers revision 1 again: the client keeps revision 2
    (setup.repo_dir / MANIFEST_NAME).write_bytes(old_manifest)
    kept = setup.mount(name="mnt3")
    assert os.getxattr(kept.mountpoint, "user.revision") == b"2"
    assert "older than the cached 2" in setup.log()


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


def test_a_bad_manifest_is_refused_even_when_the_cache_could_mount_offline(setup):
    setup.mount().stop()  # the cache now holds a verified manifest and its catalog
    path = setup.repo_dir / MANIFEST_NAME
    path.write_bytes(path.read_bytes().replace(b"\nS1\n", b"\nS5\n"))
    config = setup.configure(servers=f"{setup.server.url}/@fqrn@;http://127.0.0.1:{closed_port()}/@fqrn@")
    refused = setup.mount(config, expect_failure=True, name="mnt2")
    assert "bad signature" in refused.stderr and "offline" not in refused.stderr
