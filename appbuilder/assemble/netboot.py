"""The network-booting image: a kernel, an initramfs holding the file system client, and an
empty data partition; the OS itself comes from an fs repository (``appbuild fs publish-group``).

Layout of the raw disk::

    partition 1  FAT, bootable: SYSLINUX, the kernel, the initramfs
    partition 2  ext4 labelled ``appliance-data``, empty: the client's cache, the writable
                 layer and the state of ``appliance update`` (it grows to the end of the disk
                 at first boot, like a classic image's root)

The initramfs (its ``/init`` is ``data/netboot-init``) holds a static busybox, ``cvmfs2``
with the shared libraries it links (found in the group's closure by :mod:`runtime`), the
kernel modules of every machine in the device table plus FUSE, overlayfs and ISO 9660 (and
their index, so ``modprobe`` works in the running system), the repository's public key and
``/etc/appliance-os.conf``: the repository, its servers, the proxy and the pin (the tag the
image boots unless told otherwise: the group version's revision). At boot it mounts the
pinned tag read-only, lays the writable layer over it and starts the appliance's own init;
the marker the appliance prints names the version that runs.

What ``/var/lib/appliance-os`` holds, and how a tag is chosen, is in ``data/netboot-init``'s
header; ``appliance status|update|rollback`` (recipes/appliance-init) work on it in the guest.
"""

from __future__ import annotations

import posixpath
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appbuilder.assemble import bootloader, disk, ext4, initramfs
from appbuilder.assemble import kernel as kernel_mod
from appbuilder.assemble.image import (
    MIB,
    AssembledDisk,
    boot_directory,
    kernel_choice,
    kernel_options,
    static_busybox,
)
from appbuilder.assemble.initramfs import CpioEntry
from appbuilder.assemble.meta import ImageMeta
from appbuilder.assemble.rootfs import ImageEntry, StagedRoot
from appbuilder.assemble.runtime import TreeView, runtime_files
from appbuilder.assemble.sbom import make_inventory
from appbuilder.core.errors import AppbuildError
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import Trove

DATA = Path(__file__).parent / "data"
DATA_LABEL = "appliance-data"
VARIANT = "network"
# what a network boot needs beyond the device table's drivers: the client's FUSE, the overlay
# of the writable layer, a config drive's ISO 9660 (and the CD-ROM it is on)
NETBOOT_MODULES = ("fuse", "overlay", "isofs", "sr_mod")
CLIENT_PATHS = ("/usr/bin/cvmfs2", "/bin/cvmfs2", "/usr/sbin/cvmfs2")
# zstd's strongest level before --ultra: the image is made once and downloaded many times
INITRAMFS_LEVEL = 19
# busybox's modprobe reads the text index; kmod's binary files are left out
INDEX_FILES = ("modules.dep", "modules.alias", "modules.softdep", "modules.symbols", "modules.builtin",
               "modules.order", "modules.devname")
# directories the initramfs makes itself (a closure's symlink of that name cannot be one)
INITRAMFS_DIRS = {"bin", "dev", "etc", "lib", "newroot", "proc", "sys", "tmp", "run", "var", "var/lib"}
SAFE = re.compile(r"^[A-Za-z0-9._~:/@%+=,;|\[\]-]+$")


@dataclass(frozen=True)
class NetbootConfig:
    """Where a network-booting image takes its OS from."""

    repository: str  # the fs repository's name
    servers: str  # CVMFS_SERVER_URL: URLs separated by ';', @fqrn@ is the repository name
    public_key: Path  # the repository's public key (the client trusts no other for it)
    proxy: str = "DIRECT"
    data_size: int = 128 * MIB  # the data partition when no disk size is asked for

    def check(self) -> None:
        for what, value in (("servers", self.servers), ("proxy", self.proxy), ("repository", self.repository)):
            if not value or not SAFE.match(value):
                raise AppbuildError(f"network boot: bad {what} {value!r} (URLs separated by ';' for servers, "
                                    f"e.g. http://cvmfs.example.org/cvmfs/@fqrn@)")
        if not all(u.startswith(("http://", "https://")) for u in self.servers.split(";")):
            raise AppbuildError(f"network boot: servers must be http:// URLs separated by ';', not {self.servers!r}")
        try:
            text = self.public_key.read_text()
        except OSError as exc:
            raise AppbuildError(f"network boot: the public key of {self.repository} ({self.public_key}): "
                                f"{exc.strerror}; make one with 'appbuild fs keygen --repo {self.repository}'") from None
        if "BEGIN PUBLIC KEY" not in text:
            raise AppbuildError(f"network boot: {self.public_key} is not a PEM public key")


def _sh(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def boot_config(group: Trove, arch: str, config: NetbootConfig) -> bytes:
    """``/etc/appliance-os.conf`` of the initramfs (read with ``.`` by its init)."""
    values = {"GROUP": group.name, "ARCH": arch, "REPOSITORY": config.repository, "SERVERS": config.servers,
              "PROXY": config.proxy, "PINNED": group.version.revision}
    return ("# the OS of this network-booting image (appbuild)\n"
            + "".join(f"{k}={_sh(str(v))}\n" for k, v in values.items())).encode()


def _module_index(kern: kernel_mod.Kernel, repo: Repository, names: list[str], work: Path) -> list[CpioEntry]:
    """The text index (modules.dep, .alias, ...) of exactly *names*, made by depmod, as initramfs
    entries: what busybox's modprobe reads when the running OS has no modules of this kernel."""
    root = work / "modindex"
    moddir = root / kern.moddir.lstrip("/")
    for name in names:
        entry = kern.modules[name]
        target = root / entry.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        repo.store.copy_to(entry.sha256, target)
    moddir.mkdir(parents=True, exist_ok=True)
    files = {f.path: f for f in kern.trove.files}
    builtin = files.get(f"{kern.moddir}/modules.builtin")
    (moddir / "modules.builtin").write_bytes(repo.store.read(builtin.sha256) if builtin and builtin.sha256 else b"")
    kept = {kern.modules[n].path[len(kern.moddir) + 1:] for n in names}
    order = files.get(f"{kern.moddir}/modules.order")
    listed = repo.store.read(order.sha256).decode().splitlines() if order and order.sha256 else []
    (moddir / "modules.order").write_text("".join(f"{line}\n" for line in listed if line in kept))
    kernel_mod.regenerate_module_index(root, kern.version)
    return [CpioEntry(f"{kern.moddir.lstrip('/')}/{n}", 0o100644, (moddir / n).read_bytes())
            for n in INDEX_FILES if (moddir / n).is_file()]


def _client(view: TreeView) -> str:
    for path in CLIENT_PATHS:
        if view.regular(path) is not None:
            return path
    raise AppbuildError("network boot needs the file system client in the group: no member holds "
                        f"{' or '.join(CLIENT_PATHS)} (add cvmfs-client)")


def initramfs_entries(repo: Repository, group: Trove, troves: list[Trove], arch: str,
                      config: NetbootConfig) -> list[CpioEntry]:
    """The client and what it links, the key, the configuration, the scripts."""
    view = TreeView(troves)
    items = runtime_files(view, repo.store, _client(view), arch)
    entries = []
    for item in items:
        path = item.path.lstrip("/")
        if item.link is None:
            entries.append(CpioEntry(path, 0o100755, repo.store.read(item.entry.sha256)))
        elif path in INITRAMFS_DIRS:
            # a merged /usr's /lib -> usr/lib: the initramfs has its own /lib, so each file below the
            # target gets its link there instead
            target = posixpath.normpath(posixpath.join(posixpath.dirname(item.path), item.link))
            for other in items:
                if other.entry is not None and other.path.startswith(target + "/"):
                    entries.append(CpioEntry(path + other.path[len(target):], 0o120777, other.path.encode()))
        else:
            entries.append(CpioEntry(path, 0o120777, item.link.encode()))
    entries += [
        CpioEntry("etc/appliance-os.conf", 0o100644, boot_config(group, arch, config)),
        CpioEntry(f"etc/appliance-os/keys/{config.repository}.pub", 0o100644, config.public_key.read_bytes()),
        CpioEntry("etc/udhcpc.script", 0o100755, (DATA / "netboot-udhcpc").read_bytes()),
        CpioEntry("etc/resolv.conf", 0o100644, b""),
        CpioEntry("tmp", 0o041777),
        CpioEntry("run", 0o040755),
        CpioEntry("var/lib/appliance-os", 0o040755),
    ]
    return entries


def os_sboms(repo: Repository, group: Trove, troves: list[Trove], meta_base: dict) -> dict[str, bytes]:
    """The SBOMs beside a network-booting image: they describe the OS it boots (the pinned group
    version), the same for every disk of the version."""
    sde = int(group.info.get("source_date_epoch") or meta_base["source_date_epoch"])
    return make_inventory(repo, group, troves, arch=group.flavor.arch, source_date_epoch=sde,
                          skip=set()).sbom_bytes()


def assemble_netboot(repo: Repository, group: Trove, troves: list[Trove], meta_base: dict, work: Path, *,
                     devices: kernel_mod.DeviceModules, config: NetbootConfig, sboms: dict[str, bytes],
                     size: int | None = None, progress=lambda msg: None) -> AssembledDisk:
    """Build the network-booting raw disk of *group* in *work* (the pin: the group's revision);
    *sboms*: :func:`os_sboms`, made once for all the disks of a build."""
    config.check()
    sde = int(group.info.get("source_date_epoch") or meta_base["source_date_epoch"])
    arch = group.flavor.arch
    kern, builtin, choice = kernel_choice(repo, group, troves, devices, progress)
    for needed in ("fuse", "overlay"):
        if kern.lookup(needed) is None and needed not in builtin:
            raise AppbuildError(f"network boot needs the {needed} module, which kernel {kern.version} lacks")
    # the disks and network cards of every target and what the boot mounts; the group's other
    # kernelModules come from the OS tree, whose /lib/modules matches the kernel of its version
    wanted = [*choice.initramfs, *kern.closure(devices.network, strict=False), *NETBOOT_MODULES]
    modules = kern.closure([m for m in dict.fromkeys(wanted) if kern.lookup(m) is not None], strict=False)

    config_file = next((f for f in kern.trove.files if f.path == f"/boot/config-{kern.version}"), None)
    config_text = repo.store.read(config_file.sha256).decode(errors="replace") if config_file else ""
    compression = initramfs.compression_for(config_text, smallest=True) if config_text else "gzip"
    extra = initramfs_entries(repo, group, troves, arch, config)
    extra += _module_index(kern, repo, modules, work)
    progress(f"network-boot initramfs for kernel {kern.version}: cvmfs2 and {len(modules)} modules ({compression}); "
             f"OS from {config.repository} tag {group.version.revision}")
    initrd = initramfs.build_initramfs(
        busybox=static_busybox(troves, repo, group),
        modules=[(kern.modules[m].path, repo.store.read(kern.modules[m].sha256)) for m in modules],
        mtime=sde, compression=compression, init=(DATA / "netboot-init").read_text(), extra=extra,
        level=INITRAMFS_LEVEL)

    boot_dir, kernel_name, initrd_name = boot_directory(repo, kern, initrd, work)
    cmdline = "console=tty0 console=ttyS0,115200 quiet panic=10 appliance.boot=network"
    (boot_dir / "syslinux.cfg").write_text(bootloader.syslinux_config(
        kernel=kernel_name, initrd=initrd_name, cmdline=cmdline,
        label=f"{meta_base['group']} {group.version.revision} (network)"))
    boot_files = sum(p.stat().st_size for p in boot_dir.iterdir())
    boot_bytes = boot_files + 2 * MIB

    provisional = ImageMeta(group.name, str(group.version), arch, 0, sde, **meta_base.get("image", {}), variant=VARIANT)
    data_bytes = config.data_size if size is None else 16 * MIB
    layout = disk.plan_layout(boot_bytes, data_bytes, size if size is not None else
                              disk.FIRST_PARTITION + disk.round_mib(boot_bytes) + disk.round_mib(data_bytes))
    meta = ImageMeta(group.name, str(group.version), arch, layout.total, sde, **meta_base.get("image", {}),
                     drivers=tuple(sorted(set(modules) | {m for m in choice.drivers})),
                     kernel_config=kernel_options(config_text), variant=VARIANT)
    progress(f"boot partition {layout.boot.size // MIB} MiB FAT ({boot_files / MIB:.1f} MiB: kernel and initramfs); "
             f"data partition {layout.root.size // MIB} MiB ext4, empty")

    data_uuid = str(provisional.derived_uuid("data"))
    data_img, boot_img = work / "data.ext4", work / "boot.fat"
    with tempfile.TemporaryDirectory(dir=work) as empty:
        staged = StagedRoot(Path(empty))
        staged.add(ImageEntry("/", "dir", 0o755, mtime=sde))
        ext4.make_ext4(staged, data_img, layout.root.size, uuid=data_uuid, label=DATA_LABEL, source_date_epoch=sde)
    bootloader.make_boot_partition({p.name: p for p in boot_dir.iterdir()}, boot_img, layout.boot.size,
                                   volume_id=provisional.derived_u32("bootfs"), hidden_sectors=layout.boot.first_lba,
                                   source_date_epoch=sde)
    raw = work / f"{meta.basename}.raw"
    record = disk.mbr(layout, signature=meta.derived_u32("mbr"), boot_code=bootloader.SYSLINUX_MBR.read_bytes()[:440])
    disk.write_disk(raw, layout, boot_image=boot_img, root_image=data_img, master_boot_record=record)
    for leftover in (data_img, boot_img):
        leftover.unlink()
    return AssembledDisk(raw, meta, kern.version, len(initrd), modules, [], choice.missing, layout,
                         sboms=dict(sboms))
