"""What every format family has in common, and the registry of families.

A *format* is one data file, ``NAME.yaml`` (packaged in ``appbuilder/formats/data/``,
or in a workspace's ``formats/``); a *family* is the class that knows how to make,
fix up, check and boot the disks of its formats. ``family: vmdk`` in a data file picks
the class; the class says which keys the file may give under ``disk:`` (its
:attr:`Format.OPTIONS`) and refuses any other. The keys every family takes:

``name``          must match the file name (``qcow2`` in ``qcow2.yaml``)
``family``        the family class: raw, qcow2, vmdk, ova, vhd (:mod:`appbuilder.formats.families`)
``description``   one line for help and listings
``arches``        the appbuild arches it is offered for (``[x86_64, x86]``)
``disk``          ``file`` (the disk's name, from ``{basename}``) and the family's options
``drive_format``  optional: qemu ``-drive format=`` for a boot test (default: the family's)
``descriptors``   jinja2 templates rendered beside the disk, in order:
                  ``[{template: vmware.vmx.j2, file: "{basename}.vmx"}]``
``vars``          what the templates see as ``vars``
``arch_vars``     more ``vars`` per arch (``{x86_64: {...}, x86: {...}}``)

A family is a subclass of :class:`Format` that names itself, which registers it::

    class Qcow2(QemuImgFormat, family="qcow2"):
        '''What a user reads about the family.'''
        OPTIONS = {"compat": Option("qcow2 version", choices=("0.10", "1.1"))}

and overrides what differs: :meth:`Format.make_disk`, :meth:`Format.make_reproducible`,
:meth:`Format.verify`, :meth:`Format.pack`, :meth:`Format.boot_drive`. Everything a
format's disk is made from is in its data, so two formats that name the same disk file
(``vmdk-esx`` and ``ova``) share one conversion when their options agree.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

from appbuilder.assemble.meta import ImageMeta
from appbuilder.core.arch import ARCHES
from appbuilder.core.errors import AppbuildError
from appbuilder.formats import qemu

#: family name -> class; filled by ``class X(Format, family="name")``
FAMILIES: dict[str, type["Format"]] = {}

#: the keys every family takes at the top level of NAME.yaml, with what they mean
COMMON_KEYS = {
    "name": "must match the file name",
    "family": "the family class that makes, fixes up, checks and boots the disk",
    "description": "one line for help and listings",
    "arches": "the appbuild arches the format is offered for",
    "disk": "file (the disk's name pattern, with {basename}) and the family's options",
    "drive_format": "qemu -drive format= for a boot test (default: the family's)",
    "descriptors": "jinja2 templates rendered beside the disk: [{template, file}]",
    "vars": "template variables",
    "arch_vars": "template variables per arch",
}

Say = Callable[[str], None]


class FormatError(AppbuildError):
    """A format name is unknown, not offered for an arch, or its definition is broken."""


def refuse_unless(cond: bool, path: Path | None, message: str) -> None:
    """Raise :class:`FormatError` with *message*, prefixed by the data file *path*, unless *cond*."""
    if not cond:
        raise FormatError(f"{path}: {message}")


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class Option:
    """One key a family takes under ``disk:``."""

    help: str
    kind: type = str  # str, int or bool
    choices: tuple = ()
    default: object = None  # None: not given, not passed on
    required: bool = False
    qemu: bool = True  # passed to ``qemu-img convert -o`` (False: the family uses it itself)

    def check(self, key: str, value, path: Path | None):
        """*value* as the family uses it; refuses a wrong type or a value not in choices."""
        if self.kind is bool:
            refuse_unless(isinstance(value, bool), path, f"disk.{key} must be true or false (got {value!r})")
        elif self.kind is int:
            ok = (isinstance(value, int) and not isinstance(value, bool)) or \
                (isinstance(value, str) and value.isdigit())
            refuse_unless(ok, path, f"disk.{key} must be a whole number (got {value!r})")
            value = int(value)
        else:
            refuse_unless(isinstance(value, (str, int, float)) and not isinstance(value, bool), path,
                     f"disk.{key} must be a string (got {value!r})")
            value = str(value)
        if self.choices:
            refuse_unless(value in self.choices, path,
                     f"disk.{key} must be one of {', '.join(map(str, self.choices))} (got {value!r})")
        return value

    def describe(self) -> str:
        text = self.help
        if self.choices:
            text += f"; one of {', '.join(map(str, self.choices))}"
        if self.required:
            text += "; required"
        elif self.default is not None:
            text += f"; default {_yaml_value(self.default)}"
        return text


def _yaml_value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _qemu_value(v) -> str:
    if isinstance(v, bool):  # qemu-img -o wants on/off
        return "on" if v else "off"
    return str(v)


# ---------------------------------------------------------------- what a disk is made with


@dataclass(frozen=True)
class QemuImg:
    """How ``qemu-img convert`` makes (or would make) the disk of a format from the raw disk."""

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
    template: str  # a template file name, looked up in the workspace's formats/, then the package's
    file: str  # name pattern


@dataclass(frozen=True)
class DiskJob:
    """One disk to make: what :meth:`Format.make_disk` and the steps after it are given."""

    raw: Path  # the assembled raw disk
    dest: Path  # where to write it (a temporary name)
    name: str  # the disk's final file name (what descriptors and VMDK extents call it)
    meta: ImageMeta
    runner: qemu.Processes  # runs (and stops) child processes
    jobs: int = 1  # threads a writer may use


# ---------------------------------------------------------------- the base class


@dataclass(frozen=True)
class Format:
    """One output format: a disk made from the raw disk, and descriptors beside it."""

    #: the family's name in ``family:`` (set by ``class X(Format, family="name")``)
    family: ClassVar[str] = ""
    #: the keys the family takes under ``disk:`` besides ``file``
    OPTIONS: ClassVar[dict[str, Option]] = {}
    #: top-level keys the family takes besides :data:`COMMON_KEYS`, with what they mean
    EXTRA_KEYS: ClassVar[dict[str, str]] = {}
    #: qemu ``-drive format=`` values a boot test may use for the disk; the first is the default
    DRIVE_FORMATS: ClassVar[tuple[str, ...]] = ()
    #: the disk is the raw disk byte for byte (so its sha256 is the raw disk's)
    copies_raw: ClassVar[bool] = False

    name: str
    description: str
    arches: tuple[str, ...]
    disk_file: str
    drive_format: str
    options: tuple[tuple[str, object], ...] = ()  # every declared option, in declaration order
    descriptors: tuple[DescriptorSpec, ...] = ()
    vars: dict = field(default_factory=dict, hash=False, compare=False)
    arch_vars: dict = field(default_factory=dict, hash=False, compare=False)
    path: Path | None = field(default=None, hash=False, compare=False)

    def __init_subclass__(cls, family: str | None = None, **kw) -> None:
        super().__init_subclass__(**kw)
        if family is not None:
            if family in FAMILIES:
                raise TypeError(f"two format families are called {family!r}: "
                                f"{FAMILIES[family].__qualname__} and {cls.__qualname__}")
            cls.family = family
            FAMILIES[family] = cls

    # ------------------------------------------------------------ reading NAME.yaml

    @classmethod
    def from_data(cls, data: dict, path: Path, has_template: Callable[[str], bool]) -> "Format":
        """The format *data* (NAME.yaml at *path*, already read) declares; refuses what the family does not take."""
        allowed = {**COMMON_KEYS, **cls.EXTRA_KEYS}
        unknown = set(data) - set(allowed)
        refuse_unless(not unknown, path, f"unknown keys {sorted(unknown)}; valid keys: {', '.join(sorted(allowed))}")
        for key in ("name", "description", "arches", "disk"):
            refuse_unless(key in data, path, f"missing {key!r}")
        name = data["name"]
        refuse_unless(name == path.stem, path, f"name {name!r} must match the file name {path.stem!r}")

        arches = tuple(data["arches"] or ())
        bad = [a for a in arches if a not in ARCHES]
        refuse_unless(arches and not bad, path,
                 f"arches must be a non-empty list of {', '.join(ARCHES)} (got {list(arches)})")

        disk = data["disk"]
        refuse_unless(isinstance(disk, dict) and "file" in disk, path, "disk needs 'file' (and the family's options)")
        refuse_unless(isinstance(disk["file"], str) and "{basename}" in disk["file"], path,
                 "disk.file must contain {basename}")
        unknown = set(disk) - {"file"} - set(cls.OPTIONS)
        takes = ", ".join(["file", *cls.OPTIONS])
        refuse_unless(not unknown, path, f"disk: unknown options {sorted(unknown)} for the {cls.family} family; "
                                    f"it takes: {takes}")
        options = []
        for key, opt in cls.OPTIONS.items():
            if key in disk and disk[key] is not None:
                options.append((key, opt.check(key, disk[key], path)))
            else:
                refuse_unless(not opt.required, path, f"disk.{key} is required for the {cls.family} family"
                                                 + (f" ({', '.join(map(str, opt.choices))})" if opt.choices else ""))
                options.append((key, opt.default))

        drive_format = data.get("drive_format") or cls.DRIVE_FORMATS[0]
        refuse_unless(drive_format in cls.DRIVE_FORMATS, path,
                 f"drive_format must be one of {', '.join(cls.DRIVE_FORMATS)} (a {cls.family} disk)")

        descriptors = []
        for d in data.get("descriptors") or ():
            refuse_unless(isinstance(d, dict) and set(d) == {"template", "file"}, path,
                     "each descriptor needs exactly 'template' and 'file'")
            refuse_unless(has_template(d["template"]), path, f"template {d['template']} not found")
            descriptors.append(DescriptorSpec(d["template"], d["file"]))

        arch_vars = data.get("arch_vars") or {}
        refuse_unless(isinstance(arch_vars, dict) and all(a in ARCHES for a in arch_vars), path,
                 f"arch_vars keys must be arches ({', '.join(ARCHES)})")
        if arch_vars:
            missing = [a for a in arches if a not in arch_vars]
            refuse_unless(not missing, path, f"arch_vars has nothing for {missing}")

        fields = dict(
            name=name, description=str(data["description"]), arches=arches, disk_file=disk["file"],
            drive_format=drive_format, options=tuple(options), descriptors=tuple(descriptors),
            vars=dict(data.get("vars") or {}), arch_vars={k: dict(v or {}) for k, v in arch_vars.items()}, path=path,
        )
        fields.update(cls.extra_fields(data, path, fields))
        spec = cls(**fields)
        spec.validate()
        return spec

    @classmethod
    def extra_fields(cls, data: dict, path: Path, fields: dict) -> dict:
        """Constructor arguments from the family's :attr:`EXTRA_KEYS` (none here)."""
        return {}

    def validate(self) -> None:
        """Checks across options (raise :class:`FormatError` naming :attr:`path`); none here."""

    def require(self, cond: bool, message: str) -> None:
        refuse_unless(cond, self.path, message)

    @classmethod
    def describe(cls) -> str:
        """The family's documentation: its docstring, and the options its data files may give."""
        doc = inspect.cleandoc(cls.__doc__ or "")
        lines = [f"family {cls.family}", "", doc, "",
                 f"boot tests attach the disk as: {', '.join(cls.DRIVE_FORMATS)}", "", "disk: options:",
                 "  file: the disk's name, a pattern with {basename}; required"]
        lines += [f"  {key}: {opt.describe()}" for key, opt in cls.OPTIONS.items()]
        lines += [f"{key}: {text}" for key, text in cls.EXTRA_KEYS.items()]
        return "\n".join(lines)

    # ------------------------------------------------------------ what the disk is

    def option(self, key: str, default=None):
        value = dict(self.options).get(key)
        return default if value is None else value

    @property
    def qemu_img(self) -> QemuImg | None:
        """What qemu-img is (or would be) told to make; None for a copy of the raw disk."""
        return None

    @property
    def writer(self) -> str:
        return "qemu-img"

    @functools.cached_property
    def disk(self) -> DiskSpec:
        return DiskSpec(self.disk_file, self.qemu_img, self.writer)

    @property
    def conversion_key(self) -> tuple:
        return self.disk.conversion_key

    @property
    def heavy(self) -> bool:
        """Making the disk is CPU-bound (it compresses): such conversions are started first, *jobs* at a time."""
        return False

    @property
    def compressed(self) -> bool:
        """The disk is compressed."""
        return self.heavy

    @property
    def label(self) -> str:
        """How the conversion is shown in progress lines."""
        q = self.qemu_img
        if q is None:
            return "raw copy"
        return (f"{q.format}" + (f" {q.subformat}" if q.subformat else "") + (" compressed" if q.compress else "")
                + (", appbuild writer" if self.writer != "qemu-img" else ""))

    # ------------------------------------------------------------ file names

    def disk_name(self, basename: str) -> str:
        return self.disk_file.format(basename=basename)

    def descriptor_names(self, basename: str) -> list[str]:
        return [d.file.format(basename=basename) for d in self.descriptors]

    def outputs(self, basename: str) -> list[str]:
        """The files this format leaves in the image store, in a stable order."""
        return [self.disk_name(basename), *self.descriptor_names(basename)]

    def made_files(self) -> list[tuple[str, object]]:
        """(name pattern, how it is made) of every file the format writes: two formats
        may write the same file only if they make it the same way."""
        made: list[tuple[str, object]] = [(self.disk_file, self.conversion_key)]
        made += [(d.file, (d.template, repr(sorted(self.vars.items())), repr(sorted(self.arch_vars.items()))))
                 for d in self.descriptors]
        return made

    def template_vars(self, arch: str) -> dict:
        """``vars`` overlaid with ``arch_vars[arch]``: what the templates see as ``vars``."""
        return {**self.vars, **self.arch_vars.get(arch, {})}

    def supports(self, arch: str) -> bool:
        return arch in self.arches

    # ------------------------------------------------------------ the steps

    def make_disk(self, job: DiskJob) -> None:
        """Write the disk of *job* from its raw disk."""
        raise NotImplementedError(f"the {self.family} family does not say how its disk is made")

    def make_reproducible(self, job: DiskJob) -> None:
        """Replace what the converter made up (random ids, the time) with values derived from ``job.meta``."""

    def verify(self, job: DiskJob) -> None:
        """Check the disk reads back as what was asked for, with the raw disk's virtual size."""
        raise NotImplementedError(f"the {self.family} family does not say how its disk is checked")

    def pack(self, work: Path, files: dict[str, Path], meta: ImageMeta, runner: qemu.Processes, say: Say) -> None:
        """After the disk and descriptors are in *work* (*files*: final name -> file): make
        what else the format leaves (an archive); nothing here."""

    def boot_drive(self, files: list[Path], scratch: Path) -> tuple[Path, str]:
        """(disk file, qemu ``-drive format=``) to boot this format's image *files*."""
        ending = self.disk_file.replace("{basename}", "")
        disk = next((f for f in files if f.name.endswith(ending)), files[0])
        return disk, self.drive_format


class QemuImgFormat(Format):
    """A family whose disk ``qemu-img convert`` makes and ``qemu-img info``/``check`` verify."""

    #: ``qemu-img convert -O``
    QEMU_FORMAT: ClassVar[str] = ""

    @property
    def qemu_img(self) -> QemuImg:
        opts = tuple((k, _qemu_value(v)) for k, v in self.options if v is not None and self.OPTIONS[k].qemu)
        return QemuImg(self.QEMU_FORMAT, opts, compress=self.compress)

    @property
    def compress(self) -> bool:
        """``qemu-img convert -c``."""
        return False

    def make_disk(self, job: DiskJob) -> None:
        q = self.qemu_img
        job.runner.run(qemu.convert_argv(job.raw, job.dest, fmt=q.format, options=q.option_string,
                                         compress=q.compress), what=f"qemu-img convert to {job.name}")

    def verify(self, job: DiskJob) -> None:
        q = self.qemu_img
        data = qemu.info(job.dest, q.format, runner=job.runner)
        problems = []
        if data.get("format") != q.format:
            problems.append(f"format {data.get('format')!r}, expected {q.format!r}")
        if data.get("virtual-size") != job.meta.disk_size:
            problems.append(f"virtual size {data.get('virtual-size')}, expected {job.meta.disk_size}")
        problems += self.problems(data, job)
        if problems:
            raise qemu.ConversionError(f"{job.name} did not verify: {'; '.join(problems)}")
        qemu.check(job.dest, q.format, runner=job.runner)

    def problems(self, info: dict, job: DiskJob) -> list[str]:
        """What the family checks beyond format and virtual size (*info*: ``qemu-img info``)."""
        return []
