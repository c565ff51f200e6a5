"""The formats: the packaged data files load into their family classes, validate, and
resolve what users type; a workspace's formats/ adds and overrides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appbuilder.formats.specs import (
    DATA_DIR,
    FormatError,
    load_formats,
    resolve_formats,
)

ALL = ["ami", "ova", "qcow2", "raw", "vhd", "vhd-dynamic", "vmdk", "vmdk-esx"]


def test_every_format_is_declared():
    specs = load_formats()
    assert sorted(specs) == ALL
    for spec in specs.values():
        assert spec.arches == ("x86_64", "x86")
        assert spec.description
        assert spec.outputs("B")


def test_format_facts():
    specs = load_formats()
    assert specs["vhd"].drive_format == specs["vhd-dynamic"].drive_format == "vpc"
    assert specs["vmdk"].drive_format == specs["vmdk-esx"].drive_format == "vmdk"
    assert specs["qcow2"].compressed and specs["qcow2"].disk.qemu_img.compress
    assert specs["vhd"].disk.qemu_img.option("force_size") == "on"
    assert specs["vhd"].disk.qemu_img.subformat == "fixed"
    assert specs["vhd-dynamic"].disk.qemu_img.subformat == "dynamic"
    assert specs["vmdk"].disk.qemu_img.subformat == "monolithicSparse"
    assert specs["vmdk-esx"].disk.qemu_img.subformat == specs["ova"].disk.qemu_img.subformat == "streamOptimized"
    assert specs["raw"].disk.qemu_img is None
    assert specs["ova"].outputs("B") == ["B.ova"]
    assert specs["vmdk"].outputs("B") == ["B.vmdk", "B.vmx"]
    assert specs["vmdk-esx"].outputs("B") == ["B-disk1.vmdk", "B.ovf", "B.mf"]
    assert specs["ami"].outputs("B") == ["B.raw", "B.ami.json"]
    # names shared between formats are made the same way (one conversion, one file)
    assert specs["raw"].disk.conversion_key == specs["ami"].disk.conversion_key
    assert specs["ova"].disk.conversion_key == specs["vmdk-esx"].disk.conversion_key


def test_unknown_format_lists_the_valid_ones():
    with pytest.raises(FormatError) as exc:
        resolve_formats("qcow2,vmdx", "x86_64")
    assert str(exc.value) == ("unknown format 'vmdx'; valid formats: ami, ova, qcow2, raw, vhd, vhd-dynamic, "
                              "vmdk, vmdk-esx")


def test_all_and_lists():
    assert [s.name for s in resolve_formats("all", "x86")] == ALL
    assert [s.name for s in resolve_formats("vhd, qcow2,vhd", "x86_64")] == ["vhd", "qcow2"]
    assert [s.name for s in resolve_formats(["raw", "all"], None)][0] == "raw"
    with pytest.raises(FormatError, match="no format given"):
        resolve_formats("", "x86_64")
    with pytest.raises(FormatError, match="unknown architecture 'arm'; valid ones: x86_64, x86"):
        resolve_formats("raw", "arm")


def _copy_formats(tmp_path: Path) -> Path:
    d = tmp_path / "formats"
    shutil.copytree(DATA_DIR, d)
    return d


def test_arch_not_offered(tmp_path):
    d = _copy_formats(tmp_path)
    path = d / "ami.yaml"
    path.write_text(path.read_text().replace("arches: [x86_64, x86]", "arches: [x86_64]")
                    .replace("  x86: {ec2_architecture: i386}\n", ""))
    with pytest.raises(FormatError, match="format ami is not offered for x86; it is for x86_64"):
        resolve_formats("ami", "x86", d)
    assert "ami" not in [s.name for s in resolve_formats("all", "x86", d)]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("name: qcow2", "name: qcow3"), "must match the file name"),
    (lambda t: t.replace("family: qcow2", "family: qed"),
     "unknown family 'qed'; known families: ova, qcow2, raw, vhd, vmdk"),
    (lambda t: t + "drive_format: floppy\n", "drive_format must be one of qcow2"),
    (lambda t: t + "colour: blue\n", r"unknown keys \['colour'\]"),
    (lambda t: t.replace("arches: [x86_64, x86]", "arches: [sparc]"), "arches must be a non-empty list"),
    (lambda t: t + "descriptors:\n  - {template: nope.j2, file: '{basename}.x'}\n", "template nope.j2 not found"),
    (lambda t: t + ": : :\n", "not valid YAML"),
])
def test_broken_definitions_are_reported(tmp_path, edit, message):
    d = _copy_formats(tmp_path)
    path = d / "qcow2.yaml"
    text = path.read_text().replace("descriptors: []\n", "")
    path.write_text(edit(text))
    with pytest.raises(FormatError, match=message) as exc:
        load_formats(d)
    assert "qcow2.yaml" in str(exc.value)


def test_shared_file_names_must_agree(tmp_path):
    d = _copy_formats(tmp_path)
    path = d / "ami.yaml"
    path.write_text(path.read_text().replace("family: raw", "family: qcow2"))
    with pytest.raises(FormatError, match="both write '{basename}.raw' but make it differently"):
        load_formats(d)
