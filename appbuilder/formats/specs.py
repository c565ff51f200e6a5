"""The output formats an image can be written in, read from ``formats/*.yaml``.

Each format is one declarative file, ``formats/NAME.yaml``::

    name: qcow2                      # must match the file name
    description: ...                 # one line for `appbuild` help and listings
    arches: [x86_64, x86]            # which appbuild arches it is offered for
    disk:
      file: "{basename}.qcow2"       # the disk file, named from ImageMeta.basename
      qemu_img:                      # null: a sparse copy of the raw disk
        format: qcow2                # qemu-img convert -O
        options: {compat: "1.1"}     # qemu-img convert -o k=v,...
        compress: true               # qemu-img convert -c
      writer: qemu-img               # or appbuild: our parallel streamOptimized VMDK writer
    compressed: true                 # output is compressed (a CPU-bound conversion)
    drive_format: qcow2              # qemu -drive format= a boot test must use
    descriptors:                     # jinja2 templates in formats/, rendered in order
      - {template: vmware.vmx.j2, file: "{basename}.vmx"}
    archive:                         # optional: pack disk + descriptors into one tar
      file: "{basename}.ova"         # (then only the archive is kept)
      members: ["{basename}.ovf", "{basename}.mf", "{basename}-disk1.vmdk"]
    vars: {...}                      # template variables
    arch_vars: {x86_64: {...}, x86: {...}}   # template variables per arch

:func:`load_formats` reads and validates them all; :func:`resolve_formats` turns what a
user typed (``qcow2,vhd`` or ``all``) into specs, refusing unknown names and formats
not offered for an arch with a message that lists the valid ones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from appbuilder.core.arch import ARCHES
from appbuilder.core.errors import AppbuildError

#: ``formats/`` of the project this package lives in
FORMATS_DIR = Path(__file__).resolve().parent.parent.parent / "formats"

#: qemu-img output formats we know how to verify and make reproducible
QEMU_FORMATS = ("qcow2", "vmdk", "vpc", "raw")
#: qemu ``-drive format=`` values a boot test may be told to use
DRIVE_FORMATS = ("raw", "qcow2", "vmdk", "vpc")
#: what writes a disk: qemu-img convert, or appbuild's own writer (appbuilder/formats/vmdkstream.py)
WRITERS = ("qemu-img", "appbuild")

_TOP_KEYS = {"name", "description", "arches", "disk", "compressed", "drive_format", "descriptors",
             "archive", "vars", "arch_vars"}


class FormatError(AppbuildError):
    """A format name is unknown, not offered for an arch, or its definition is broken."""


@dataclass(frozen=True)
class QemuImg:
    """How ``qemu-img convert`` makes the disk of a format from the raw disk."""

    format: str
    options: tuple[tuple[str, str], ...] = ()
    compress: bool = False

    @property
    def option_string(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.options)

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)

    @property
    def subformat(self) -> str | None:
        return self.option("subformat")


@dataclass(frozen=True)
class DiskSpec:
    file: str  # name pattern, e.g. "{basename}.qcow2"
    qemu_img: QemuImg | None  # None: sparse copy of the raw disk
    writer: str = "qemu-img"  # or "appbuild": our own parallel writer (streamOptimized VMDK only)

    @property
    def conversion_key(self) -> tuple:
        """Formats whose disks have the same key share one conversion."""
        return ("copy",) if self.qemu_img is None else (
            self.writer, self.qemu_img.format, self.qemu_img.options, self.qemu_img.compress)


@dataclass(frozen=True)
class DescriptorSpec:
    template: str  # file name in formats/
    file: str  # name pattern


@dataclass(frozen=True)
class ArchiveSpec:
    file: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class FormatSpec:
    """One output format, as declared in ``formats/NAME.yaml``."""

    name: str
    description: str
    arches: tuple[str, ...]
    disk: DiskSpec
    compressed: bool
    drive_format: str
    descriptors: tuple[DescriptorSpec, ...] = ()
    archive: ArchiveSpec | None = None
    vars: dict = field(default_factory=dict, hash=False, compare=False)
    arch_vars: dict = field(default_factory=dict, hash=False, compare=False)
    path: Path | None = field(default=None, hash=False, compare=False)

    # ------------------------------------------------------------ file names

    def disk_name(self, basename: str) -> str:
        return self.disk.file.format(basename=basename)

    def descriptor_names(self, basename: str) -> list[str]:
        return [d.file.format(basename=basename) for d in self.descriptors]

    def archive_name(self, basename: str) -> str | None:
        return self.archive.file.format(basename=basename) if self.archive else None

    def outputs(self, basename: str) -> list[str]:
        """The files this format leaves in the image store, in a stable order."""
        if self.archive:
            return [self.archive_name(basename)]
        return [self.disk_name(basename), *self.descriptor_names(basename)]

    def template_vars(self, arch: str) -> dict:
        """``vars`` overlaid with ``arch_vars[arch]``: what the templates see as ``vars``."""
        return {**self.vars, **self.arch_vars.get(arch, {})}

    def supports(self, arch: str) -> bool:
        return arch in self.arches


# ---------------------------------------------------------------- loading


def _require(cond: bool, path: Path, message: str) -> None:
    if not cond:
        raise FormatError(f"{path}: {message}")


def _parse(path: Path, templates_dir: Path) -> FormatSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FormatError(f"{path}: not valid YAML: {exc}") from None
    _require(isinstance(data, dict), path, "expected a mapping at the top level")
    unknown = set(data) - _TOP_KEYS
    _require(not unknown, path, f"unknown keys {sorted(unknown)}; valid keys: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("name", "description", "arches", "disk", "compressed", "drive_format"):
        _require(key in data, path, f"missing {key!r}")
    name = data["name"]
    _require(name == path.stem, path, f"name {name!r} must match the file name {path.stem!r}")

    arches = tuple(data["arches"] or ())
    bad = [a for a in arches if a not in ARCHES]
    _require(arches and not bad, path, f"arches must be a non-empty list of {', '.join(ARCHES)} (got {list(arches)})")

    disk = data["disk"]
    _require(isinstance(disk, dict) and "file" in disk and "qemu_img" in disk, path,
             "disk needs 'file' and 'qemu_img' (null for a copy of the raw disk)")
    _require(not set(disk) - {"file", "qemu_img", "writer"}, path, "disk takes only file, qemu_img and writer")
    writer = disk.get("writer", "qemu-img")
    _require(writer in WRITERS, path, f"disk.writer must be one of {', '.join(WRITERS)}")
    _require("{basename}" in disk["file"], path, "disk.file must contain {basename}")
    qemu = disk["qemu_img"]
    qemu_img = None
    if qemu is not None:
        _require(isinstance(qemu, dict) and qemu.get("format") in QEMU_FORMATS, path,
                 f"disk.qemu_img.format must be one of {', '.join(QEMU_FORMATS)}")
        options = qemu.get("options") or {}
        _require(isinstance(options, dict), path, "disk.qemu_img.options must be a mapping")
        qemu_img = QemuImg(
            format=qemu["format"],
            options=tuple((str(k), _option_value(v)) for k, v in options.items()),
            compress=bool(qemu.get("compress", False)),
        )
        if qemu_img.format == "vpc":
            _require(qemu_img.option("subformat") in ("fixed", "dynamic"), path,
                     "vpc needs options.subformat fixed or dynamic")
        if qemu_img.format == "vmdk":
            _require(qemu_img.option("subformat") in ("monolithicSparse", "streamOptimized"), path,
                     "vmdk needs options.subformat monolithicSparse or streamOptimized")
        _require(not qemu_img.compress or qemu_img.format == "qcow2", path,
                 "compress (qemu-img -c) is for qcow2 only")
    _require(writer == "qemu-img" or (qemu_img and qemu_img.subformat == "streamOptimized"), path,
             "writer appbuild writes streamOptimized VMDKs only")

    _require(data["drive_format"] in DRIVE_FORMATS, path, f"drive_format must be one of {', '.join(DRIVE_FORMATS)}")

    descriptors = []
    for d in data.get("descriptors") or ():
        _require(isinstance(d, dict) and set(d) == {"template", "file"}, path,
                 "each descriptor needs exactly 'template' and 'file'")
        _require((templates_dir / d["template"]).is_file(), path, f"template {d['template']} not found in {templates_dir}")
        descriptors.append(DescriptorSpec(d["template"], d["file"]))

    archive = None
    if data.get("archive"):
        a = data["archive"]
        _require(isinstance(a, dict) and set(a) == {"file", "members"}, path, "archive needs 'file' and 'members'")
        members = tuple(a["members"])
        own = {disk["file"], *(d.file for d in descriptors)}
        _require(set(members) == own and len(members) == len(own), path,
                 f"archive.members must list the disk and every descriptor once: {sorted(own)}")
        archive = ArchiveSpec(a["file"], members)

    arch_vars = data.get("arch_vars") or {}
    _require(isinstance(arch_vars, dict) and all(a in ARCHES for a in arch_vars), path,
             f"arch_vars keys must be arches ({', '.join(ARCHES)})")
    if arch_vars:
        missing = [a for a in arches if a not in arch_vars]
        _require(not missing, path, f"arch_vars has nothing for {missing}")

    return FormatSpec(
        name=name,
        description=str(data["description"]),
        arches=arches,
        disk=DiskSpec(disk["file"], qemu_img, writer),
        compressed=bool(data["compressed"]),
        drive_format=data["drive_format"],
        descriptors=tuple(descriptors),
        archive=archive,
        vars=dict(data.get("vars") or {}),
        arch_vars={k: dict(v or {}) for k, v in arch_vars.items()},
        path=path,
    )


def _option_value(v) -> str:
    if isinstance(v, bool):  # YAML reads on/off/yes/no as booleans
        return "on" if v else "off"
    return str(v)


def _check_shared_names(specs: dict[str, FormatSpec]) -> None:
    """Two formats may name the same file only if they make it the same way."""
    by_name: dict[str, tuple[str, object]] = {}
    for spec in specs.values():
        made = [(spec.disk.file, spec.disk.conversion_key)]
        made += [(d.file, (d.template, repr(sorted(spec.vars.items())), repr(sorted(spec.arch_vars.items()))))
                 for d in spec.descriptors]
        if spec.archive:
            made.append((spec.archive.file, ("archive", spec.name)))
        for pattern, how in made:
            seen = by_name.setdefault(pattern, (spec.name, how))
            if seen[1] != how:
                raise FormatError(f"formats {seen[0]} and {spec.name} both write {pattern!r} but make it differently")


@functools.lru_cache(maxsize=8)
def _load(directory: Path) -> dict[str, FormatSpec]:
    if not directory.is_dir():
        raise FormatError(f"no formats directory at {directory}")
    specs = {p.stem: _parse(p, directory) for p in sorted(directory.glob("*.yaml"), key=lambda p: p.stem)}
    if not specs:
        raise FormatError(f"no formats defined in {directory} (expected NAME.yaml files)")
    _check_shared_names(specs)
    return specs


def load_formats(directory: Path | None = None) -> dict[str, FormatSpec]:
    """Every format in *directory* (default: the project's ``formats/``), by name."""
    return dict(_load(Path(directory or FORMATS_DIR).resolve()))


def get_format(name: str, directory: Path | None = None) -> FormatSpec:
    specs = load_formats(directory)
    if name not in specs:
        raise FormatError(f"unknown format {name!r}; valid formats: {', '.join(sorted(specs))}")
    return specs[name]


def resolve_formats(requested: str | Iterable[str], arch: str | None = None,
                    directory: Path | None = None) -> list[FormatSpec]:
    """The specs for ``"qcow2,vhd"``, ``["qcow2", "vhd"]`` or ``"all"``, in the order given.

    ``all`` means every format offered for *arch* (every format if arch is None). A
    format asked for by name that is not offered for *arch* is an error.
    """
    specs = load_formats(directory)
    names = requested.split(",") if isinstance(requested, str) else list(requested)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise FormatError(f"no format given; valid formats: {', '.join(sorted(specs))}, or all")
    if arch is not None and arch not in ARCHES:
        raise FormatError(f"unknown architecture {arch!r}; valid ones: {', '.join(ARCHES)}")
    out: list[FormatSpec] = []
    for name in names:
        if name == "all":
            chosen = [s for s in specs.values() if arch is None or s.supports(arch)]
        elif name in specs:
            chosen = [specs[name]]
        else:
            raise FormatError(f"unknown format {name!r}; valid formats: {', '.join(sorted(specs))}")
        for spec in chosen:
            if arch is not None and not spec.supports(arch):
                raise FormatError(f"format {spec.name} is not offered for {arch}; it is for {', '.join(spec.arches)}")
            if spec not in out:
                out.append(spec)
    return out


def boot_drive(spec: FormatSpec, files: list[Path], scratch: Path) -> tuple[Path, str]:
    """(disk file, qemu ``-drive format=``) to boot the image *files* of format *spec*.

    For an archive format (OVA) the disk is extracted into *scratch* first.
    """
    if spec.archive:
        from appbuilder.formats.ova import extract_disk

        return extract_disk(files[0], scratch), spec.drive_format
    disk = next((f for f in files if f.name.endswith(spec.disk.file.replace("{basename}", ""))), files[0])
    return disk, spec.drive_format
