"""Rebuilds from nothing: another workspace, another day, the same bytes.

The session's appliance was imported and cooked in one workspace. Here a second workspace
starts with no repository and no cache (only the lookaside's downloads, which are
content-addressed and checked on read, are shared), runs with the clock three days ahead
(libfaketime), imports, cooks and builds the same group: the raw, qcow2, vmdk and vhd files
must be the very bytes of the first. Then its repository is wiped and ``--version`` rebuilds
the version from the pins the image store recorded.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appbuilder.core.fileio import sha256_file
from tests.conftest import VENV_BIN, env_for, make_settings

FORMATS = ("raw", "qcow2", "vmdk", "vhd")


@dataclasses.dataclass
class FromScratch:
    settings: object
    version: str
    output: str
    files: dict[str, list[Path]]


def _faketime(days: int) -> list[str]:
    faketime = shutil.which("faketime")
    assert faketime, "faketime is needed (apt-get install faketime; ci/bootstrap.sh installs it)"
    return [faketime, "-f", f"+{days}d"]


def run_later(settings, *args: str, days: int = 3, timeout: float = 3600) -> subprocess.CompletedProcess:
    """``appbuild ARGS`` with the clock *days* ahead."""
    # NO_FAKE_STAT: the clock moves, the file system does not (by default libfaketime also shifts the
    # times stat() returns, so mcopy would read the boot files' times three days late)
    env = {**env_for(settings), "NO_FAKE_STAT": "1"}
    proc = subprocess.run([*_faketime(days), str(VENV_BIN / "appbuild"), *args], env=env,
                          cwd=settings.workspace, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"appbuild {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def listed_files(output: str, arch: str = "x86_64") -> tuple[str, dict[str, list[Path]]]:
    """(group revision, format -> files) from the build's summary lines."""
    version, directory, files = None, None, {}
    for line in output.splitlines():
        m = re.match(rf"^group-cernvm=\S+/(\S+)\[is: {arch}\]: (\S+)$", line)
        if m:
            version, directory = m.group(1), Path(m.group(2))
            continue
        m = re.match(r"^  (\S+)\s+(\S+)  \(", line)
        if m and directory:
            files.setdefault(m.group(1), []).append(directory / m.group(2))
    assert version, output
    return version, files


@pytest.fixture(scope="module")
def from_scratch(appliance, tmp_path_factory) -> FromScratch:
    root = tmp_path_factory.mktemp("from-scratch")
    s = make_settings(root)
    lookaside = appliance.settings.cache / "lookaside"
    (root / "cache").mkdir()
    if lookaside.is_dir():
        subprocess.run(["cp", "-a", "--link", str(lookaside), str(root / "cache" / "lookaside")], check=True)
    proc = run_later(s, "group-cernvm", "--format", ",".join(FORMATS), "--arch", "x86_64", "-j", "2")
    version, files = listed_files(proc.stdout)
    return FromScratch(s, version, proc.stdout, files)


@pytest.mark.slow
def test_a_workspace_built_from_nothing_on_another_day_gives_the_same_bytes(appliance, from_scratch):
    out = from_scratch.output
    assert re.search(r"importing upstream packages: \d+ listed", out), out  # it really started from nothing
    assert "cooked busybox=" in out and "cooked cvmfs-client=" in out, out
    assert from_scratch.version == appliance.version["x86_64"], out
    compared = 0
    for fmt in FORMATS:
        for original in appliance.files[("x86_64", fmt)]:
            again = next(p for p in from_scratch.files[fmt] if p.name == original.name)
            assert sha256_file(again) == sha256_file(original), f"{original.name} differs when built from nothing"
            compared += 1
    assert compared >= 5  # vmdk is the disk and its .vmx


@pytest.mark.slow
def test_version_rebuilds_from_the_image_stores_pins_when_the_repository_is_gone(appliance, from_scratch):
    s = from_scratch.settings
    shutil.rmtree(s.repository)  # the group trove, the pins' troves: all gone; the image store stays
    version = from_scratch.version
    proc = run_later(s, "group-cernvm", "--version", version, "--arch", "x86_64", "--format", ",".join(FORMATS),
                     "--force", days=5)
    out = proc.stdout
    assert "the repository has no group-cernvm=" in out and "restoring it from the pins in" in out, out
    assert "cooked busybox=" in out, out
    assert f"rebuilding group-cernvm=cernvm@cvm:2/{version}[is: x86_64] from its pins" in out, out
    again_version, files = listed_files(out)
    assert again_version == version
    for fmt in FORMATS:
        for original in appliance.files[("x86_64", fmt)]:
            again = next(p for p in files[fmt] if p.name == original.name)
            assert sha256_file(again) == sha256_file(original), f"{original.name} differs rebuilt from the pins"
    # the restored version is the repository's again: resolving the same closure names it
    proc = run_later(s, "resolve", "group-cernvm", "--arch", "x86_64", days=6)
    assert version in proc.stdout, proc.stdout


def test_a_version_neither_repository_nor_store_knows_is_a_clear_error(tmp_path):
    s = make_settings(tmp_path)
    proc = subprocess.run([str(VENV_BIN / "appbuild"), "group-cernvm", "--version", "9.9-1-1", "--arch", "x86_64",
                           "--format", "raw", "--no-cook"], env=env_for(s), cwd=s.workspace, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "neither the repository nor the image store records group-cernvm=9.9-1-1 for x86_64" in proc.stderr
    assert "Build a new version with 'appbuild group-cernvm'" in proc.stderr, proc.stderr
