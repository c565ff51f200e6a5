"""The device table: where images run, and which kernel modules each place needs.

``appbuilder/formats/data/targets.yaml`` (a workspace's ``formats/targets.yaml`` replaces
it) names the *targets* an image is made for (VMware, VirtualBox, Hyper-V/Azure, EC2
Nitro, Xen, KVM, QEMU/Proxmox, BusLogic controllers), and for each the kernel modules
that find its disks and those that drive its network cards; and which formats are made
for which targets::

    common:                          # modules every target needs (optional)
      title: ...
      disk: [sd_mod, sr_mod, ...]
    targets:
      hyperv:                        # a name: lower case letters, digits, dashes
        title: Microsoft Hyper-V and Azure
        disk: [hv_vmbus, hv_storvsc] # into the initramfs: they find the root's disk
        network: [hv_netvsc]         # into the root file system, loaded at boot
        arches: [x86_64, x86]        # optional: the arches it runs (default: all)
    formats:                         # a format family or a format's name -> its targets
      vhd: [hyperv, virtualbox]

:func:`load_targets` reads and checks it (a broken table is refused with the file and
the fault named); :meth:`TargetTable.device_modules` gives the assembly what an image
for one architecture keeps (every target's modules: one raw disk serves every format);
:meth:`TargetTable.unserved` says which formats no target could use an image for, once
the assembly has said which modules the kernel lacks.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

from appbuilder.assemble.kernel import DeviceModules, MissingModule, TargetModules
from appbuilder.core.arch import ARCHES
from appbuilder.core.errors import AppbuildError
from appbuilder.formats.families import families
from appbuilder.formats.families.base import Format
from appbuilder.formats.specs import DATA_DIR, TARGETS_FILE, load_formats

MODULE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
COMMON = "common"
TOP_KEYS = {"common": "modules every target needs", "targets": "the targets, by name",
            "formats": "a format family or format name -> the targets it is made for"}
TARGET_KEYS = {"title": "what the target is, one line", "disk": "modules that find its disks (initramfs)",
               "network": "modules that drive its network cards (root file system, loaded at boot)",
               "arches": "the arches it runs (default: all)"}


class TargetTableError(AppbuildError):
    """The device table (targets.yaml) is broken: the message names the file and the fault."""


@dataclass(frozen=True)
class Target:
    """One place an image runs, and what it needs from the kernel."""

    name: str
    title: str
    disk: tuple[str, ...] = ()
    network: tuple[str, ...] = ()
    arches: tuple[str, ...] = tuple(ARCHES)

    @property
    def modules(self) -> tuple[str, ...]:
        return (*self.disk, *self.network)

    def modules_for(self) -> TargetModules:
        return TargetModules(self.name, self.disk, self.network)


@dataclass(frozen=True)
class TargetTable:
    """The device table, read and checked."""

    path: Path
    common: Target | None
    targets: dict[str, Target]
    formats: dict[str, tuple[str, ...]]  # family or format name -> target names

    def for_arch(self, arch: str) -> list[Target]:
        """The targets *arch* runs on, in table order (``common`` first, if given)."""
        listed = ([self.common] if self.common else []) + list(self.targets.values())
        return [t for t in listed if arch in t.arches]

    def device_modules(self, arch: str) -> DeviceModules:
        """What an image for *arch* keeps: every target's disk and network modules."""
        return DeviceModules(tuple(t.modules_for() for t in self.for_arch(arch)))

    def device_modules_for(self, specs: Iterable[Format], arch: str) -> DeviceModules:
        """The drivers of only the targets the formats *specs* are made for (and ``common``): what
        an image assembled for those formats alone keeps (the network-booting one, whose every
        byte is downloaded, is made per set of targets)."""
        names = {t.name for spec in specs for t in self.targets_of(spec, arch)}
        return DeviceModules(tuple(t.modules_for() for t in self.for_arch(arch)
                                   if t is self.common or t.name in names))

    def targets_of(self, spec: Format, arch: str | None = None) -> list[Target]:
        """The targets format *spec* is made for (its own entry, else its family's), for *arch*."""
        names = self.formats.get(spec.name, self.formats.get(spec.family, ()))
        return [self.targets[n] for n in names if arch is None or arch in self.targets[n].arches]

    def unserved(self, specs: Iterable[Format], arch: str, missing: Iterable[MissingModule]) -> list[str]:
        """One line per format in *specs* that no target could use an image for, given the
        modules the kernel lacks (*missing*): every target it is made for on *arch* misses
        a module, or it is made for none on *arch*."""
        lacks: dict[str, list[str]] = {}
        for m in missing:
            lacks.setdefault(m.target, []).append(m.module)
        common = lacks.get(COMMON, [])
        lines = []
        for spec in specs:
            targets = self.targets_of(spec, arch)
            if not targets:
                lines.append(f"format {spec.name} is made for no target that runs {arch} (see {self.path.name})")
            elif common or all(t.name in lacks for t in targets):
                why = "; ".join(f"{name}: no {', '.join(mods)}" for name, mods in lacks.items()
                                if name == COMMON or name in {t.name for t in targets})
                lines.append(f"format {spec.name} on {arch}: the kernel lacks drivers of every target it is made "
                             f"for ({why}); such a machine may find no disk or no network")
        return lines


def targets_path(workspace: Path | None = None) -> Path:
    """The device table in use: the workspace's ``formats/targets.yaml``, else the packaged one."""
    if workspace is not None and (Path(workspace) / TARGETS_FILE).is_file():
        return Path(workspace) / TARGETS_FILE
    return DATA_DIR / TARGETS_FILE


def load_targets(workspace: Path | None = None) -> TargetTable:
    """The device table (see the module's documentation), from the workspace's ``formats/``
    (*workspace*, ``Settings.formats_dir``; it need not exist) or the package's."""
    workspace = Path(workspace).resolve() if workspace is not None else None
    path = targets_path(workspace)
    try:
        stat = path.stat()
    except OSError as exc:
        raise TargetTableError(f"{path}: cannot read the device table: {exc.strerror}") from None
    return _load(path, workspace, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: Path, workspace: Path | None, _size: int, _mtime: int) -> TargetTable:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TargetTableError(f"{path}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetTableError(f"{path}: cannot read the device table: {exc}") from None

    def refuse_unless(cond: bool, message: str) -> None:
        if not cond:
            raise TargetTableError(f"{path}: {message}")

    refuse_unless(isinstance(data, dict), "expected a mapping with targets: (and common:, formats:)")
    unknown = sorted(set(data) - set(TOP_KEYS))
    refuse_unless(not unknown, f"unknown keys {unknown}; valid keys: {', '.join(TOP_KEYS)}")
    refuse_unless(isinstance(data.get("targets"), dict) and data["targets"],
                  "targets: must map target names to their modules")
    common = _target(COMMON, data["common"], refuse_unless) if data.get("common") is not None else None
    targets = {}
    for name, entry in data["targets"].items():
        refuse_unless(isinstance(name, str) and bool(NAME_RE.match(name)) and name != COMMON,
                      f"bad target name {name!r}: lower case letters, digits and dashes, not {COMMON!r}")
        targets[name] = _target(name, entry, refuse_unless)

    formats_data = data.get("formats") or {}
    refuse_unless(isinstance(formats_data, dict), "formats: must map format families or names to lists of targets")
    known_formats = set(load_formats(workspace))
    known_families = set(families())
    formats: dict[str, tuple[str, ...]] = {}
    for key, names in formats_data.items():
        refuse_unless(key in known_families or key in known_formats,
                      f"formats: {key!r} is neither a format family ({', '.join(sorted(known_families))}) nor a "
                      f"format ({', '.join(sorted(known_formats))})")
        refuse_unless(isinstance(names, list) and all(isinstance(n, str) for n in names),
                      f"formats: {key}: expected a list of target names")
        unknown = [n for n in names if n not in targets]
        refuse_unless(not unknown, f"formats: {key}: unknown targets {unknown}; the table has "
                                   f"{', '.join(targets)}")
        formats[key] = tuple(names)
    served = {n for names in formats.values() for n in names}
    orphans = [n for n in targets if n not in served]
    refuse_unless(not orphans, f"no format is made for the targets {orphans} (list them under formats:)")
    return TargetTable(path, common, targets, formats)


def _target(name: str, entry, refuse_unless) -> Target:
    where = f"{'common' if name == COMMON else 'targets: ' + name}"
    refuse_unless(isinstance(entry, dict), f"{where}: expected a mapping ({', '.join(TARGET_KEYS)})")
    unknown = sorted(set(entry) - set(TARGET_KEYS))
    refuse_unless(not unknown, f"{where}: unknown keys {unknown}; valid keys: {', '.join(TARGET_KEYS)}")
    refuse_unless(isinstance(entry.get("title"), str) and entry["title"].strip() != "",
                  f"{where}: needs a title (one line saying what it is)")
    lists = {}
    for key in ("disk", "network"):
        value = entry.get(key) or []
        refuse_unless(isinstance(value, list), f"{where}: {key}: expected a list of module names")
        bad = [m for m in value if not isinstance(m, str) or not MODULE_RE.match(m)]
        refuse_unless(not bad, f"{where}: {key}: {', '.join(map(repr, bad))} is not a kernel module name")
        lists[key] = tuple(value)
    refuse_unless(bool(lists["disk"] or lists["network"]), f"{where}: names no disk or network module")
    arches = entry.get("arches", list(ARCHES))
    refuse_unless(isinstance(arches, list) and bool(arches) and all(a in ARCHES for a in arches),
                  f"{where}: arches must be a non-empty list of {', '.join(ARCHES)} (got {arches!r})")
    return Target(name, entry["title"].strip(), lists["disk"], lists["network"], tuple(arches))
