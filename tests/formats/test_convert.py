"""convert_all: every format converts, verifies, is reproducible and all-or-nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from appbuilder.core.errors import AppbuildError
from appbuilder.formats import vhd, vmdk
from appbuilder.formats.convert import OutputExists, convert_all
from appbuilder.formats.ova import extract_disk
from appbuilder.formats.descriptors import FileInfo, render
from appbuilder.formats.specs import DATA_DIR, FormatError, get_format
from tests.conftest import sigint_as_from_a_terminal
from tests.disks import EPOCH, image_meta

MIB = 1 << 20
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
PROJECT = Path(__file__).resolve().parents[2]

# disk file of each format, and what qemu-img must say about it
DISKS = {
    "raw": ("raw", None),
    "qcow2": ("qcow2", None),
    "vmdk": ("vmdk", "monolithicSparse"),
    "vmdk-esx": ("vmdk", "streamOptimized"),
    "vhd": ("vpc", None),
    "vhd-dynamic": ("vpc", None),
    "ami": ("raw", None),
}


def qemu_info(path: Path, fmt: str | None = None) -> dict:
    argv = ["qemu-img", "info", "--output=json"] + (["-f", fmt] if fmt else []) + [str(path)]
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def disk_of(converted, fmt: str) -> Path:
    return next(p for p in converted[fmt] if p.suffix in (".raw", ".qcow2", ".vmdk", ".vhd"))


def test_every_format_is_written(converted, meta):
    b = meta.basename
    names = {fmt: sorted(p.name for p in paths) for fmt, paths in converted.items()}
    assert names == {
        "ami": sorted([f"{b}.raw", f"{b}.ami.json"]),
        "ova": [f"{b}.ova"],
        "qcow2": [f"{b}.qcow2"],
        "raw": [f"{b}.raw"],
        "vhd": [f"{b}.vhd"],
        "vhd-dynamic": [f"{b}-dynamic.vhd"],
        "vmdk": sorted([f"{b}.vmdk", f"{b}.vmx"]),
        "vmdk-esx": sorted([f"{b}-disk1.vmdk", f"{b}.mf", f"{b}.ovf"]),
    }
    out = converted["raw"][0].parent
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


@pytest.mark.parametrize("fmt", sorted(DISKS))
def test_qemu_img_info_check_and_compare(converted, test_disk, meta, fmt):
    qemu_fmt, subformat = DISKS[fmt]
    disk = disk_of(converted, fmt)
    info = qemu_info(disk, qemu_fmt)
    assert info["format"] == qemu_fmt
    assert info["virtual-size"] == meta.disk_size == test_disk.stat().st_size
    if subformat:
        assert info["format-specific"]["data"]["create-type"] == subformat
    check = subprocess.run(["qemu-img", "check", "-f", qemu_fmt, str(disk)], capture_output=True, text=True)
    if qemu_fmt == "vpc":
        assert check.returncode == 63 and "does not support checks" in check.stderr  # unsupported, specifically
    elif qemu_fmt != "raw":
        assert check.returncode == 0, check.stdout + check.stderr
        assert "No errors were found" in check.stdout
    cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", qemu_fmt, str(test_disk), str(disk)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0 and "Images are identical" in cmp.stdout, cmp.stdout + cmp.stderr


def test_fixed_vhd_is_probed_as_raw_without_f_vpc(converted, meta):
    """Why every consumer must say format=vpc (measured-here.md §4): the footer looks like data."""
    info = qemu_info(disk_of(converted, "vhd"))
    assert info["format"] == "raw" and info["virtual-size"] == meta.disk_size + 512


@pytest.mark.parametrize("fmt, kind", [("vhd", 2), ("vhd-dynamic", 3)])
def test_vhd_footer(converted, meta, fmt, kind):
    path = disk_of(converted, fmt)
    raw = path.read_bytes()
    footer = raw[-512:]
    assert footer[:8] == b"conectix"
    assert int.from_bytes(footer[60:64], "big") == kind
    size = int.from_bytes(footer[48:56], "big")
    assert size == meta.disk_size and size % MIB == 0
    assert int.from_bytes(footer[40:48], "big") == size  # original size
    stored = int.from_bytes(footer[64:68], "big")
    assert stored == (~sum(footer[:64] + bytes(4) + footer[68:]) & 0xFFFFFFFF)
    assert int.from_bytes(footer[24:28], "big") == EPOCH - 946684800  # timestamp: source_date_epoch
    assert footer[68:84] == meta.derived_uuid(f"vhd-unique-id:{path.name}").bytes
    if kind == 2:
        assert path.stat().st_size == meta.disk_size + 512
    else:
        assert raw[:512] == footer  # a dynamic VHD starts with a copy of its footer
        assert raw[512:520] == b"cxsparse"
    parsed = vhd.read_footer(path)
    assert parsed.kind == ("fixed" if kind == 2 else "dynamic") and parsed.unix_time == EPOCH


def test_vmdk_descriptors_are_fixed(converted, meta):
    for fmt in ("vmdk", "vmdk-esx"):
        path = disk_of(converted, fmt)
        text = vmdk.read_descriptor(path)
        assert vmdk.descriptor_value(text, "CID") == f"{meta.derived_u32(f'vmdk-cid:{path.name}'):08x}"
        assert f'SPARSE "{path.name}"' in text  # the final name, not the temporary one
        assert vmdk.read_header(path).compressed == (fmt == "vmdk-esx")


def test_raw_copy_is_sparse(converted, test_disk):
    raw = converted["raw"][0]
    assert raw.read_bytes() == test_disk.read_bytes()
    assert raw.stat().st_blocks * 512 < raw.stat().st_size


def test_vmx_names_the_disk(converted, meta):
    vmx = next(p for p in converted["vmdk"] if p.suffix == ".vmx").read_text()
    values = dict(re.findall(r'^(\S+) = "(.*)"$', vmx, re.M))
    assert values["scsi0:0.fileName"] == f"{meta.basename}.vmdk"
    assert values["scsi0.virtualDev"] == "lsilogic"
    assert values["guestOS"] == "otherlinux-64"
    assert values["memsize"] == str(meta.memory_mib) and values["numvcpus"] == str(meta.cpus)
    assert values["serial0.fileType"] == "file"
    assert values["displayName"] == meta.basename


def test_ova_is_a_deterministic_tar_with_the_ovf_first(converted, meta, test_disk, tmp_path):
    ova = converted["ova"][0]
    b = meta.basename
    with tarfile.open(ova) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [f"{b}.ovf", f"{b}.mf", f"{b}-disk1.vmdk"]
        for m in members:
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime, m.mode) == (0, 0, "", "", EPOCH, 0o644)
        data = {m.name: tar.extractfile(m).read() for m in members}
    assert ova.read_bytes()[257:262] == b"ustar"
    # the manifest's SHA256 lines match the members
    import hashlib
    lines = data[f"{b}.mf"].decode().splitlines()
    assert lines == [f"SHA256({n})= {hashlib.sha256(data[n]).hexdigest()}" for n in (f"{b}.ovf", f"{b}-disk1.vmdk")]
    # the OVF is OVF 1.0 XML and describes the disk
    root = ET.fromstring(data[f"{b}.ovf"])
    assert root.tag == f"{{{OVF_NS}}}Envelope"
    f = root.find(f"{{{OVF_NS}}}References/{{{OVF_NS}}}File")
    assert f.get(f"{{{OVF_NS}}}href") == f"{b}-disk1.vmdk"
    assert int(f.get(f"{{{OVF_NS}}}size")) == len(data[f"{b}-disk1.vmdk"])
    disk = root.find(f"{{{OVF_NS}}}DiskSection/{{{OVF_NS}}}Disk")
    assert int(disk.get(f"{{{OVF_NS}}}capacity")) == meta.disk_size
    assert disk.get(f"{{{OVF_NS}}}format").endswith("#streamOptimized")
    system = root.find(f"{{{OVF_NS}}}VirtualSystem")
    assert system.find(f"{{{OVF_NS}}}OperatingSystemSection").get(f"{{{OVF_NS}}}id") == "101"
    rasd = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"
    items = system.findall(f"{{{OVF_NS}}}VirtualHardwareSection/{{{OVF_NS}}}Item")
    types = {i.find(f"{rasd}ResourceType").text: i for i in items}
    # CPU, memory, SCSI controller, NIC, disk; an IDE controller and the CD-ROM the OVF environment comes on
    assert set(types) == {"3", "4", "5", "6", "10", "15", "17"}
    assert types["4"].find(f"{rasd}VirtualQuantity").text == str(meta.memory_mib)
    assert types["17"].find(f"{rasd}HostResource").text == "ovf:/disk/vmdisk1"
    assert root.find(f"{{{OVF_NS}}}NetworkSection/{{{OVF_NS}}}Network") is not None
    # the members are the vmdk-esx files, byte for byte; the disk inside reads as the raw disk
    for p in converted["vmdk-esx"]:
        assert data[p.name] == p.read_bytes()
    inner = extract_disk(ova, tmp_path)
    cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "vmdk", str(test_disk), str(inner)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr


def test_ami_manifest(converted, meta):
    import hashlib
    manifest = json.loads(converted["ami"][1].read_text())
    raw = converted["ami"][0]
    assert converted["ami"][0] == converted["raw"][0]  # one raw file serves both formats
    assert manifest == {
        "format_version": 1,
        "name": meta.basename,
        "description": f"group-test={meta.version} (x86_64), built by appbuild",
        "group": "group-test",
        "version": meta.version,
        "arch": "x86_64",
        "architecture": "x86_64",
        "boot_mode": "legacy-bios",
        "root_device_name": "/dev/sda1",
        "virtualization_type": "hvm",
        "ena_support": False,  # the test disk's meta names no drivers: the flags say what the image has
        "nvme_support": False,
        "xen_support": False,
        "volume_type": "gp3",
        "volume_size_gib": 1,
        "source_date_epoch": EPOCH,
        "disk": {"file": raw.name, "format": "raw", "size": meta.disk_size,
                 "sha256": hashlib.sha256(raw.read_bytes()).hexdigest()},
    }


@pytest.mark.parametrize("drivers, config, flags", [
    (("ena", "nvme", "xen_blkfront", "xen_netfront"), ("XEN=y",), (True, True, True)),
    (("ena", "nvme", "xen_blkfront", "xen_netfront"), (), (True, True, False)),  # no CONFIG_XEN: no Xen
    (("nvme", "xen_blkfront"), ("XEN=y",), (False, True, False)),  # no netfront: no Xen
])
def test_ami_flags_follow_the_drivers_the_image_has(test_disk, meta, tmp_path, drivers, config, flags):
    # a disk of 1 GiB and one MiB still needs a volume of a whole number of GiB: 2
    big = dataclasses.replace(meta, drivers=drivers, kernel_config=config, disk_size=(1 << 30) + (1 << 20))
    spec = get_format("ami")
    text = render(DATA_DIR, "ami-manifest.json.j2", meta=big, vars=spec.template_vars("x86_64"), spec=spec,
                  disk=FileInfo(test_disk.name, test_disk), files=[], manifest_files=[])
    manifest = json.loads(text)
    assert (manifest["ena_support"], manifest["nvme_support"], manifest["xen_support"]) == flags
    assert manifest["volume_size_gib"] == 2


def test_x86_descriptors(test_disk, tmp_path):
    meta = image_meta(test_disk, arch="x86")
    out = convert_all(test_disk, "vmdk,ami,vmdk-esx", tmp_path, meta)
    assert 'guestOS = "otherlinux"' in out["vmdk"][1].read_text()
    manifest = json.loads(out["ami"][1].read_text())
    assert (manifest["architecture"], manifest["ena_support"], manifest["xen_support"]) == ("i386", False, False)
    ovf = ET.parse(out["vmdk-esx"][1]).getroot()
    os_section = ovf.find(f"{{{OVF_NS}}}VirtualSystem/{{{OVF_NS}}}OperatingSystemSection")
    assert os_section.get(f"{{{OVF_NS}}}id") == "36"


def test_two_conversions_are_identical(converted, test_disk, meta, tmp_path):
    """Reproducible: the same raw disk, converted again a while later, gives the same bytes."""
    time.sleep(1.1)  # VHD timestamps have 1 s resolution
    again = convert_all(test_disk, "all", tmp_path, meta, jobs=2)
    for fmt, paths in converted.items():
        for first, second in zip(paths, again[fmt]):
            assert first.name == second.name
            assert first.read_bytes() == second.read_bytes(), f"{fmt}: {first.name} differs"


def test_unknown_format_and_arch(test_disk, meta, tmp_path):
    with pytest.raises(FormatError, match="unknown format 'vmdx'; valid formats: ami, ova, qcow2, raw, vhd"):
        convert_all(test_disk, "vmdx", tmp_path, meta)
    with pytest.raises(FormatError, match="unknown architecture 'arm64'"):
        convert_all(test_disk, "raw", tmp_path, image_meta(test_disk, arch="arm64"))
    assert list(tmp_path.iterdir()) == []


def test_raw_must_match_the_metadata(test_disk, meta, tmp_path):
    import dataclasses
    with pytest.raises(AppbuildError, match="the image metadata says"):
        convert_all(test_disk, "raw", tmp_path, dataclasses.replace(meta, disk_size=meta.disk_size + MIB))


def test_existing_outputs_are_refused_unless_forced(test_disk, meta, tmp_path):
    target = tmp_path / f"{meta.basename}.qcow2"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExists, match=rf"{re.escape(target.name)} \(use --force to replace them\)"):
        convert_all(test_disk, "vhd,qcow2", tmp_path, meta)
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # nothing else written either
    out = convert_all(test_disk, "vhd,qcow2", tmp_path, meta, force=True)
    assert out["qcow2"] == [target] and qemu_info(target)["format"] == "qcow2"


def test_a_failed_conversion_leaves_nothing(test_disk, meta, tmp_path):
    formats = tmp_path / "formats"
    import shutil
    shutil.copytree(DATA_DIR, formats)
    spec = formats / "qcow2.yaml"
    spec.write_text(spec.read_text().replace("cluster_size: 65536", "cluster_size: 12345"))
    out = tmp_path / "out"
    with pytest.raises(AppbuildError, match="qemu-img convert to .*qcow2 failed"):
        convert_all(test_disk, "vhd,raw,qcow2,vmdk", out, meta, formats_dir=formats)
    assert list(out.iterdir()) == []


INTERRUPTED = """
import sys
from pathlib import Path
from appbuilder.core.errors import AppbuildError
from appbuilder.formats.convert import convert_all
from tests.disks import image_meta
raw, out = Path(sys.argv[1]), Path(sys.argv[2])
try:
    convert_all(raw, "qcow2,ova,vhd", out, image_meta(raw), jobs=2, progress=lambda m: print(m, flush=True))
except AppbuildError as exc:
    print("error:", exc, flush=True)
    sys.exit(exc.exit_code)
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_ctrl_c_stops_the_conversions_and_leaves_nothing(tmp_path):
    """SIGINT during a compressed conversion: qemu-img killed, no temporaries, no final files."""
    raw = tmp_path / "big.raw"
    with open(raw, "wb") as f:
        for _ in range(160):
            f.write(os.urandom(MIB))  # incompressible: compressing it takes seconds
        f.truncate(192 * MIB)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED, str(raw), str(out)], cwd=PROJECT,
                            stdout=subprocess.PIPE, text=True, preexec_fn=sigint_as_from_a_terminal)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "converting (qcow2 compressed)" in line:
            break
    time.sleep(0.3)
    qemu = [p for p in _children(proc.pid) if "qemu-img" in Path(f"/proc/{p}/cmdline").read_text()]
    assert qemu, f"no qemu-img running: {lines}"
    assert any(p.name.startswith(".appbuild-convert-") for p in out.iterdir())
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(30) == 130, lines + [rest]
    assert "interrupted" in rest
    assert list(out.iterdir()) == []
    time.sleep(0.2)
    for pid in qemu:
        alive = Path(f"/proc/{pid}").exists() and "qemu-img" in Path(f"/proc/{pid}/cmdline").read_text()
        assert not alive, f"qemu-img {pid} still running"


def test_stream_writer_matches_the_disk_whatever_the_thread_count(tmp_path):
    """appbuild's streamOptimized writer: grain/table boundaries, holes, allocated zeros, the last grain."""
    from appbuilder.formats.vmdkstream import GRAIN, write_stream_optimized

    raw = tmp_path / "edges.raw"
    with open(raw, "wb") as f:
        f.truncate(70 * MIB)
        for offset, data in [(0, b"MBR!" * 128), (32 * MIB - GRAIN, os.urandom(GRAIN + 4096)),
                             (40 * MIB, bytes(3 * MIB)), (45 * MIB + 17, b"x" * 70000), (70 * MIB - 512, b"end" * 100)]:
            f.seek(offset)
            f.write(data)
    outs = []
    for jobs in (1, 3):
        out = tmp_path / f"edges-{jobs}.vmdk"
        write_stream_optimized(raw, out, cid=0xC0FFEE, extent_name="edges.vmdk", jobs=jobs)
        outs.append(out.read_bytes())
        cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "vmdk", str(raw), str(out)],
                             capture_output=True, text=True)
        assert cmp.returncode == 0, cmp.stdout + cmp.stderr
        check = subprocess.run(["qemu-img", "check", "-f", "vmdk", str(out)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        info = qemu_info(out, "vmdk")
        assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
        assert info["format-specific"]["data"]["cid"] == 0xC0FFEE
    assert outs[0] == outs[1]
    assert outs[0][-512:] == bytes(512)  # end-of-stream marker
    assert int.from_bytes(outs[0][-1536 + 12:-1536 + 16], "little") == 3  # footer marker before it


def test_boot_drive_names_the_disk_and_its_drive_format(converted, tmp_path):
    from appbuilder.formats.specs import boot_drive, load_formats

    specs = load_formats()
    expected = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vmdk-esx": "vmdk", "ova": "vmdk",
                "vhd": "vpc", "vhd-dynamic": "vpc", "ami": "raw"}
    for fmt, drive in expected.items():
        disk, drive_format = boot_drive(specs[fmt], converted[fmt], tmp_path)
        assert drive_format == drive
        assert qemu_info(disk, drive)["virtual-size"] == converted["raw"][0].stat().st_size
        if fmt == "ova":
            assert disk.parent == tmp_path and disk.suffix == ".vmdk"
