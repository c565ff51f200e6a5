"""Image builds through a real Dask cluster: ``appbuild group-cernvm --format raw --arch A
--version V --cluster ...`` in a workspace holding a copy of the appliance's repository,
each (format, arch) built by a worker from the repository over HTTP; the raw disks are
the appliance's (built locally), byte for byte, and the image store records them as a
local build does."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tests.conftest import PROJECT, copy_tree, make_settings, run_appbuild

pytestmark = pytest.mark.slow


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_raw_images_built_on_the_cluster_are_the_local_ones(appliance, tmp_path, dask_cluster):
    from appbuilder.store.images import ImageStore

    ws = tmp_path / "workspace"
    (ws / "repo").mkdir(parents=True)
    shutil.copy(PROJECT / "repo" / "config.yaml", ws / "repo" / "config.yaml")
    shutil.copytree(PROJECT / "recipes", ws / "recipes")
    shutil.copytree(PROJECT / "groups", ws / "groups")
    s = make_settings(tmp_path, workspace=ws, cache=appliance.settings.cache)
    copy_tree(appliance.settings.repository, s.repository)
    store = ImageStore(s.images)
    for arch in ("x86_64", "x86"):  # the very group versions the appliance was built from
        proc = run_appbuild(s, "group-cernvm", "--format", "raw", "--arch", arch, "--version", appliance.version[arch],
                            "--cluster", dask_cluster.address, timeout=3600)
        out = proc.stdout + proc.stderr
        assert f"[{arch}] raw: built on tcp://127.0.0.1:" in out, out
        version = appliance.version[arch]
        manifest = store.manifest("group-cernvm", version, arch)
        assert manifest is not None and manifest.formats == {"raw": [appliance.file(arch, "raw").name]}
        built = s.images / "group-cernvm" / version / arch / appliance.file(arch, "raw").name
        assert sha256(built) == sha256(appliance.file(arch, "raw"))
        assert manifest.files[built.name]["sha256"] == sha256(built)
        assert (built.parent / manifest.provenance).is_file()
        assert not list(built.parent.glob(".*"))  # no temporary file left
