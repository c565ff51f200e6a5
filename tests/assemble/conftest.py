"""Real inputs of the assembly steps that the machine has or the Debian archive holds: a
static busybox and a kernel's module tree."""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.assemble.helpers import HostModules, run


def _static_elf(path: Path) -> bool:
    if not path.is_file():
        return False
    out = subprocess.run(["file", "-L", str(path)], capture_output=True, text=True).stdout
    return "ELF" in out and "statically linked" in out


@pytest.fixture(scope="session")
def busybox(tmp_path_factory) -> Path:
    """A static busybox: the machine's (busybox-static installed), else busybox-static from the
    Debian archive through the machine's apt (``apt-get download``, unpacked with dpkg-deb)."""
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if _static_elf(candidate):
            return candidate
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        pytest.skip("no static busybox here and no apt-get/dpkg-deb to fetch busybox-static")
    work = tmp_path_factory.mktemp("busybox-static")
    proc = subprocess.run(["apt-get", "download", "busybox-static"], cwd=work, capture_output=True, text=True,
                          timeout=300)
    debs = sorted(work.glob("busybox-static_*.deb"))
    if proc.returncode != 0 or not debs:
        pytest.skip(f"busybox-static is not installed and apt-get download busybox-static failed: {proc.stderr.strip()}")
    run("dpkg-deb", "-x", debs[0], work / "root")
    binary = work / "root" / "bin" / "busybox"
    if not _static_elf(binary):
        pytest.skip(f"{debs[0].name} holds no static /bin/busybox")
    return binary


@pytest.fixture(scope="session")
def host_modules() -> HostModules:
    """A kernel module tree on this machine with uncompressed ext4 and virtio_blk modules."""
    if not shutil.which("modinfo") or not shutil.which("depmod"):
        pytest.skip("kmod (modinfo, depmod) is not installed")
    for ext4 in sorted(glob.glob("/lib/modules/*/kernel/fs/ext4/ext4.ko"), reverse=True):
        root = Path(ext4).parents[3]
        if (root / "kernel" / "drivers" / "block" / "virtio_blk.ko").is_file() and (root / "modules.dep").is_file():
            return HostModules(root.name)
    pytest.skip("no kernel module tree with uncompressed ext4.ko and virtio_blk.ko under /lib/modules")
