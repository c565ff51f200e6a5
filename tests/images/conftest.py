"""Fixtures of the image-format tests: one small test disk and its conversions per session.

Everything here runs without root: the disk is made with sfdisk, mkfs.fat/mcopy and
mke2fs -d (see disks.py); libguestfs, where used, runs with TCG.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from appbuilder.images.meta import ImageMeta
from tests.conftest import free_port
from tests.images.disks import make_disk

EPOCH = 1700000000
VERSION = "cernvm@cvm:2/1.0-1-1"

os.environ.setdefault("LIBGUESTFS_BACKEND", "direct")
os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")


def image_meta(raw: Path, arch: str = "x86_64", group: str = "group-test") -> ImageMeta:
    return ImageMeta(group=group, version=VERSION, arch=arch, disk_size=raw.stat().st_size, source_date_epoch=EPOCH)


@pytest.fixture(scope="session")
def test_disk(tmp_path_factory) -> Path:
    """A 64 MiB MBR disk: FAT /boot (bootable) and an ext4 root with a trove manifest."""
    work = tmp_path_factory.mktemp("disk")
    return make_disk(work / "test.raw", work / "scratch")


@pytest.fixture(scope="session")
def meta(test_disk) -> ImageMeta:
    return image_meta(test_disk)


@pytest.fixture(scope="session")
def converted(test_disk, meta, tmp_path_factory) -> dict[str, list[Path]]:
    """Every format of the test disk, converted once for the session (x86_64)."""
    from appbuilder.images.convert import convert_all

    out = tmp_path_factory.mktemp("converted")
    return convert_all(test_disk, "all", out, meta, jobs=2)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """A moto server (EC2, S3, EBS) on a free loopback port, for the session."""
    pytest.importorskip("moto", reason="moto[server] is in the test extras")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read(16)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not start:\n{log.read_text()}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
