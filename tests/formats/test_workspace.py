"""The packaged formats and a workspace's formats/: it replaces, adds and overrides
templates; and an installed (not editable) appbuild finds its packaged formats."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appbuilder.formats.convert import convert_all
from appbuilder.formats.specs import (
    DATA_DIR,
    FormatError,
    get_format,
    load_formats,
    resolve_formats,
    template_dirs,
)

PROJECT = Path(__file__).resolve().parents[2]
PACKAGED = ["ami", "ova", "qcow2", "raw", "vhd", "vhd-dynamic", "vmdk", "vmdk-esx"]

QCOW2_PLAIN = """# an uncompressed qcow2 v2, for old readers
name: qcow2
family: qcow2
description: qcow2 v2, uncompressed (this workspace's own)
arches: [x86_64]
disk:
  file: "{basename}.qcow2"
  compat: "0.10"
"""

VMDK_WORKSTATION = """# Workstation 14 with an IDE disk and a vmxnet3 NIC
name: vmdk-workstation
family: vmdk
description: VMware Workstation 14 machine, IDE disk
arches: [x86_64, x86]
disk:
  file: "{basename}-ws.vmdk"
  subformat: monolithicSparse
  adapter_type: ide
descriptors:
  - template: vmware.vmx.j2
    file: "{basename}-ws.vmx"
vars:
  virtual_hw_version: 14
  disk_controller: ide
  nic: vmxnet3
arch_vars:
  x86_64: {guest_os: otherlinux-64}
  x86: {guest_os: otherlinux}
"""


def qemu_info(path: Path, fmt: str) -> dict:
    argv = ["qemu-img", "info", "--output=json", "-f", fmt, str(path)]
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def identical(raw: Path, disk: Path, fmt: str) -> None:
    cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", fmt, str(raw), str(disk)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0 and "Images are identical" in cmp.stdout, cmp.stdout + cmp.stderr


@pytest.fixture
def workspace(tmp_path) -> Path:
    d = tmp_path / "formats"
    d.mkdir()
    return d


def test_without_a_workspace_directory_the_packaged_formats_are_all(tmp_path):
    assert sorted(load_formats()) == PACKAGED
    assert sorted(load_formats(tmp_path / "formats")) == PACKAGED  # Settings.formats_dir need not exist
    assert template_dirs(tmp_path / "formats") == (DATA_DIR,)
    assert all(spec.path.parent == DATA_DIR for spec in load_formats().values())


def test_a_workspace_format_replaces_the_packaged_one(workspace, test_disk, meta, tmp_path):
    (workspace / "qcow2.yaml").write_text(QCOW2_PLAIN)
    specs = load_formats(workspace)
    assert sorted(specs) == PACKAGED
    assert specs["qcow2"].description == "qcow2 v2, uncompressed (this workspace's own)"
    assert specs["qcow2"].path == workspace / "qcow2.yaml" and specs["vhd"].path == DATA_DIR / "vhd.yaml"
    assert not specs["qcow2"].compressed
    assert load_formats()["qcow2"].description.startswith("QEMU/KVM")  # the packaged one, without the workspace
    with pytest.raises(FormatError, match="format qcow2 is not offered for x86; it is for x86_64"):
        resolve_formats("qcow2", "x86", workspace)

    out = convert_all(test_disk, "qcow2,vhd", tmp_path / "out", meta, formats_dir=workspace)
    qcow2 = out["qcow2"][0]
    info = qemu_info(qcow2, "qcow2")
    assert info["format-specific"]["data"]["compat"] == "0.10"
    assert info["virtual-size"] == meta.disk_size
    identical(test_disk, qcow2, "qcow2")
    packaged = convert_all(test_disk, "qcow2", tmp_path / "packaged", meta)["qcow2"][0]
    assert qemu_info(packaged, "qcow2")["format-specific"]["data"]["compat"] == "1.1"
    assert qcow2.stat().st_size > packaged.stat().st_size  # the workspace's is not compressed


def test_a_workspace_adds_a_format_of_an_existing_family(workspace, test_disk, meta, tmp_path):
    (workspace / "vmdk-workstation.yaml").write_text(VMDK_WORKSTATION)
    specs = load_formats(workspace)
    assert sorted(specs) == sorted([*PACKAGED, "vmdk-workstation"])
    assert "vmdk-workstation" in [s.name for s in resolve_formats("all", "x86", workspace)]
    assert get_format("vmdk-workstation", workspace).family == "vmdk"

    out = convert_all(test_disk, "vmdk,vmdk-workstation", tmp_path / "out", meta, formats_dir=workspace)
    disk, vmx = out["vmdk-workstation"]
    assert (disk.name, vmx.name) == (f"{meta.basename}-ws.vmdk", f"{meta.basename}-ws.vmx")
    info = qemu_info(disk, "vmdk")
    assert info["format-specific"]["data"]["create-type"] == "monolithicSparse"
    identical(test_disk, disk, "vmdk")
    from appbuilder.formats import vmdk

    text = vmdk.read_descriptor(disk)
    assert vmdk.descriptor_value(text, "CID") == f"{meta.derived_u32(f'vmdk-cid:{disk.name}'):08x}"
    assert vmdk.descriptor_value(text, "ddb.adapterType") == "ide"
    assert f'SPARSE "{disk.name}"' in text
    values = dict(re.findall(r'^(\S+) = "(.*)"$', vmx.read_text(), re.M))
    assert values["ide0:0.fileName"] == disk.name and "scsi0.present" not in values
    assert (values["virtualHW.version"], values["ethernet0.virtualDev"]) == ("14", "vmxnet3")
    # the packaged vmdk beside it is unchanged
    assert dict(re.findall(r'^(\S+) = "(.*)"$', out["vmdk"][1].read_text(), re.M))["scsi0:0.fileName"] == \
        f"{meta.basename}.vmdk"
    # reproducible like the packaged ones
    again = convert_all(test_disk, "vmdk-workstation", tmp_path / "again", meta, formats_dir=workspace)
    assert [p.read_bytes() for p in again["vmdk-workstation"]] == [p.read_bytes() for p in out["vmdk-workstation"]]


def test_a_workspace_format_may_not_clash_with_a_packaged_file(workspace):
    (workspace / "vmdk-workstation.yaml").write_text(VMDK_WORKSTATION.replace("{basename}-ws.vmx", "{basename}.vmx"))
    with pytest.raises(FormatError, match="formats vmdk and vmdk-workstation both write '{basename}.vmx' but make it "
                                        "differently"):
        load_formats(workspace)


def test_a_workspace_template_overrides_the_packaged_one(workspace, test_disk, meta, tmp_path):
    packaged = (DATA_DIR / "vmware.vmx.j2").read_text()
    (workspace / "vmware.vmx.j2").write_text(packaged + 'tools.upgrade.policy = "manual"\n')
    (workspace / "notes.txt.j2").write_text("{{ meta.basename }}: {{ disk.name }} ({{ disk.size }} bytes)\n")
    (workspace / "vmdk-noted.yaml").write_text(
        "name: vmdk-noted\nfamily: vmdk\ndescription: with notes\narches: [x86_64]\n"
        "disk: {file: '{basename}-noted.vmdk', subformat: monolithicSparse}\n"
        "descriptors: [{template: notes.txt.j2, file: '{basename}-notes.txt'}]\n")
    assert template_dirs(workspace) == (workspace.resolve(), DATA_DIR)

    out = convert_all(test_disk, "vmdk,vmdk-noted", tmp_path / "out", meta, formats_dir=workspace)
    vmx = out["vmdk"][1].read_text()
    assert vmx.endswith('tools.upgrade.policy = "manual"\n')  # the packaged format, the workspace's template
    assert f'scsi0:0.fileName = "{meta.basename}.vmdk"' in vmx
    disk = out["vmdk-noted"][0]
    assert out["vmdk-noted"][1].read_text() == f"{meta.basename}: {disk.name} ({disk.stat().st_size} bytes)\n"

    plain = convert_all(test_disk, "vmdk", tmp_path / "plain", meta)
    assert "tools.upgrade.policy" not in plain["vmdk"][1].read_text()
    assert plain["vmdk"][0].read_bytes() == out["vmdk"][0].read_bytes()


def test_the_format_help_lists_the_workspace_formats(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.yaml").write_text("label: test@appbuild:1\n")
    (tmp_path / "formats").mkdir()
    (tmp_path / "formats" / "vmdk-workstation.yaml").write_text(VMDK_WORKSTATION)
    code = ("from appbuilder.cli.images import build_image_parser; "
            "print(next(a.help for a in build_image_parser()._actions if '--format' in a.option_strings))")
    env = {**os.environ, "APPBUILD_WORKSPACE": str(tmp_path)}
    shown = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT, capture_output=True, text=True,
                           check=True).stdout.strip()
    assert shown == f"{', '.join(sorted([*PACKAGED, 'vmdk-workstation']))}, a comma list, or all (default raw)"


def test_an_installed_copy_finds_its_packaged_formats(tmp_path):
    """pip install (not editable) into a directory: the data files are there and load."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(PROJECT / "pyproject.toml", src)  # a copy: the build leaves nothing in the checkout
    shutil.copytree(PROJECT / "appbuilder", src / "appbuilder", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True, timeout=600)
    shutil.rmtree(src)  # nothing may come from the source tree
    data = target / "appbuilder" / "formats" / "data"
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in DATA_DIR.iterdir())
    code = ("import json, appbuilder.formats.specs as s; "
            "specs = s.load_formats(); "
            "print(json.dumps({'file': s.__file__, 'data': str(s.DATA_DIR), 'formats': sorted(specs), "
            "'families': {n: f.family for n, f in specs.items()}, "
            "'templates': sorted({d.template for f in specs.values() for d in f.descriptors})}))")
    run = tmp_path / "elsewhere"
    run.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], cwd=run, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert Path(found["file"]).is_relative_to(target) and Path(found["data"]) == data
    assert found["formats"] == PACKAGED
    assert found["families"]["ova"] == "ova" and found["families"]["ami"] == "raw"
    assert found["templates"] == ["ami-manifest.json.j2", "ovf-1.0.ovf.j2", "sha256.mf.j2", "vmware.vmx.j2"]
    assert all((data / t).is_file() for t in found["templates"])
