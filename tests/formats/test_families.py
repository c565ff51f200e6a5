"""The family registry: every format is an object of its family's class, and each class
says which options its data files may give (anything else is refused, naming the file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from appbuilder.formats.families import families, family
from appbuilder.formats.families.base import FAMILIES, Option, QemuImgFormat
from appbuilder.formats.families.qcow2 import Qcow2
from appbuilder.formats.families.raw import Raw
from appbuilder.formats.families.vhd import Vhd
from appbuilder.formats.families.vmdk import Ova, Vmdk
from appbuilder.formats.specs import DATA_DIR, TARGETS_FILE, FormatError, load_formats

PACKAGED = {"ami": Raw, "raw": Raw, "qcow2": Qcow2, "vmdk": Vmdk, "vmdk-esx": Vmdk, "ova": Ova,
            "vhd": Vhd, "vhd-dynamic": Vhd}


def test_every_packaged_format_is_an_object_of_its_family():
    specs = load_formats()
    assert {name: type(spec) for name, spec in specs.items()} == PACKAGED
    for path in sorted(DATA_DIR.glob("*.yaml")):
        if path.name == TARGETS_FILE:  # the device table beside the formats, not a format
            continue
        declared = yaml.safe_load(path.read_text())["family"]
        assert family(declared) is PACKAGED[path.stem] is FAMILIES[declared]
        assert specs[path.stem].path == path


def test_the_registry_holds_one_class_per_family():
    assert families() == {"ova": Ova, "qcow2": Qcow2, "raw": Raw, "vhd": Vhd, "vmdk": Vmdk}
    assert [cls.family for cls in families().values()] == ["ova", "qcow2", "raw", "vhd", "vmdk"]
    with pytest.raises(TypeError, match="two format families are called 'vmdk'"):
        class Again(Vmdk, family="vmdk"):
            pass
    assert FAMILIES["vmdk"] is Vmdk


@pytest.mark.parametrize("cls", [Raw, Qcow2, Vmdk, Ova, Vhd])
def test_every_family_documents_itself_and_its_options(cls):
    text = cls.describe()
    assert text.startswith(f"family {cls.family}\n")
    assert len(cls.__doc__.split()) > 40  # what a user reads, not a one-liner
    for key, opt in cls.OPTIONS.items():
        assert f"  {key}: {opt.help}" in text
    for choice in cls.DRIVE_FORMATS:
        assert choice in text


def test_what_families_make_differently():
    specs = load_formats()
    assert [specs[n].drive_format for n in ("raw", "qcow2", "vmdk", "ova", "vhd")] == ["raw", "qcow2", "vmdk", "vmdk",
                                                                                         "vpc"]
    assert specs["raw"].copies_raw and specs["ami"].copies_raw and not specs["qcow2"].copies_raw
    assert [n for n, s in specs.items() if s.heavy] == ["ova", "qcow2", "vmdk-esx"]
    assert specs["vmdk-esx"].writer == specs["ova"].writer == "appbuild" and specs["vmdk"].writer == "qemu-img"
    # what qemu-img is told: the family's options in their declared order, booleans as on/off
    assert specs["qcow2"].qemu_img.option_string == "compat=1.1,cluster_size=65536,compression_type=zlib"
    assert specs["vhd-dynamic"].qemu_img.option_string == "subformat=dynamic,force_size=on"
    assert specs["vmdk"].qemu_img.option_string == "subformat=monolithicSparse,adapter_type=lsilogic"
    assert [specs[n].label for n in ("raw", "qcow2", "vmdk-esx", "vhd")] == [
        "raw copy", "qcow2 compressed", "vmdk streamOptimized, appbuild writer", "vpc fixed"]
    assert specs["ova"].archive.members[0] == "{basename}.ovf"


# ---------------------------------------------------------------- what a data file may say


def _workspace(tmp_path: Path) -> Path:
    d = tmp_path / "formats"
    d.mkdir()
    return d


def _write(d: Path, name: str, text: str) -> Path:
    path = d / f"{name}.yaml"
    path.write_text(text)
    return path


QCOW2 = """name: qcow2
family: qcow2
description: test
arches: [x86_64, x86]
disk:
  file: "{basename}.qcow2"
"""


@pytest.mark.parametrize("disk_lines, message", [
    ("  colour: blue\n", r"disk: unknown options \['colour'\] for the qcow2 family; it takes: file, compat, "
                         r"cluster_size, compression_type, lazy_refcounts, compress"),
    ("  subformat: fixed\n", r"disk: unknown options \['subformat'\] for the qcow2 family"),
    ("  compat: '2.0'\n", r"disk.compat must be one of 0.10, 1.1 \(got '2.0'\)"),
    ("  compat: 1.1\n  compression_type: lz4\n", r"disk.compression_type must be one of zlib, zstd"),
    ("  cluster_size: big\n", r"disk.cluster_size must be a whole number \(got 'big'\)"),
    ("  compress: 'yes'\n", r"disk.compress must be true or false \(got 'yes'\)"),
])
def test_options_the_family_does_not_take_are_refused_naming_the_file(tmp_path, disk_lines, message):
    d = _workspace(tmp_path)
    path = _write(d, "qcow2", QCOW2 + disk_lines)
    with pytest.raises(FormatError, match=message) as exc:
        load_formats(d)
    assert str(exc.value).startswith(f"{path}: ")


@pytest.mark.parametrize("name, text, message", [
    ("thing", QCOW2.replace("qcow2", "thing"), "unknown family 'thing'; known families: ova, qcow2, raw, vhd, vmdk"),
    ("nofamily", QCOW2.replace("qcow2", "nofamily").replace("family: nofamily\n", ""), "missing 'family'"),
    ("vhd2", "name: vhd2\nfamily: vhd\ndescription: x\narches: [x86]\ndisk: {file: '{basename}.v2'}\n",
     r"disk.subformat is required for the vhd family \(fixed, dynamic\)"),
    ("vm2", "name: vm2\nfamily: vmdk\ndescription: x\narches: [x86]\n"
            "disk: {file: '{basename}-2.vmdk', subformat: monolithicSparse, writer: appbuild}\n",
     "writer appbuild writes streamOptimized VMDKs only"),
    ("raw2", "name: raw2\nfamily: raw\ndescription: x\narches: [x86]\ndisk: {file: '{basename}-2.raw'}\n"
             "archive: {file: '{basename}.tar', members: ['{basename}-2.raw']}\n", r"unknown keys \['archive'\]"),
    ("ova2", (DATA_DIR / "ova.yaml").read_text().replace("name: ova", "name: ova2")
     .replace('members: ["{basename}.ovf", "{basename}.mf"', 'members: ["{basename}.mf", "{basename}.ovf"'),
     r"archive.members must start with the OVF descriptor"),
    ("ova3", (DATA_DIR / "ova.yaml").read_text().replace("name: ova", "name: ova3")
     .replace("subformat: streamOptimized", "subformat: monolithicSparse").replace("  writer: appbuild\n", ""),
     "an OVA holds a streamOptimized VMDK"),
])
def test_broken_workspace_formats_are_refused_naming_the_file(tmp_path, name, text, message):
    d = _workspace(tmp_path)
    path = _write(d, name, text)
    with pytest.raises(FormatError, match=message) as exc:
        load_formats(d)
    assert str(exc.value).startswith(f"{path}: ")
    assert sorted(load_formats()) == sorted(PACKAGED)  # the packaged formats are untouched


def test_the_family_fills_in_its_defaults(tmp_path):
    d = _workspace(tmp_path)
    _write(d, "vhd-small", "name: vhd-small\nfamily: vhd\ndescription: x\narches: [x86_64]\n"
                           "disk: {file: '{basename}-small.vhd', subformat: dynamic}\n")
    _write(d, "vmdk-plain", "name: vmdk-plain\nfamily: vmdk\ndescription: x\narches: [x86_64]\n"
                            "disk: {file: '{basename}-plain.vmdk', subformat: monolithicSparse}\n")
    specs = load_formats(d)
    assert specs["vhd-small"].qemu_img.option_string == "subformat=dynamic,force_size=on"
    assert specs["vmdk-plain"].qemu_img.option_string == "subformat=monolithicSparse,adapter_type=lsilogic"
    assert specs["vmdk-plain"].writer == "qemu-img"


# ---------------------------------------------------------------- a new family: one class, one data file


@pytest.fixture
def vdi_family():
    """VirtualBox's VDI as a family of its own, defined here as a user would in a module."""

    class Vdi(QemuImgFormat, family="vdi-test"):
        """A VirtualBox disk image, made by ``qemu-img convert -O vdi`` (dynamic unless
        ``static``) and checked with ``qemu-img info`` and ``check``. Boot tests attach it
        as ``format=vdi``. (Its header holds random UUIDs: not reproducible as it is; a
        real family would derive them from the image as the VHD family does.)"""

        QEMU_FORMAT = "vdi"
        DRIVE_FORMATS = ("vdi",)
        OPTIONS = {"static": Option("allocate the whole disk", kind=bool, default=False)}

    yield Vdi
    del FAMILIES["vdi-test"]


def test_a_new_family_is_one_class_and_one_data_file(vdi_family, test_disk, meta, tmp_path):
    from appbuilder.formats.convert import convert_all

    d = _workspace(tmp_path)
    _write(d, "vdi", "name: vdi\nfamily: vdi-test\ndescription: VirtualBox disk\narches: [x86_64, x86]\n"
                     "disk: {file: '{basename}.vdi'}\n")
    assert isinstance(load_formats(d)["vdi"], vdi_family)
    out = convert_all(test_disk, "vdi,raw", tmp_path / "out", meta, formats_dir=d)
    vdi = out["vdi"][0]
    assert vdi.name == f"{meta.basename}.vdi"
    cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "vdi", str(test_disk), str(vdi)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    disk, drive = load_formats(d)["vdi"].boot_drive(out["vdi"], tmp_path)
    assert (disk, drive) == (vdi, "vdi")

