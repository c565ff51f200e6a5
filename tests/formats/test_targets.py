"""The device table (appbuilder/formats/data/targets.yaml, read by appbuilder.formats.targets):
which kernel modules each target needs, which formats are for which targets, a workspace's
own table, and a broken table refused with the file and the fault named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from appbuilder.assemble.kernel import MissingModule
from appbuilder.formats.specs import DATA_DIR, TARGETS_FILE, load_formats
from appbuilder.formats.targets import TargetTableError, load_targets, targets_path

# what issue 13 asks each target to carry, and where (disk: the initramfs; network: the root)
WANTED = {
    "vmware": ({"mptspi", "mptsas", "vmw_pvscsi"}, {"vmxnet3", "e1000", "e1000e"}),
    "virtualbox": ({"ahci", "mptsas"}, {"e1000", "virtio_net"}),
    "hyperv": ({"hv_vmbus", "hv_storvsc"}, {"hv_netvsc"}),
    "ec2": ({"nvme"}, {"ena"}),
    "xen": ({"xen_blkfront"}, {"xen_netfront"}),
    "kvm": ({"virtio_blk"}, {"virtio_net"}),
    "qemu": ({"sym53c8xx"}, set()),
    "buslogic": ({"BusLogic"}, set()),
}


def test_the_packaged_table_has_every_target_with_its_modules():
    table = load_targets()
    assert table.path == DATA_DIR / TARGETS_FILE
    assert set(table.targets) == set(WANTED)
    for name, (disk, network) in WANTED.items():
        target = table.targets[name]
        assert disk <= set(target.disk), name
        assert network <= set(target.network), name
        assert target.title
    assert {"sd_mod", "sr_mod"} <= set(table.common.disk)  # any SCSI/SATA disk, CD-ROMs (config drives)


def test_an_image_keeps_every_targets_modules_for_its_arch():
    table = load_targets()
    x86_64, x86 = table.device_modules("x86_64"), table.device_modules("x86")
    every_disk = {m for t in [table.common, *table.targets.values()] for m in t.disk}
    assert set(x86_64.disk) == every_disk and len(x86_64.disk) == len(set(x86_64.disk))
    assert {"ena", "hv_netvsc", "xen_netfront", "vmxnet3", "e1000e", "virtio_net"} <= set(x86_64.network)
    # EC2 Nitro runs 64-bit only: the 32-bit image does without the ENA (NVMe stays: VMware, VirtualBox, QEMU)
    assert table.targets["ec2"].arches == ("x86_64",)
    assert "ena" not in x86.network and "nvme" in x86.disk
    assert [t.target for t in x86_64.targets] == ["common", *table.targets]


def test_which_formats_are_for_which_targets():
    table = load_targets()
    formats = load_formats()
    names = {name: [t.name for t in table.targets_of(spec)] for name, spec in formats.items()}
    assert names["ami"] == ["ec2", "xen"]  # its own entry wins over its family's (raw)
    assert names["raw"] == ["kvm", "qemu", "xen", "ec2"]
    assert names["vhd"] == names["vhd-dynamic"] == ["hyperv", "virtualbox"]  # by family
    assert names["vmdk-esx"] == names["ova"] == ["vmware", "virtualbox", "buslogic"]
    assert [t.name for t in table.targets_of(formats["ami"], "x86")] == ["xen"]  # 32-bit AMIs: Xen only


def test_formats_no_target_could_use_are_named():
    table = load_targets()
    formats = load_formats()
    specs = [formats[n] for n in ("raw", "ami", "vhd")]
    xen = [MissingModule("xen", "xen_blkfront", "6.1.0-57-686"), MissingModule("xen", "xen_netfront", "6.1.0-57-686")]
    lines = table.unserved(specs, "x86", xen)
    assert lines == ["format ami on x86: the kernel lacks drivers of every target it is made for "
                     "(xen: no xen_blkfront, xen_netfront); such a machine may find no disk or no network"]
    assert table.unserved(specs, "x86_64", xen) == []  # a 64-bit AMI still runs on Nitro
    assert table.unserved(specs, "x86_64", []) == []
    common = [MissingModule("common", "sd_mod", "k")]
    assert len(table.unserved(specs, "x86_64", common)) == 3  # every target needs what common names


def _workspace(tmp_path: Path) -> Path:
    d = tmp_path / "formats"
    d.mkdir()
    shutil.copy(DATA_DIR / TARGETS_FILE, d / TARGETS_FILE)
    return d


def test_a_workspace_table_replaces_the_packaged_one_and_is_no_format(tmp_path):
    d = _workspace(tmp_path)
    data = yaml.safe_load((d / TARGETS_FILE).read_text())
    data["targets"]["proxmox-megaraid"] = {"title": "Proxmox with MegaRAID SAS", "disk": ["megaraid_sas"]}
    data["formats"]["qcow2"].append("proxmox-megaraid")
    (d / TARGETS_FILE).write_text(yaml.safe_dump(data))
    assert targets_path(d) == d / TARGETS_FILE and targets_path(tmp_path / "none") == DATA_DIR / TARGETS_FILE
    table = load_targets(d)
    assert "megaraid_sas" in table.device_modules("x86").disk
    assert "targets" not in load_formats(d) and "targets" not in load_formats()
    # a changed file is read again
    data["targets"]["proxmox-megaraid"]["disk"] = ["megaraid_sas", "mpt3sas"]
    (d / TARGETS_FILE).write_text(yaml.safe_dump(data) + "# changed\n")
    assert "mpt3sas" in load_targets(d).device_modules("x86").disk


@pytest.mark.parametrize("edit, message", [
    (lambda t: t + ": : :\n", "not valid YAML"),
    (lambda t: "- a list\n", "expected a mapping with targets:"),
    (lambda t: t + "devices: {}\n", r"unknown keys \['devices'\]; valid keys: common, targets, formats"),
    (lambda t: t.replace("targets:\n  vmware:", "targets_:\n  vmware:"), r"unknown keys \['targets_'\]"),
    (lambda t: t.replace("    disk: [nvme]\n", "    disk: [nvme, 'rm -rf /']\n"),
     r"targets: ec2: disk: 'rm -rf /' is not a kernel module name"),
    (lambda t: t.replace("    network: [ena]\n", "    network: ena\n"), "targets: ec2: network: expected a list"),
    (lambda t: t.replace("  buslogic:\n", "  BusLogic:\n").replace("[vmware, virtualbox, buslogic]",
                                                                 "[vmware, virtualbox, BusLogic]"),
     "bad target name 'BusLogic'"),
    (lambda t: t.replace("    disk: [BusLogic]\n", "    disk: []\n"), "targets: buslogic: names no disk or network"),
    (lambda t: t.replace("    arches: [x86_64]\n", "    arches: [arm64]\n"),
     r"targets: ec2: arches must be a non-empty list of x86_64, x86"),
    (lambda t: t.replace("    title: Amazon EC2", "    name: Amazon EC2"), r"targets: ec2: unknown keys \['name'\]"),
    (lambda t: t.replace("  vhd: [hyperv, virtualbox]", "  vhdx: [hyperv, virtualbox]"),
     "formats: 'vhdx' is neither a format family .* nor a format"),
    (lambda t: t.replace("  qcow2: [kvm, qemu]", "  qcow2: [kvm, qemu, proxmox]"),
     r"formats: qcow2: unknown targets \['proxmox'\]"),
    (lambda t: t.replace("  vhd: [hyperv, virtualbox]", "  vhd: [virtualbox]"),
     r"no format is made for the targets \['hyperv'\]"),
])
def test_a_broken_table_is_refused_naming_the_file_and_the_fault(tmp_path, edit, message):
    d = _workspace(tmp_path)
    path = d / TARGETS_FILE
    text = path.read_text()
    changed = edit(text)
    assert changed != text, "the edit must change the table"
    path.write_text(changed)
    with pytest.raises(TargetTableError, match=message) as exc:
        load_targets(d)
    assert str(exc.value).startswith(f"{path}: ")


def test_a_broken_table_stops_a_build_before_any_work(tmp_path):
    """Through the command line: one line naming the file, no traceback, nothing built."""
    import subprocess
    import sys

    ws = tmp_path / "ws"
    (ws / "repo").mkdir(parents=True)
    (ws / "groups").mkdir()
    (ws / "repo" / "config.yaml").write_text("label: test@appbuild:1\n")
    (ws / "formats").mkdir()
    (ws / "formats" / TARGETS_FILE).write_text("targets: {}\n")
    proc = subprocess.run([str(Path(sys.executable).with_name("appbuild")), "group-none", "--no-cook"], cwd=ws,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "APPBUILD_WORKSPACE": str(ws)},
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"{ws / 'formats' / TARGETS_FILE}: targets: must map target names to their modules" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_formats_readme_shows_the_table_as_it_is():
    """appbuilder/formats/data/README.md shows the device table; it must not drift from the data."""
    table = load_targets()
    formats = load_formats()
    text = (DATA_DIR / "README.md").read_text().split("## The device table", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] not in ("target",):
            rows[cells[0].split()[0]] = cells[1:]
    assert set(rows) == {"common", *table.targets}
    for target in [table.common, *table.targets.values()]:
        disk, network, made = rows[target.name]
        assert disk == ", ".join(target.disk) and network == ", ".join(target.network), target.name
        if target.name != "common":
            assert set(made.split(", ")) == {n for n, s in formats.items() if target in table.targets_of(s)}, target.name
