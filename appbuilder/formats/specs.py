"""The output formats an image can be written in: data files read into format objects.

Each format is one data file, ``NAME.yaml``, whose ``family:`` names the class that
makes its disk (:mod:`appbuilder.formats.families`)::

    name: vmdk                       # must match the file name
    family: vmdk                     # raw, qcow2, vmdk, ova, vhd (the classes)
    description: ...                 # one line for `appbuild` help and listings
    arches: [x86_64, x86]            # which appbuild arches it is offered for
    disk:
      file: "{basename}.vmdk"        # the disk file, named from ImageMeta.basename
      subformat: monolithicSparse    # the family's options (each family lists its own;
      adapter_type: lsilogic         #   an option it does not take is refused)
    descriptors:                     # jinja2 templates, rendered in order
      - {template: vmware.vmx.j2, file: "{basename}.vmx"}
    vars: {...}                      # template variables
    arch_vars: {x86_64: {...}, x86: {...}}   # template variables per arch

The formats appbuild ships are package data (``appbuilder/formats/data/``: the
``*.yaml`` files and the ``*.j2`` templates). A workspace's ``formats/``
(``Settings.formats_dir``) may add or override: a ``NAME.yaml`` there replaces the
packaged format of that name or adds a new one, and a template there is used instead
of the packaged template of the same name (templates are looked up in the workspace's
``formats/`` first, then in the package's).

:func:`load_formats` reads and validates them all; :func:`resolve_formats` turns what a
user typed (``qcow2,vhd`` or ``all``) into format objects, refusing unknown names and
formats not offered for an arch with a message that lists the valid ones.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable

import yaml

from appbuilder.core.arch import ARCHES
from appbuilder.formats.families import family
from appbuilder.formats.families.base import Format, FormatError, refuse_unless

#: the formats and templates appbuild ships (package data)
DATA_DIR = Path(__file__).resolve().parent / "data"
#: the device table beside the formats (appbuilder.formats.targets), not a format
TARGETS_FILE = "targets.yaml"

__all__ = ["DATA_DIR", "TARGETS_FILE", "Format", "FormatError", "boot_drive", "get_format", "load_formats", "resolve_formats",
           "template_dirs"]


def template_dirs(workspace: Path | None = None) -> tuple[Path, ...]:
    """Where descriptor templates are looked up: the workspace's ``formats/`` (if it
    exists), then the package's."""
    dirs = [Path(workspace).resolve()] if workspace is not None and Path(workspace).is_dir() else []
    return (*dirs, DATA_DIR)


def _definitions(workspace: Path | None) -> dict[str, Path]:
    """NAME -> the data file that defines it: the package's, replaced or added to by the workspace's."""
    files = {p.stem: p for p in DATA_DIR.glob("*.yaml") if p.name != TARGETS_FILE}
    if workspace is not None and workspace.is_dir():
        files.update({p.stem: p for p in workspace.glob("*.yaml") if p.name != TARGETS_FILE})
    return dict(sorted(files.items()))


def _parse(path: Path, dirs: tuple[Path, ...]) -> Format:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FormatError(f"{path}: not valid YAML: {exc}") from None
    refuse_unless(isinstance(data, dict), path, "expected a mapping at the top level")
    refuse_unless("family" in data, path, "missing 'family' (the class that makes the disk)")
    cls = family(data["family"], path)
    return cls.from_data(data, path, lambda template: any((d / template).is_file() for d in dirs))


def _check_shared_names(specs: dict[str, Format]) -> None:
    """Two formats may name the same file only if they make it the same way."""
    by_name: dict[str, tuple[str, object]] = {}
    for spec in specs.values():
        for pattern, how in spec.made_files():
            seen = by_name.setdefault(pattern, (spec.name, how))
            if seen[1] != how:
                raise FormatError(f"formats {seen[0]} and {spec.name} both write {pattern!r} but make it differently")


def _signature(workspace: Path | None) -> tuple:
    """What the workspace's ``formats/`` holds now (names, sizes, times): a changed file is read again."""
    if workspace is None or not workspace.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in workspace.iterdir()))


@functools.lru_cache(maxsize=8)
def _load(workspace: Path | None, signature: tuple) -> dict[str, Format]:
    dirs = template_dirs(workspace)
    specs = {name: _parse(path, dirs) for name, path in _definitions(workspace).items()}
    if not specs:
        raise FormatError(f"no formats defined in {DATA_DIR} (expected NAME.yaml files; is appbuild installed "
                          "with its package data?)")
    _check_shared_names(specs)
    return specs


def load_formats(directory: Path | None = None) -> dict[str, Format]:
    """Every format, by name: the packaged ones, with those of the workspace's ``formats/``
    *directory* (``Settings.formats_dir``; it need not exist) replacing or adding to them."""
    workspace = Path(directory).resolve() if directory is not None else None
    return dict(_load(workspace, _signature(workspace)))


def get_format(name: str, directory: Path | None = None) -> Format:
    specs = load_formats(directory)
    if name not in specs:
        raise FormatError(f"unknown format {name!r}; valid formats: {', '.join(sorted(specs))}")
    return specs[name]


def resolve_formats(requested: str | Iterable[str], arch: str | None = None,
                    directory: Path | None = None) -> list[Format]:
    """The formats for ``"qcow2,vhd"``, ``["qcow2", "vhd"]`` or ``"all"``, in the order given.

    ``all`` means every format offered for *arch* (every format if arch is None). A
    format asked for by name that is not offered for *arch* is an error. *directory* is
    the workspace's ``formats/`` (see :func:`load_formats`).
    """
    specs = load_formats(directory)
    names = requested.split(",") if isinstance(requested, str) else list(requested)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise FormatError(f"no format given; valid formats: {', '.join(sorted(specs))}, or all")
    if arch is not None and arch not in ARCHES:
        raise FormatError(f"unknown architecture {arch!r}; valid ones: {', '.join(ARCHES)}")
    out: list[Format] = []
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


def boot_drive(spec: Format, files: list[Path], scratch: Path) -> tuple[Path, str]:
    """(disk file, qemu ``-drive format=``) to boot the image *files* of format *spec*.

    The family decides: for an OVA the disk is extracted into *scratch* first.
    """
    return spec.boot_drive(files, scratch)
