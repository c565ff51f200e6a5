"""How the file system client reaches the appliance: group-cernvm names cvmfs-client,
and resolution adds the C library, libfuse3, SQLite, libsodium and zlib because the
client's ELF files need their sonames; no group or recipe lists them for the image.
The production image holds the client, its libraries and the production keys only."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT, run_appbuild
from tests.imageroot import root_partition

pytestmark = pytest.mark.slow

def image(appliance, arch: str, fmt: str) -> Path:
    return next(p for p in appliance.files[(arch, fmt)] if p.suffix == f".{fmt}")


def debugfs(fs: Path, command: str) -> str:
    return subprocess.run(["debugfs", "-R", command, str(fs)], capture_output=True, text=True).stdout


LIBRARIES = {"libc6": None, "libfuse3-3": "libfuse3.so.3", "libsqlite3-0": "libsqlite3.so.0",
             "libsodium23": "libsodium.so.23", "zlib1g": "libz.so.1"}


def test_the_client_libraries_come_from_soname_resolution(appliance):
    text = (PROJECT / "groups" / "group-cernvm.py").read_text()
    assert "r.add('cvmfs-client')" in text
    assert not re.search(r"libc6|libfuse|libsqlite|libsodium|zlib1g", text.split("def setup", 1)[1])
    out = run_appbuild(appliance.settings, "resolve", "group-cernvm", "--arch", "all").stdout
    tables = out.split("MEMBER")[1:]  # x86_64, then x86
    assert len(tables) == 2
    for table, elf in zip(tables, ("ELF64", "ELF32")):
        reasons = {line.split()[0]: line for line in table.splitlines() if line.strip()}
        for package, soname in LIBRARIES.items():
            line = reasons[f"{package}:deb"]
            if soname:
                assert f"cvmfs-client:runtime requires soname: {elf}/{soname}(" in line, line
            else:  # the C library: the first dynamic program's loader (file:) or libc.so.6 (soname:)
                assert re.search(r"\S+:(runtime|deb) requires (file: /lib\S*/ld-linux\S*|soname: " + elf
                                 + r"/libc\.so\.6)", line), line


@pytest.mark.parametrize("arch, libdir", [("x86_64", "/lib/x86_64-linux-gnu"), ("x86", "/lib/i386-linux-gnu")])
def test_the_image_holds_the_client_its_libraries_and_only_production_keys(appliance, arch, libdir, tmp_path):
    fs = root_partition(image(appliance, arch, "raw"), tmp_path / "root.ext4")
    for path in ("/usr/bin/cvmfs2", "/sbin/mount.cvmfs", "/etc/cvmfs/default.conf", "/usr/sbin/cernvm-context",
                 "/etc/rc.d/S10network", "/etc/rc.d/S50cernvm-context", "/usr/share/udhcpc/default.script",
                 f"{libdir}/libc.so.6", f"{libdir}/libfuse3.so.3", f"{libdir}/libz.so.1"):
        assert "Inode:" in debugfs(fs, f"stat {path}"), path
    keys = sorted(line.split()[-1] for line in debugfs(fs, "ls -l /etc/cvmfs/keys").splitlines()
                  if line.strip().endswith(".pub"))
    assert keys == ["grid.cern.ch.pub", "sft.cern.ch.pub"]
    manifest = json.loads(debugfs(fs, "cat /var/lib/appbuild/manifest.json"))
    troves = {t.split("=")[0] for t in manifest["troves"]}
    assert {"cvmfs-client:runtime", "cvmfs-keys:config", "cernvm-context:runtime"} <= troves
    assert {f"{package}:deb" for package in LIBRARIES} <= troves  # capsules: added as their :deb component
    assert not any(t.startswith("cvmfs-testkey") for t in troves)


def test_the_qcow2_stays_under_the_size_goal(appliance):
    sizes = {arch: image(appliance, arch, "qcow2").stat().st_size for arch in ("x86_64", "x86")}
    print("qcow2 with the file system client: " + ", ".join(f"{a} {s / 2**20:.1f} MiB" for a, s in sizes.items()))
    assert all(s < 40 << 20 for s in sizes.values())
