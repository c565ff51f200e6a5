"""The appliance on every hypervisor's devices (issue 13, point 1), with the session's
``appliance`` (group-cernvm, both arches, every format; no image is built here): it boots
behind each disk controller QEMU models (LSI 53C895A, LSI SAS 1068, PVSCSI, AHCI, NVMe,
virtio) and gets a DHCP lease through each network card (vmxnet3, e1000e, virtio-net);
its initramfs and root hold what the device table names; what the kernel lacks is
reported and recorded; the AMI manifest's flags say what the image has."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from appbuilder.formats.targets import load_targets
from appbuilder.verify.boot import BOOT_MARKER, BootOptions, boot_until
from tests.verify.test_appliance import debugfs, extract, image, partitions

BOOT_TIMEOUT = 120  # to the DHCP lease, under TCG on a busy machine

# controllers paired with network cards: every controller and every card in six boots
PAIRS = [
    ("lsi53c895a", "vmxnet3"),  # Proxmox's default SCSI (sym53c8xx); VMware's paravirtual card
    ("mptsas1068", "e1000e"),  # VMware's lsisas1068, VirtualBox's LsiLogic SAS (mptsas)
    ("pvscsi", "virtio-net-pci"),  # VMware PVSCSI (vmw_pvscsi)
    ("ahci", "vmxnet3"),  # SATA: VirtualBox's default, VMware's
    ("nvme", "e1000e"),  # EC2 Nitro's EBS volumes, VMware and VirtualBox NVMe
    ("virtio", "virtio-net-pci"),  # KVM
]


@pytest.mark.slow
@pytest.mark.parametrize("controller, nic", PAIRS)
def test_boots_behind_each_controller_with_a_lease_on_each_card(appliance, controller, nic):
    raw = image(appliance, "x86_64", "raw", ".raw")
    result = boot_until(raw, BootOptions(arch="x86_64", drive_format="raw", controller=controller, nic=nic,
                                         timeout=BOOT_TIMEOUT), until="network: ")
    console = result.console
    assert result.found, f"{controller} + {nic}: no network line within {BOOT_TIMEOUT} s:\n{console[-3000:]}"
    assert result.line.endswith(f"{BOOT_MARKER} group-cernvm cernvm@cvm:2/{appliance.version['x86_64']} x86_64"), (
        console[-3000:])
    lease = re.search(r"^network: eth0 (10\.0\.2\.\d+)/24( via \S+)?\r?$", console, re.M)
    assert lease, f"{controller} + {nic}: no DHCP lease from QEMU's server:\n{console[-2000:]}"
    # drivers for hardware this machine lacks (Hyper-V's, Xen's, the other cards) stay quiet
    assert "cannot load module" not in console and "emergency shell" not in console, console[-2000:]
    print(f"{controller} + {nic}: network {lease.group(1)} after {result.seconds:.1f} s")


def initramfs_modules(raw: Path, tmp_path: Path) -> set[str]:
    """Names of the modules in the initramfs on the boot partition of *raw* (a newc cpio, zstd)."""
    boot = partitions(raw)[0]
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    listing = subprocess.run(["mdir", "-b", "-i", f"{raw}@@{boot[2] * 512}", "::/"], capture_output=True,
                             text=True, env=env, check=True).stdout
    name = next(line.rsplit("/", 1)[-1].strip() for line in listing.splitlines() if "initrd.img-" in line)
    subprocess.run(["mcopy", "-i", f"{raw}@@{boot[2] * 512}", f"::/{name}", str(tmp_path / "initrd")],
                   check=True, env=env)
    data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO((tmp_path / "initrd").read_bytes())).read()
    names, pos = [], 0
    while True:
        header = data[pos:pos + 110]
        assert header[:6] == b"070701", "not a newc cpio"
        namesize, filesize = int(header[94:102], 16), int(header[54:62], 16)
        member = data[pos + 110:pos + 110 + namesize - 1].decode()
        if member == "TRAILER!!!":
            break
        names.append(member)
        pos += (110 + namesize + 3) // 4 * 4 + (filesize + 3) // 4 * 4
    return {n.rsplit("/", 1)[1][:-3].replace("-", "_") for n in names if n.endswith(".ko")}


def recorded(appliance, arch: str) -> dict:
    directory = appliance.settings.images / "group-cernvm" / appliance.version[arch] / arch
    return json.loads((directory / "manifest.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_initramfs_and_root_hold_what_the_device_table_names(appliance, arch, tmp_path):
    table = load_targets()
    devices = table.device_modules(arch)
    missing = {(m["target"], m["module"]) for m in recorded(appliance, arch)["devices"]["missing"]}
    # Debian's 686 kernel is built without Xen (no PAE); the amd64 one has every module
    assert missing == ({("xen", "xen_blkfront"), ("xen", "xen_netfront")} if arch == "x86" else set())
    lacking = {m for _, m in missing}

    in_initramfs = initramfs_modules(image(appliance, arch, "raw", ".raw"), tmp_path)
    wanted_disk = {m.replace("-", "_") for m in devices.disk} - lacking
    assert wanted_disk <= in_initramfs, sorted(wanted_disk - in_initramfs)
    assert {"BusLogic", "sym53c8xx", "mptsas", "hv_storvsc", "nvme", "ext4"} <= in_initramfs  # QEMU has no BusLogic
    assert not {"e1000e", "vmxnet3", "fuse"} & in_initramfs  # network and the group's modules: the root's

    raw = image(appliance, arch, "raw", ".raw")
    fs = extract(raw, partitions(raw)[1], tmp_path / "root.ext4")
    etc_modules = debugfs(fs, "cat /etc/modules").split()
    wanted_net = {m.replace("-", "_") for m in devices.network} - lacking
    assert wanted_net <= set(etc_modules), sorted(wanted_net - set(etc_modules))
    assert {"fuse", "isofs", "vfat"} <= set(etc_modules)  # the group's own kernelModules, still loaded at boot
    assert ("ena" in etc_modules) == (arch == "x86_64")  # EC2 Nitro is 64-bit only
    kernel = recorded(appliance, arch)["kernel"]
    kept = {Path(line.split(":")[0]).name[:-3].replace("-", "_")
            for line in debugfs(fs, f"cat /lib/modules/{kernel}/modules.dep").splitlines() if line}
    assert set(etc_modules) | in_initramfs <= kept  # the root's module index knows every module loaded


@pytest.mark.slow
def test_what_the_kernel_lacks_is_reported_and_recorded_not_fatal(appliance):
    out = appliance.build_output
    for module in ("xen_blkfront", "xen_netfront"):
        assert re.search(rf"^\[x86\] target xen: no module {module} in kernel 6\.1\.\S+-686$", out, re.M), out
    assert "[x86_64] target " not in out
    assert re.search(r"^\[x86\] warning: format ami on x86: the kernel lacks drivers of every target it is made "
                     r"for \(xen: no xen_blkfront, xen_netfront\)", out, re.M), out


@pytest.mark.slow
def test_the_ami_manifest_says_what_the_image_has(appliance, tmp_path):
    for arch, flags in (("x86_64", (True, True, True)), ("x86", (False, True, False))):
        manifest = json.loads(image(appliance, arch, "ami", ".ami.json").read_text())
        assert (manifest["ena_support"], manifest["nvme_support"], manifest["xen_support"]) == flags, arch
        size = manifest["disk"]["size"]
        assert manifest["volume_size_gib"] == -(-size // (1 << 30)) and isinstance(manifest["volume_size_gib"], int)
    # the 32-bit AMI could boot on no EC2 instance (Xen's only run i386): refused before any upload
    proc = subprocess.run([str(Path(sys.executable).with_name("appbuild")), "upload", "ami",
                           str(image(appliance, "x86", "ami", ".ami.json")), "--region", "us-east-1",
                           "--bucket", "never-used", "--endpoint", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    assert proc.returncode == 1 and "a 32-bit AMI runs only on EC2's Xen instance types" in proc.stderr
