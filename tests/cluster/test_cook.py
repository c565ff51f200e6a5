"""Cooks through a real Dask cluster (a scheduler and two workers on 127.0.0.1, each in an
empty directory of its own, reading the repository over HTTP only): the same troves, to
the byte, as a local cook of the same inputs; a run started again skips what was
committed; a changeset a worker tampered with is refused and nothing of it committed.

The trove compared is everything a cook decides (version, flavor, info, every file with
its content, dependencies) except the build log, whose lines name the recipe file's path
on the machine that cooked (two local workspaces differ there too)."""

from __future__ import annotations

import re

import pytest

from appbuilder.core.arch import get_arch
from tests.cluster.helpers import contents, trove_record
from tests.conftest import make_settings, new_workspace, run_appbuild, seed_repository

pytestmark = pytest.mark.slow

NAMES = ("libhello", "hello")
ARCHES = ("x86_64", "x86")


@pytest.fixture(scope="module")
def cluster_cook(tmp_path_factory, toolchain_repo, dask_cluster):
    """libhello and hello cooked for both arches through the cluster, by the real command line."""
    root = tmp_path_factory.mktemp("cluster-cook")
    ws = new_workspace(root, list(NAMES))
    s = seed_repository(make_settings(root, workspace=ws), toolchain_repo)
    proc = run_appbuild(s, "cook", "recipes/", "--arch", "all", "--cluster", dask_cluster.address)
    return s, proc


def test_cluster_cooks_are_the_local_cooks_byte_for_byte(cluster_cook, hello_repo, dask_cluster):
    from appbuilder.repository.repo import Repository

    s, proc = cluster_cook
    out = proc.stdout + proc.stderr
    assert f"cooking on the cluster at {dask_cluster.address} (2 workers)" in out
    cluster_repo = Repository(s.repository, s.label)
    local_repo = Repository(hello_repo.repository, hello_repo.label)
    workers = set()
    for name in NAMES:
        for arch in ARCHES:
            nvf = cluster_repo.find_one(name, arch=arch)
            assert f"cooked {nvf} in " in proc.stdout
            m = re.search(rf"^  {name} \({arch}\) on (tcp://127\.0\.0\.1:\d+): build", out, re.M)
            assert m, out
            workers.add(m.group(1))
            local = local_repo.find_one(name, arch=arch)
            assert nvf == local
            assert trove_record(cluster_repo, nvf) == trove_record(local_repo, local)
            # the build log came along, kept beside the package; it names no path of the machine
            # that cooked, nor what its cache held
            log = cluster_repo.store.read(cluster_repo.build_log(nvf))
            assert log.startswith(b"toolchain group-toolchain=") and b"/recipe.py:" in log
            assert str(s.workspace).encode() not in log
            assert contents(cluster_repo, nvf) == contents(local_repo, local)
    assert len(workers) == 2  # both workers cooked: independent cooks ran at once
    # the order held: hello was submitted only after libhello (its build requirement) was committed
    for arch in ARCHES:
        assert out.index(f"cooked libhello=") < out.index(f"cooked hello=")


def test_a_second_run_skips_what_was_committed(cluster_cook, dask_cluster):
    s, _ = cluster_cook
    proc = run_appbuild(s, "cook", "recipes/", "--arch", "all", "--cluster", dask_cluster.address)
    assert "cooked " not in proc.stdout
    for name in NAMES:
        for arch in ARCHES:
            assert re.search(rf"^{name} \({arch}\) is up to date: ", proc.stdout + proc.stderr, re.M), proc.stdout


def test_a_tampered_changeset_is_refused_and_nothing_committed(tmp_path, toolchain_repo, dask_cluster):
    from appbuilder.cluster.connect import connect
    from appbuilder.cluster.schedule import cook_on_cluster
    from appbuilder.recipe.loader import find_recipes
    from appbuilder.repository.repo import Repository

    ws = new_workspace(tmp_path, ["libhello"])
    s = seed_repository(make_settings(tmp_path, workspace=ws), toolchain_repo)
    s = s.with_overrides({"cluster.scheduler": dask_cluster.address})
    repo = Repository(s.repository, s.label)
    before = sorted(map(str, repo.packages()))

    def hostile(task):  # runs on the worker: a real cook, then one byte of the answer changed
        from appbuilder.cluster.worker import cook_task

        reply = cook_task(task)
        assert reply.changeset, reply.error
        data = bytearray(reply.changeset)
        data[-100] ^= 0x01  # inside the last object carried
        reply.changeset = bytes(data)
        return reply

    said = []
    with connect(s) as cluster:
        result = cook_on_cluster(s, repo, cluster, find_recipes(s.recipes_dir), [get_arch("x86_64")],
                                 say=said.append, task=hostile)
    assert list(result.failed) == ["libhello (x86_64)"]
    why = result.failed["libhello (x86_64)"]
    assert "changeset from worker tcp://127.0.0.1:" in why and "refused" in why, why
    assert any("refused" in line for line in said)
    assert not result.cooked
    assert sorted(map(str, repo.packages())) == before  # nothing of it was committed
    assert not repo.versions("libhello")


def test_busybox_cooked_on_the_cluster_is_the_local_cook(tmp_path_factory, toolchain_repo, shared_cache,
                                                          dask_cluster):
    """A real, larger cook for both arches (Debian's busybox source, static): the worker fetches the source
    itself (its own apt state and lookaside cache) and commits the local cook's trove."""
    from appbuilder.repository.repo import Repository

    repos = {}
    for where in ("cluster", "local"):
        root = tmp_path_factory.mktemp(f"busybox-{where}")
        ws = new_workspace(root, ["busybox"])
        s = seed_repository(make_settings(root, workspace=ws, cache=shared_cache), toolchain_repo)
        extra = ["--cluster", dask_cluster.address] if where == "cluster" else []
        proc = run_appbuild(s, "cook", "recipes/busybox", "--arch", "all", *extra, timeout=3600)
        if where == "cluster":
            for arch in ARCHES:
                assert re.search(rf"^  busybox \({arch}\) on tcp://127\.0\.0\.1:\d+: build",
                                 proc.stdout + proc.stderr, re.M), proc.stdout + proc.stderr
        repos[where] = Repository(s.repository, s.label)
    for arch in ARCHES:
        nvf = repos["cluster"].find_one("busybox", arch=arch)
        assert nvf == repos["local"].find_one("busybox", arch=arch)
        assert trove_record(repos["cluster"], nvf) == trove_record(repos["local"], nvf)
        assert contents(repos["cluster"], nvf) == contents(repos["local"], nvf)
