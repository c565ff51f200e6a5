"""Boot an image in QEMU and wait for a line on its serial console.

The boot test of every image: QEMU with the image as a virtio (or IDE) disk in
snapshot mode (the image file is never modified; ``BootOptions(snapshot=False)`` writes
into it, for a test that boots one disk twice), the serial console on a pipe, and
a deadline. Software emulation (TCG) is the default; set ``APPBUILD_QEMU_ACCEL=kvm``
to opt into KVM where it works (nested KVM hangs on some hosts). A guest reaches host
services only through ``-netdev user,restrict=on,guestfwd=...`` to loopback ports, and
the host reaches the guest only through ``hostfwd=`` from a port on 127.0.0.1 (an SSH
login test). ``network`` moves the user network (``169.254.0.0/16`` puts a forward at
the metadata address 169.254.169.254, which must lie inside it).

:func:`boot_until` waits for one line and stops the guest (the tests' harness that
keeps a guest running while it reads one line after another is ``tests/guest.py``).

Each guest connection to a forwarded address gets its own connection to the host
port: the forward runs a small relay per connection (``cmd:``, see :func:`relay`).
QEMU's other kind of forward (``tcp:`` to a character device) connects once, when
QEMU starts, and carries every guest connection over that one stream; it also makes
QEMU fail to start when the host port is closed.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from appbuilder.core.arch import get_arch
from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import from_environment

BOOT_MARKER = "APPLIANCE-BOOT-OK"

#: disk controllers a boot test can put the image behind (``BootOptions.controller``): the
#: QEMU devices, the last holding the disk (drive ``d0``), as VMware (pvscsi, mptsas1068),
#: VirtualBox (ahci, mptsas1068), Proxmox (lsi53c895a, its default) or EC2 (nvme) show it.
#: QEMU's mptsas1068 reports a disk's WWN as its SAS address, and Linux's mptsas skips a
#: device whose address is 0 (scsi-hd's default): hence the wwn.
CONTROLLERS: dict[str, tuple[str, ...]] = {
    "virtio": ("virtio-blk-pci,drive=d0,bootindex=0",),
    "lsi53c895a": ("lsi53c895a,id=scsi0", "scsi-hd,drive=d0,bus=scsi0.0,bootindex=0"),
    "mptsas1068": ("mptsas1068,id=scsi0", "scsi-hd,drive=d0,bus=scsi0.0,bootindex=0,wwn=0x5000c50000a00b01"),
    "pvscsi": ("pvscsi,id=scsi0", "scsi-hd,drive=d0,bus=scsi0.0,bootindex=0"),
    "ahci": ("ahci,id=ahci0", "ide-hd,drive=d0,bus=ahci0.0,bootindex=0"),
    "nvme": ("nvme,serial=appbuild,drive=d0,bootindex=0",),
}
#: network cards a boot test can give the guest (``BootOptions.nic``): QEMU's device names
NICS = ("virtio-net-pci", "e1000", "e1000e", "vmxnet3")


@dataclass
class BootResult:
    found: bool
    seconds: float  # from QEMU start to the marker (or to the deadline)
    console: str
    line: str = ""  # the console line holding the marker


@dataclass
class BootOptions:
    arch: str
    drive_format: str = "raw"  # qemu's -drive format= (vpc for VHD, vmdk, qcow2, raw)
    interface: str = "virtio"  # virtio or ide (qemu's -drive if=), unless a controller is given
    controller: str | None = None  # a disk controller of CONTROLLERS instead (lsi53c895a, nvme, ...)
    nic: str | None = None  # a network card of NICS on QEMU's user network (its DHCP server); default
                            # virtio-net-pci when forwards are given, else no network
    memory_mib: int = 256
    timeout: float = 60.0
    extra_drives: list[tuple[Path, str, str]] = field(default_factory=list)  # (file, format, interface)
    guestfwd: list[tuple[str, int, int]] = field(default_factory=list)  # (guest ip, guest port, host port)
    hostfwd: list[tuple[int, int]] = field(default_factory=list)  # (host port on 127.0.0.1, guest port)
    network: str | None = None  # the user network's address range (QEMU's default: 10.0.2.0/24)
    extra_args: list[str] = field(default_factory=list)
    accel: str | None = None  # QEMU accelerator (default: the qemu.accel setting, tcg)
    snapshot: bool = True  # writes go to a throw-away overlay; False: into the image file


def qemu_argv(image: Path, opts: BootOptions) -> list[str]:
    qemu = shutil.which(get_arch(opts.arch).qemu)
    if not qemu:
        raise AppbuildError(f"{get_arch(opts.arch).qemu} is not installed (apt-get install qemu-system-x86)")
    accel = opts.accel or from_environment("qemu.accel")
    argv = [qemu, "-accel", accel, "-m", str(opts.memory_mib), "-display", "none", "-no-reboot",
            *(["-snapshot"] if opts.snapshot else []), "-monitor", "none", "-serial", "stdio",
            *_disk_argv(image, opts)]
    for path, fmt, iface in opts.extra_drives:
        argv += ["-drive", f"file={path},format={fmt},if={iface},readonly=on"]
    if opts.nic is not None and opts.nic not in NICS:
        raise AppbuildError(f"unknown network card {opts.nic!r}; valid: {', '.join(NICS)}")
    if opts.guestfwd or opts.hostfwd or opts.nic:
        netdev = ["user", "id=net0", "restrict=on"] + ([f"net={opts.network}"] if opts.network else [])
        netdev += [f"hostfwd=tcp:127.0.0.1:{int(host)}-:{int(guest)}" for host, guest in opts.hostfwd]
        netdev += [f"guestfwd=tcp:{ip}:{port}-cmd:{relay_command(host_port)}" for ip, port, host_port in opts.guestfwd]
        argv += ["-netdev", ",".join(netdev), "-device", f"{opts.nic or 'virtio-net-pci'},netdev=net0"]
    else:
        argv += ["-nic", "none"]
    return argv + opts.extra_args


def _disk_argv(image: Path, opts: BootOptions) -> list[str]:
    """The image as QEMU's -drive if= (virtio, ide), or behind one of :data:`CONTROLLERS`."""
    if opts.controller is None:
        return ["-drive", f"file={image},format={opts.drive_format},if={opts.interface}"]
    if opts.controller not in CONTROLLERS:
        raise AppbuildError(f"unknown disk controller {opts.controller!r}; valid: {', '.join(CONTROLLERS)}")
    argv = ["-drive", f"file={image},format={opts.drive_format},if=none,id=d0"]
    for device in CONTROLLERS[opts.controller]:
        argv += ["-device", device]
    return argv


def boot_until(image: Path, opts: BootOptions, *, marker: str = BOOT_MARKER, keep_running: float = 0.0,
               until: str | None = None) -> BootResult:
    """Boot *image*; stop when the console shows *marker* (or *until*, if given) or at the deadline.

    *keep_running* seconds of console are still collected after the marker.
    """
    start = time.monotonic()
    proc = subprocess.Popen(qemu_argv(image, opts), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    console = bytearray()
    found_at = None
    target = (until or marker).encode()
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            now = time.monotonic()
            if found_at is not None and now - found_at >= keep_running:
                break
            if now - start > opts.timeout:
                break
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                console += chunk
                at = console.find(target) if found_at is None else -1
                if at >= 0 and console.find(b"\n", at) >= 0:  # the whole line has arrived
                    found_at = time.monotonic()
    finally:
        proc.kill()
        proc.wait()
    text = console.decode(errors="replace")
    line = next((ln.strip() for ln in text.splitlines() if marker in ln), "")
    seconds = (found_at - start) if found_at is not None else time.monotonic() - start
    return BootResult(found_at is not None, seconds, text, line)


# ---------------------------------------------------------------- forwarding guest connections


def relay_command(host_port: int) -> str:
    """The ``cmd:`` QEMU runs for each guest connection to a forwarded address (no commas:
    QEMU's option syntax would need them doubled)."""
    command = f"{sys.executable} -m appbuilder.verify.boot relay 127.0.0.1 {int(host_port)}"
    return command.replace(",", ",,")


def relay(host: str, port: int) -> int:
    """Copy bytes between stdin/stdout (QEMU's end of one guest connection) and host:port.

    A closed host port ends the guest's connection at once, as a dead server would."""
    # stderr is the guest's connection too: nothing may be written there
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        upstream = socket.create_connection((host, port), timeout=10)
    except OSError:
        return 1
    upstream.settimeout(None)
    guest_in, guest_out = 0, 1
    open_in, open_up = True, True
    while open_up:
        watch = ([guest_in] if open_in else []) + [upstream]
        ready, _, _ = select.select(watch, [], [])
        if guest_in in ready:
            data = os.read(guest_in, 65536)
            if data:
                upstream.sendall(data)
            else:
                open_in = False
                upstream.shutdown(socket.SHUT_WR)
        if upstream in ready:
            data = upstream.recv(65536)
            if data:
                view = memoryview(data)
                while view:
                    view = view[os.write(guest_out, view):]
            else:  # the host side is done: the guest sees the end of the stream
                open_up = False
                try:
                    socket.socket(fileno=os.dup(guest_out)).shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                break
    upstream.close()
    return 0


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "relay":
    sys.exit(relay(sys.argv[2], int(sys.argv[3])))
