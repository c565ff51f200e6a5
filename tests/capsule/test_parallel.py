"""Packages read in worker processes: the same capsules as read here, errors as they were raised."""

from __future__ import annotations

import hashlib
import os
import tarfile

import pytest

from appbuilder.capsule import parallel
from appbuilder.capsule.deb import read_deb
from appbuilder.capsule.model import CapsuleError
from appbuilder.cli.common import open_repo
from appbuilder.core.errors import UnsafeArchive
from appbuilder.repository import sha1s
from appbuilder.repository.store import ContentStore
from tests.capsule.test_deb_import import _member, hand_made_deb
from tests.conftest import component, run_appbuild


def _debs(tmp_path, count: int):
    return [hand_made_deb(tmp_path / f"p{i}.deb", [_member("./usr/share/p/data", data=f"package {i}\n".encode() * 50),
                                                   _member("./usr/share/p/common", data=b"shared\n")],
                          name=f"pkg{i}")
            for i in range(count)]


def _crash(path, store, *, expected_sha256=None, writer=None):
    if path.name == "p2.deb":
        os._exit(9)  # as if killed in the middle
    return read_deb(path, store, expected_sha256=expected_sha256, writer=writer)


def test_processes_read_the_same_capsules_in_order(tmp_path, monkeypatch):
    debs = _debs(tmp_path, 5)
    here = ContentStore(tmp_path / "here")
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 1)
    alone = parallel.read_packages(read_deb, here, [(p, None) for p in debs])
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 3)
    assert parallel.workers_for(len(debs)) == 3
    shared = ContentStore(tmp_path / "shared")
    found: dict[str, str] = {}
    together = parallel.read_packages(read_deb, shared, [(p, None) for p in debs], sha1s=found)
    assert [c.name for c in together] == [f"pkg{i}" for i in range(5)]
    assert together == alone
    for c in together:  # every content is in the store the workers wrote to, whole, its SHA-1 found
        for f in c.files:
            if f.type == "file":
                data = shared.read(f.sha256)
                assert data.startswith(b"package" if f.path.endswith("data") else b"shared")
                assert found[f.sha256] == hashlib.sha1(data).hexdigest()


def test_files_still_arriving_are_read_as_they_come(tmp_path, monkeypatch):
    debs = _debs(tmp_path, 4)
    handed: list[str] = []

    def arriving():  # a download under way: each file given when it is there
        for p in debs:
            handed.append(p.name)
            yield p, None
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    capsules = parallel.read_packages(read_deb, ContentStore(tmp_path / "s"), arriving(), count=len(debs))
    assert handed == [p.name for p in debs]
    assert [c.name for c in capsules] == [f"pkg{i}" for i in range(4)]


def test_a_failed_download_stops_the_reading(tmp_path, monkeypatch):
    debs = _debs(tmp_path, 3)

    def arriving():
        yield debs[0], None
        raise CapsuleError("the download failed")
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    with pytest.raises(CapsuleError, match="the download failed"):
        parallel.read_packages(read_deb, ContentStore(tmp_path / "s"), arriving(), count=len(debs))


def test_the_first_failure_in_order_is_raised_as_it_was(tmp_path, monkeypatch):
    debs = _debs(tmp_path, 4)
    bad = hand_made_deb(tmp_path / "escape.deb", [_member("./usr/../../escape", data=b"x\n")], name="esc")
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    with pytest.raises(UnsafeArchive, match="escapes the root"):
        parallel.read_packages(read_deb, ContentStore(tmp_path / "s"), [(p, None) for p in [*debs[:2], bad, *debs[2:]]])
    with pytest.raises(CapsuleError, match="checksum mismatch"):
        parallel.read_packages(read_deb, ContentStore(tmp_path / "s"), [(debs[0], None), (debs[1], "0" * 64)])


def test_a_worker_that_dies_is_an_error_naming_what_was_not_read(tmp_path, monkeypatch):
    debs = _debs(tmp_path, 4)
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    with pytest.raises(CapsuleError, match=r"a process reading packages stopped .* before \d were read "
                                            r"\(.*p2\.deb.*\): nothing was imported"):
        parallel.read_packages(_crash, ContentStore(tmp_path / "s"), [(p, None) for p in debs])


def test_import_of_many_files_is_all_or_nothing(workspace, tmp_path):
    debs = _debs(tmp_path, 3)
    link_out = hand_made_deb(tmp_path / "link.deb", [
        _member("./usr/share/l", kind=tarfile.SYMTYPE, link="../../../../etc/shadow")], name="linky")
    proc = run_appbuild(workspace, "import", "deb", *map(str, [*debs, link_out]), check=False)
    assert proc.returncode == 1 and "points outside the root" in proc.stderr and "Traceback" not in proc.stderr
    assert open_repo(workspace).packages() == []
    out = run_appbuild(workspace, "import", "deb", *map(str, debs)).stdout
    assert out.count("imported pkg") == 3
    repo = open_repo(workspace)
    kept = sha1s.load(sha1s.cache_file(workspace.cache))  # for the inventories of images
    for name in ("pkg0", "pkg2"):
        data = next(f for f in component(repo, f"{name}:deb").files if f.path.endswith("/data"))
        assert kept[data.sha256] == hashlib.sha1(repo.store.read(data.sha256)).hexdigest()
