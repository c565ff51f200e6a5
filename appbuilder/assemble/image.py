"""From a group trove to one bootable raw disk: stage, initramfs, partitions, disk.

1. The group's member troves and the kernel among them; which kernel modules stay.
2. Accounts and the generated files (fstab, hostname, release, manifest, modules), the
   inventory (SPDX and CycloneDX SBOMs, inventory.txt: ``sbom.py``) and the dpkg status
   of DEB capsules (``capsule/dpkgdb.py``).
3. The root file system staged in a directory, module index regenerated, RPM database
   for RPM capsules; ``mke2fs -d`` + ``debugfs`` make the ext4 partition.
4. The initramfs (static busybox + root drivers + our init) and the FAT boot partition
   with SYSLINUX, the kernel and the initramfs.
5. The MBR and both partitions written into one sparse raw disk.

Every identifier (file system UUID, FAT volume id, disk signature) and time stamp
comes from the group version, so the same group version gives the same raw disk.
"""

from __future__ import annotations

import functools
import io
import json
import os
import stat
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from appbuilder import __version__
from appbuilder.assemble import bootloader, disk, ext4, initramfs
from appbuilder.assemble import kernel as kernel_mod
from appbuilder.assemble.accounts import SEED_FILES, Accounts, seed_tables
from appbuilder.assemble.meta import ImageMeta
from appbuilder.assemble.rootcache import CachedRoot, RootCache, tree_key
from appbuilder.assemble.rootfs import (
    GeneratedFile,
    StagedRoot,
    add_generated,
    boot_files,
    owners_and_groups,
    stage_root,
)
from appbuilder.assemble.sbom import CDX_PATH, INVENTORY_PATH, SPDX_PATH, Inventory, inventory_maker
from appbuilder.capsule.dpkgdb import configured_by_dpkg, dpkg_database, info_mode
from appbuilder.capsule.rpmdb import build_rpm_database
from appbuilder.core.background import finish_soon, later
from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import remove_tree_soon, sha256_file
from appbuilder.policy.elf import read_elf
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import FileEntry, Trove
from appbuilder.repository.versions import NVF

MIB = 1 << 20


@dataclass
class AssembledDisk:
    raw: Path
    meta: ImageMeta
    kernel_version: str
    installed_size: int
    initramfs_modules: list[str] = field(default_factory=list)
    root_modules: list[str] = field(default_factory=list)  # /etc/modules: network drivers, the group's kernelModules
    missing_modules: list[kernel_mod.MissingModule] = field(default_factory=list)  # asked for by a target, not in the kernel
    layout: disk.DiskLayout | None = None
    sboms: dict[str, bytes] = field(default_factory=dict)  # suffix (.spdx.json, .cdx.json) -> the image's SBOM


def static_busybox(troves: list[Trove], repo: Repository, group: Trove | None = None) -> bytes:
    """The static busybox the initramfs runs: a member's, else the one the group pinned for
    it (``initramfs_busybox``: a Debian or EL system has none of its own)."""
    pinned = (group.info.get("initramfs_busybox") if group is not None else None)
    if pinned:
        troves = [*troves, repo.get(NVF.parse(pinned))]
    for t in troves:
        for f in t.files:
            if f.path in ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox") and f.type == "file":
                data = repo.store.read(f.sha256)
                info = read_elf(io.BytesIO(data))
                if info is None or info.interp:
                    raise AppbuildError(f"{t.name}: {f.path} is not a static executable; the initramfs needs a static busybox")
                return data
    raise AppbuildError("the closure has no busybox (/bin/busybox) and the group pinned none for the initramfs, "
                        "which needs a static one: cook recipes/busybox for this architecture, then resolve the "
                        "group again")


def generated_files(group: Trove, meta: ImageMeta, accounts: Accounts, troves: list[Trove], *, root_uuid: str,
                    boot_uuid: str, modules: list[str], boot: str = "disk") -> list[GeneratedFile]:
    info = group.info
    hostname = info.get("hostname") or "appliance"
    release = (f"GROUP={meta.group}\nVERSION={meta.version}\nREVISION={meta.revision}\nARCH={meta.arch}\n"
               f"BUILT_BY=appbuild-{__version__}\n")
    if info.get("login_user"):  # who a key or password given at boot is for (cernvm-context reads it)
        release += f"LOGIN_USER={info['login_user']}\n"
    os_release = (f'NAME="{meta.group}"\nID=appbuild\nVERSION_ID="{meta.revision}"\n'
                  f'PRETTY_NAME="{meta.group} {meta.revision} ({meta.arch})"\n')
    # a network-booted root is the overlay the initramfs made; it has no boot partition
    partitions = "" if boot == "network" else (
        f"UUID={root_uuid}\t/\text4\tdefaults\t0 1\n"
        f"UUID={boot_uuid}\t/boot\tvfat\tdefaults\t0 2\n")
    fstab = (
        partitions +
        "proc\t/proc\tproc\tdefaults\t0 0\n"
        "sysfs\t/sys\tsysfs\tdefaults\t0 0\n"
        "devpts\t/dev/pts\tdevpts\tgid=5,mode=620\t0 0\n"
        "tmpfs\t/run\ttmpfs\tmode=0755,nosuid,nodev\t0 0\n"
        "tmpfs\t/tmp\ttmpfs\tmode=1777,nosuid,nodev\t0 0\n"
    )
    manifest = {
        "group": f"{meta.group}={meta.version}[is: {meta.arch}]",
        "packages": sorted(str(m) for m in group.members if ":" not in m.name and not m.name.startswith("group-")),
        "troves": sorted(str(t.nvf) for t in troves),
        "builder": f"appbuild {__version__}",
    }
    return [
        *systemd_files(troves),
        GeneratedFile("/etc/passwd", accounts.passwd().encode()),
        GeneratedFile("/etc/group", accounts.group().encode()),
        GeneratedFile("/etc/shadow", accounts.shadow().encode(), 0o600),
        GeneratedFile("/etc/fstab", fstab.encode()),
        GeneratedFile("/etc/hostname", f"{hostname}\n".encode()),
        GeneratedFile("/etc/appliance-release", release.encode()),
        GeneratedFile("/etc/os-release", os_release.encode()),
        GeneratedFile("/etc/modules", "".join(f"{m}\n" for m in modules).encode()),
        GeneratedFile("/var/lib/appbuild/manifest.json", (json.dumps(manifest, indent=2) + "\n").encode()),
    ]


SYSTEMD_INIT = ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")
MARKER_UNIT = """\
[Unit]
Description=appbuild boot marker: the appliance reached multi-user
After=multi-user.target

[Service]
Type=oneshot
EnvironmentFile=/etc/appliance-release
StandardOutput=tty
TTYPath=/dev/console
ExecStart=/bin/echo "APPLIANCE-BOOT-OK ${GROUP} ${VERSION} ${ARCH} multi-user"
"""


def runs_systemd(troves: list[Trove]) -> bool:
    """Whether a member ships systemd (the image boots it as init)."""
    return any(f.path in SYSTEMD_INIT for t in troves for f in t.files)


def systemd_files(troves: list[Trove]) -> list[GeneratedFile]:
    """A system booted by systemd says it reached the multi-user target on its console, as
    appliance-init's rcS does under busybox init: the line ``appbuild boot``, the boot tests
    and the nightly wait for (a unit in /etc/systemd/system, wanted by multi-user.target
    through a drop-in, so nothing needs enabling), and an empty ``/etc/machine-id`` (each
    appliance makes its own at first boot). Empty when no member ships systemd."""
    if not runs_systemd(troves):
        return []
    return [GeneratedFile("/etc/machine-id", b"", 0o444),  # empty: systemd makes one at boot (not in the image)
            GeneratedFile("/etc/systemd/system/appbuild-boot-marker.service", MARKER_UNIT.encode()),
            GeneratedFile("/etc/systemd/system/multi-user.target.d/appbuild-boot-marker.conf",
                          b"[Unit]\nWants=appbuild-boot-marker.service\n")]


def kernel_choice(repo: Repository, group: Trove, troves: list[Trove], devices: kernel_mod.DeviceModules,
                  progress=lambda msg: None) -> tuple[kernel_mod.Kernel, set[str], kernel_mod.ModuleChoice]:
    """The closure's kernel, its built-in modules, and which of its modules the image keeps for
    *devices* and the group's ``kernelModules`` (a module a target asks for and the kernel
    lacks is reported through *progress*)."""
    kern = kernel_mod.find_kernel(troves, repo.store)
    builtin = builtin_modules(kern, repo)
    choice = kernel_mod.choose_modules(kern, devices, group.info.get("kernel_modules", []), builtin)
    for missing in choice.missing:
        progress(str(missing))
    return kern, builtin, choice


@dataclass
class StagedImage:
    """A group version's root file system staged as its image holds it (see :func:`stage_image`)."""

    staged: StagedRoot
    kernel: kernel_mod.Kernel
    choice: kernel_mod.ModuleChoice
    provisional: ImageMeta  # the image's metadata before its disk size is known
    source_date_epoch: int
    root_uuid: str
    boot_volume_id: int
    sboms: dict[str, bytes]


def account_seed(repo: Repository, troves: list[Trove]) -> tuple[str, str] | None:
    """The distribution's own account tables among the capsule members (base-passwd's master
    files, or an EL setup package's /etc/passwd and /etc/group), to seed :class:`Accounts`."""
    wanted = {p for pair in SEED_FILES for p in pair}
    files = {f.path: repo.store.read(f.sha256) for t in troves if t.info.get("capsule")
             for f in t.files if f.path in wanted and f.type == "file" and f.sha256}
    return seed_tables(files)


@dataclass
class ImagePlan:
    """Everything decided about a group version's root file system before anything is staged."""

    kernel: kernel_mod.Kernel
    choice: kernel_mod.ModuleChoice
    provisional: ImageMeta
    source_date_epoch: int
    root_uuid: str
    boot_volume_id: int
    inventory: Future  # (the SBOMs, the inventory's files in the image), made on a thread meanwhile
    accounts: Accounts
    generated: list[GeneratedFile]  # staged with the members (the inventory's files come last)
    skip: set[str]
    scripts: bool
    merged_usr: bool
    hostname: str

    @property
    def sboms(self) -> dict[str, bytes]:
        """suffix (.spdx.json, .cdx.json) -> the image's SBOM."""
        return self.inventory.result()[0]

    @property
    def inventory_files(self) -> list[GeneratedFile]:
        """The SBOMs and inventory.txt as the image carries them."""
        return self.inventory.result()[1]


def plan_image(repo: Repository, group: Trove, troves: list[Trove], meta_base: dict, *,
               devices: kernel_mod.DeviceModules, boot: str = "disk", progress=lambda msg: None) -> ImagePlan:
    """The kernel and the modules the image keeps, accounts, generated files and inventory of
    *group* (its member *troves*): what :func:`stage_planned` writes."""
    sde = int(group.info.get("source_date_epoch") or meta_base["source_date_epoch"])
    arch = group.flavor.arch
    kern, builtin, choice = kernel_choice(repo, group, troves, devices, progress)
    init_modules, root_modules = choice.initramfs, choice.root
    keep = kernel_mod.kept_module_files(kern, sorted(set(init_modules) | set(root_modules)))
    moddir = kern.moddir + "/"
    index_files = {f"{moddir}{n}" for n in ("modules.builtin", "modules.builtin.modinfo", "modules.order")}
    skip = {f.path for t in troves for f in t.files
            if f.path.startswith(moddir) and f.type == "file" and f.path not in keep and f.path not in index_files}

    owners, groups = owners_and_groups(troves)
    accounts = Accounts(group.info.get("users", []), owners, groups, seed=account_seed(repo, troves))
    scripts = bool(group.info.get("package_scripts"))
    provisional = ImageMeta(group.name, str(group.version), arch, 0, sde, **meta_base.get("image", {}))
    root_uuid = str(provisional.derived_uuid("rootfs"))
    boot_volid = provisional.derived_u32("bootfs")
    # loaded at boot (/etc/modules): a network boot's initramfs has loaded the targets' network drivers
    # already, so the OS loads only the group's kernelModules
    loaded = root_modules if boot != "network" else kern.closure(
        [m for m in group.info.get("kernel_modules", []) if m.replace("-", "_") not in builtin], strict=True)
    generated = generated_files(group, provisional, accounts, troves, root_uuid=root_uuid,
                                boot_uuid=bootloader.fat_volume_uuid(boot_volid), modules=loaded, boot=boot)
    # the inventory (SBOMs, inventory.txt) and the dpkg database name what the image really holds
    absent = skip | {f.path for t in troves for f in t.files if f.path.startswith("/boot/System.map")}
    # (reading every file's contents for its SHA-1 and writing two JSON documents: on a thread,
    # while the members are staged and their scripts run; its files go in last)
    inventory = later(functools.partial(
        _inventory_files, inventory_maker(repo, group, troves, arch=arch, source_date_epoch=sde, skip=absent,
                                          sha1_cache=meta_base.get("sha1_cache"))), name="appbuild-inventory")
    present = {f.path for t in troves for f in t.files if f.path not in absent}
    generated += [GeneratedFile(path, data, info_mode(path)) for path, data in
                  dpkg_database(repo.store, troves, present,
                                state="unpacked" if scripts and configured_by_dpkg(troves) else "installed")]
    return ImagePlan(kern, choice, provisional, sde, root_uuid, boot_volid, inventory, accounts, generated, skip,
                     scripts, bool(group.info.get("merged_usr")), group.info.get("hostname") or "appliance")


def _inventory_files(make: Callable[[], Inventory]) -> tuple[dict[str, bytes], list[GeneratedFile]]:
    inventory = make()
    sboms = inventory.sbom_bytes()
    return sboms, [GeneratedFile(path, data) for path, data in inventory.image_files(sboms)]


def stage_planned(repo: Repository, troves: list[Trove], plan: ImagePlan, meta_base: dict, work: Path, *,
                  progress=lambda msg: None, script_log=None) -> StagedRoot:
    """Stage *plan* under ``work/root``: members' files, generated files, module index, package
    databases, then the package scripts of a group with ``packageScripts``."""
    progress(f"staging {len(troves)} troves")
    staging = work / "root"
    staged = stage_root(repo.store, troves, staging, accounts=plan.accounts, source_date_epoch=plan.source_date_epoch,
                        skip=plan.skip, generated=plan.generated, merged_usr=plan.merged_usr)
    kernel_mod.regenerate_module_index(staging, plan.kernel.version)
    build_rpm_database(repo.store, troves, staging,  # RPM capsules: `rpm -qa` works in the image
                       source_date_epoch=plan.source_date_epoch)
    _record_new_files(staged, plan.source_date_epoch)
    if plan.scripts:
        from appbuilder.assemble.scripts import run_package_scripts

        started = time.monotonic()
        report = run_package_scripts(repo, troves, staged, hostname=plan.hostname,
                                     source_date_epoch=plan.source_date_epoch,
                                     timeout=float(meta_base.get("scripts_timeout", 300)),
                                     log=script_log or progress, cache=meta_base.get("scripts_cache"))
        progress(f"package scripts: {'the result of an identical run applied' if report.cached else f'{len(report.ran)} run'}"
                 f" in {time.monotonic() - started:.1f} s")
    add_generated(staged, plan.inventory_files, source_date_epoch=plan.source_date_epoch, merged_usr=plan.merged_usr)
    return staged


def stage_image(repo: Repository, group: Trove, troves: list[Trove], meta_base: dict, work: Path, *,
                devices: kernel_mod.DeviceModules, boot: str = "disk", progress=lambda msg: None,
                script_log=None) -> StagedImage:
    """Stage the root file system of *group* (its member *troves*) under ``work/root``: members'
    files, the kernel modules the image keeps, accounts, generated files, inventory, module index
    and package databases. *boot* ``network``: the tree a network-booting appliance mounts as its
    root (its fstab names no root or boot partition: the initramfs sets them up).

    A group with ``packageScripts`` (info ``package_scripts``) then has its packages' scripts run
    in the staged root (:mod:`appbuilder.assemble.scripts`; ``meta_base["scripts_timeout"]``
    seconds each, setting ``scripts.timeout``; ``meta_base["scripts_cache"]``: the directory
    keeping runs' results); their output goes to *script_log* (default: *progress*)."""
    plan = plan_image(repo, group, troves, meta_base, devices=devices, boot=boot, progress=progress)
    staged = stage_planned(repo, troves, plan, meta_base, work, progress=progress, script_log=script_log)
    return StagedImage(staged, plan.kernel, plan.choice, plan.provisional, plan.source_date_epoch, plan.root_uuid,
                       plan.boot_volume_id, plan.sboms)


def kernel_config_text(repo: Repository, kern: kernel_mod.Kernel, boot: dict[str, FileEntry]) -> str:
    """The kernel's ``/boot/config-VERSION`` among the *boot* files (empty when the package has none)."""
    config = boot.get(f"/boot/config-{kern.version}")
    return repo.store.read(config.sha256).decode(errors="replace") if config else ""


def boot_directory(repo: Repository, kern: kernel_mod.Kernel, initrd: bytes, work: Path) -> tuple[Path, str, str]:
    """``work/boot`` holding the kernel and the initramfs *initrd*: (it, kernel name, initramfs name)."""
    boot_dir = work / "boot"
    boot_dir.mkdir()
    kernel_name, initrd_name = f"vmlinuz-{kern.version}", f"initrd.img-{kern.version}"
    repo.store.copy_to(kern.image.sha256, boot_dir / kernel_name)
    (boot_dir / initrd_name).write_bytes(initrd)
    return boot_dir, kernel_name, initrd_name


def assemble_raw(repo: Repository, group: Trove, troves: list[Trove], meta_base: dict, work: Path, *,
                 devices: kernel_mod.DeviceModules, size: int | None = None,
                 progress=lambda msg: None, script_log=None) -> AssembledDisk:
    """Build the raw disk of *group* (its member *troves*) in *work*.

    *devices*: the disk and network drivers of the machines the image is for (the caller
    reads them from the device table); a module the kernel lacks is reported through
    *progress* ("target xen: no module xen_blkfront in kernel ...") and in the result."""
    plan = plan_image(repo, group, troves, meta_base, devices=devices, progress=progress)
    kern, choice, sde = plan.kernel, plan.choice, plan.source_date_epoch
    init_modules, root_modules = choice.initramfs, choice.root
    root_uuid, arch = plan.root_uuid, group.flavor.arch
    boot = boot_files(troves, plan.skip)
    cache = RootCache(meta_base["rootfs_cache"], int(meta_base.get("rootfs_keep", 0))) \
        if meta_base.get("rootfs_cache") else None
    key = cache_key(group, troves, plan) if cache and cache.enabled else ""
    kept = cache.lookup(key) if key else None
    # the boot partition (initramfs, kernel, bootloader; FAT) needs nothing of the root file
    # system: it is made on a thread while the root is staged, its scripts run and mke2fs writes it
    with ThreadPoolExecutor(1, thread_name_prefix="boot") as pool:
        boot_side = pool.submit(_boot_partition, repo, group, troves, plan, boot, meta_base, work, progress)
        staged = None
        if kept is None:
            staged = stage_planned(repo, troves, plan, meta_base, work, progress=progress, script_log=script_log)
            kept = CachedRoot(_root_minimum(staged), staged.installed_size)
        boot_bytes, boot_img = boot_side.result()
    layout = disk.plan_layout(boot_bytes, kept.root_minimum, size)
    meta = ImageMeta(group.name, str(group.version), arch, layout.total, sde, **meta_base.get("image", {}),
                     drivers=tuple(choice.drivers), kernel_config=kernel_options(kernel_config_text(repo, kern, boot)))

    progress(f"root file system: {layout.root.size // MIB} MiB ext4; boot partition: {layout.boot.size // MIB} MiB FAT")
    root_img = work / "root.ext4"
    reused = cache.partition(key, layout.root.size, say=progress) if staged is None else None
    if reused is not None:
        progress(f"root file system: the partition of an identical earlier build reused ({key[:16]}, "
                 f"verified): nothing staged, no package script run")
        root_img = reused
    else:
        if staged is None:
            staged = stage_planned(repo, troves, plan, meta_base, work, progress=progress, script_log=script_log)
        ext4.make_ext4(staged, root_img, layout.root.size, uuid=root_uuid, label="root", source_date_epoch=sde)
        remove_tree_soon(staged.directory)  # the partition holds it now
    # the partition's sha256 for the cache, on a thread while the disk is written
    digest = later(sha256_file, root_img, name="appbuild-digest") if reused is None and key else None
    raw = work / f"{meta.basename}.raw"
    record = disk.mbr(layout, signature=meta.derived_u32("mbr"), boot_code=bootloader.SYSLINUX_MBR.read_bytes()[:440])
    disk.write_disk(raw, layout, boot_image=boot_img, root_image=root_img, master_boot_record=record)
    boot_img.unlink()
    if reused is None:
        if digest is not None:  # moved into the cache once hashed, while the formats are written
            def keep() -> None:
                try:
                    cache.store(key, kept, root_img, digest=digest.result())
                except OSError as exc:
                    raise AppbuildError(f"the root file system cache did not keep this build's partition: "
                                        f"{exc}") from None
            finish_soon(keep, name="appbuild-rootcache")
        else:
            root_img.unlink()
    return AssembledDisk(raw, meta, kern.version, kept.installed_size, init_modules, root_modules,
                         choice.missing, layout, sboms=plan.sboms)


def _boot_partition(repo: Repository, group: Trove, troves: list[Trove], plan: ImagePlan,
                    boot: dict[str, FileEntry], meta_base: dict, work: Path, progress) -> tuple[int, Path]:
    """The boot partition's FAT image (``work/boot.fat``): the kernel, the initramfs (its
    modules and appbuild's static busybox), the other /boot files and syslinux's
    configuration; returns the bytes the partition must hold and the image."""
    kern, sde = plan.kernel, plan.source_date_epoch
    init_modules = plan.choice.initramfs
    config_text = kernel_config_text(repo, kern, boot)
    compression = initramfs.compression_for(config_text) if config_text else "gzip"
    progress(f"initramfs for kernel {kern.version} ({len(init_modules)} modules, {compression})")
    initrd = initramfs.build_initramfs(
        busybox=static_busybox(troves, repo, group),
        modules=[(kern.modules[m].path, repo.store.read(kern.modules[m].sha256)) for m in init_modules],
        mtime=sde,
        compression=compression,
    )
    boot_dir, kernel_name, initrd_name = boot_directory(repo, kern, initrd, work)
    for path, entry in boot.items():
        name = path.rsplit("/", 1)[1]
        if name != kernel_name and not name.startswith("System.map"):
            repo.store.copy_to(entry.sha256, boot_dir / name)
    cmdline = f"root=UUID={plan.root_uuid} ro console=tty0 console=ttyS0,115200 quiet panic=10"
    if runs_systemd(troves):  # an appliance is configured by contextualization, never by prompts on its console
        cmdline += " systemd.firstboot=off"
    (boot_dir / "syslinux.cfg").write_text(bootloader.syslinux_config(
        kernel=kernel_name, initrd=initrd_name, cmdline=cmdline, label=f"{meta_base['group']} {group.version.revision}"))
    boot_bytes = max(bootloader.MIN_BOOT_BYTES, sum(p.stat().st_size for p in boot_dir.iterdir()) + 4 * MIB)
    part = disk.plan_layout(boot_bytes, 0).boot  # where it goes does not depend on the root's size
    boot_img = work / "boot.fat"
    bootloader.make_boot_partition({p.name: p for p in boot_dir.iterdir()}, boot_img, part.size,
                                   volume_id=plan.boot_volume_id, hidden_sectors=part.first_lba, source_date_epoch=sde)
    return boot_bytes, boot_img


def cache_key(group: Trove, troves: list[Trove], plan: ImagePlan) -> str:
    """The root file system cache's key of *plan* (:func:`appbuilder.assemble.rootcache.tree_key`)."""
    # the inventory's files are not waited for: what they hold follows from the rest of the key
    # (the members' files and their contents, the skipped paths, the group, appbuild's code)
    return tree_key(group, troves, [(g.path, g.content, g.mode) for g in plan.generated], skip=plan.skip,
                    merged_usr=plan.merged_usr, source_date_epoch=plan.source_date_epoch, scripts=plan.scripts,
                    hostname=plan.hostname, extra={"root_uuid": plan.root_uuid, "kernel": plan.kernel.version,
                                                   "inventory": [SPDX_PATH, CDX_PATH, INVENTORY_PATH]})


# kernel config options that say where the kernel runs (ImageMeta.kernel_config): the AMI
# manifest's Xen flag needs CONFIG_XEN
KERNEL_OPTIONS = ("XEN", "XEN_PVHVM", "HYPERV", "X86_PAE")


def kernel_options(config: str) -> tuple[str, ...]:
    """``NAME=VALUE`` of the :data:`KERNEL_OPTIONS` the kernel config *config* sets."""
    found = []
    for line in config.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("CONFIG_") and name[7:] in KERNEL_OPTIONS and value in ("y", "m"):
            found.append(f"{name[7:]}={value}")
    return tuple(sorted(found))


def builtin_modules(kern: kernel_mod.Kernel, repo: Repository) -> set[str]:
    entry = next((f for f in kern.trove.files if f.path == f"{kern.moddir}/modules.builtin"), None)
    if entry is None or not entry.sha256:
        return set()
    text = repo.store.read(entry.sha256).decode(errors="replace")
    return {kernel_mod._module_name(line.strip()) for line in text.splitlines() if line.strip()}


def _root_minimum(staged: StagedRoot) -> int:
    """Bytes the ext4 partition needs: data, inode tables, journal, reserve, a little slack."""
    data = ext4.needed_bytes(staged)
    inodes = max(len(staged.entries) * 2, 4096) * ext4.INODE_SIZE
    estimate = int(data * 1.05) + inodes + 8 * MIB
    size = estimate + ext4.journal_bytes(estimate * 2) + estimate // 50
    return size


def _record_new_files(staged: StagedRoot, sde: int) -> None:
    """Give files that staging steps created (depmod output, RPM database) image metadata: their
    mode as made (lstat), owned by root unless the step gave them another owner, time clamped."""
    from appbuilder.assemble.rootfs import ImageEntry

    me = os.geteuid(), os.getegid()
    base = str(staged.directory)
    found = []
    for dirpath, dirnames, filenames in os.walk(base):  # symlinks to directories are not followed
        inside = dirpath[len(base):]
        found += [path for path in (f"{inside}/{name}" for name in dirnames + filenames) if path not in staged.entries]
    for path in sorted(found, key=lambda path: path.split("/")):
        st = os.lstat(base + path)
        kind = ("dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode)
                else "fifo" if stat.S_ISFIFO(st.st_mode) else "file")
        mode = 0o777 if kind == "symlink" else stat.S_IMODE(st.st_mode)
        uid = 0 if st.st_uid == me[0] else st.st_uid
        gid = 0 if st.st_gid == me[1] else st.st_gid
        staged.add(ImageEntry(path, kind, mode, uid, gid, min(int(st.st_mtime), sde)))
