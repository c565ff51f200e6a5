"""Config drives: a small ISO 9660 or FAT volume holding ``user-data`` for the appliance.

``appbuild context make user-data.ini -o ctx.iso [--add FILE ...]`` writes a volume
labelled ``cidata`` (what the appliance's agent and cloud-init's NoCloud look for)
with the files ``user-data`` (the given INI file), ``meta-data`` (an instance id
derived from the user data) and any extra files (scripts a contextualization command
runs from the drive, mounted on ``/media/context``). Lines of the user data the
appliance would report and skip are returned as ``problems`` (the drive is made
anyway: the appliance applies the rest).

Rootless and reproducible: the ISO is made by ``xorriso`` (Rock Ridge, so modes and
the executable bit survive, and Joliet), the FAT image by ``mkfs.fat --invariant``
and ``mcopy``; every time stamp in either is ``SOURCE_DATE_EPOCH`` when it is set,
else the newest modification time of the inputs, so the same inputs give the same
bytes. The format follows the output's suffix (``.iso``: ISO 9660, ``.img``/``.fat``/
``.vfat``: FAT) unless given.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appbuilder.context.userdata import check_user_data
from appbuilder.core.errors import AppbuildError

LABEL = "cidata"
FORMATS = ("iso", "fat")
SUFFIX_FORMATS = {".iso": "iso", ".img": "fat", ".fat": "fat", ".vfat": "fat"}
RESERVED = ("user-data", "meta-data")


class ContextError(AppbuildError):
    """The config drive cannot be made (bad input, missing tool)."""


@dataclass(frozen=True)
class ConfigDrive:
    path: Path
    format: str
    label: str
    files: tuple[str, ...]
    size: int
    problems: tuple[str, ...] = ()  # lines of the user data the appliance will report and skip


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ContextError(f"{name} is not installed (apt-get install {package})")
    return found


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise ContextError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-800:]}")


def instance_id(user_data: bytes) -> str:
    return "iid-appbuild-" + hashlib.sha256(user_data).hexdigest()[:16]


def format_for(output: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise ContextError(f"unknown config drive format {fmt!r}; valid ones: {', '.join(FORMATS)}")
        return fmt
    found = SUFFIX_FORMATS.get(output.suffix.lower())
    if not found:
        raise ContextError(f"cannot tell the format from {output.name!r}: name it .iso (ISO 9660) or .img (FAT), "
                           f"or pass --format iso|fat")
    return found


def make_config_drive(user_data: Path, output: Path, *, extra: list[Path] = (), fmt: str | None = None,
                      label: str = LABEL, source_date_epoch: int | None = None) -> ConfigDrive:
    """Write a config drive holding *user_data* (as ``user-data``) and *extra* files to *output*."""
    output = Path(output)
    fmt = format_for(output, fmt)
    try:
        data = Path(user_data).read_bytes()
    except OSError as exc:
        raise ContextError(f"cannot read the user data {user_data}: {exc.strerror}") from None
    if b"[cernvm]" not in data.lower():
        raise ContextError(f"{user_data} has no [cernvm] section: the appliance would find nothing to do")
    inputs = [Path(user_data), *map(Path, extra)]
    names = {}
    for path in extra:
        path = Path(path)
        if not path.is_file():
            raise ContextError(f"{path} is not a file")
        if path.name in RESERVED or path.name in names:
            raise ContextError(f"two files named {path.name!r} on the drive ({path} and "
                               f"{names.get(path.name, 'the generated ' + path.name)})")
        names[path.name] = path
    if not label or len(label) > 11:
        raise ContextError(f"bad volume label {label!r} (1 to 11 characters)")
    if source_date_epoch is None:
        env_epoch = os.environ.get("SOURCE_DATE_EPOCH")
        source_date_epoch = int(env_epoch) if env_epoch else int(max(p.stat().st_mtime for p in inputs))

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="appbuild-context-") as tmp:
        tree = Path(tmp) / "drive"
        tree.mkdir()
        (tree / "user-data").write_bytes(data)
        (tree / "meta-data").write_text(f"instance-id: {instance_id(data)}\n")
        for name, path in names.items():
            shutil.copyfile(path, tree / name)
            os.chmod(tree / name, 0o755 if os.access(path, os.X_OK) else 0o644)
        for entry in [*tree.iterdir(), tree]:
            os.utime(entry, (source_date_epoch, source_date_epoch))
        partial = Path(tmp) / ("drive." + fmt)
        if fmt == "iso":
            _make_iso(tree, partial, label, source_date_epoch)
        else:
            _make_fat(tree, partial, label, source_date_epoch)
        shutil.move(partial, output)
    return ConfigDrive(output, fmt, label, tuple(["user-data", "meta-data", *sorted(names)]), output.stat().st_size,
                       tuple(check_user_data(data.decode("utf-8", "replace"))))


def _make_iso(tree: Path, out: Path, label: str, epoch: int) -> None:
    xorriso = _tool("xorriso", "xorriso")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC"}
    _run([xorriso, "-as", "mkisofs", "-quiet", "-o", str(out), "-V", label, "-J", "-r", str(tree)], "xorriso", env)


def _make_fat(tree: Path, out: Path, label: str, epoch: int) -> None:
    mkfs = _tool("mkfs.fat", "dosfstools")
    mcopy = _tool("mcopy", "mtools")
    payload = sum(p.stat().st_size for p in tree.iterdir())
    kib = max(1440, (payload * 2 + 512 * 1024) // 1024)
    volume_id = hashlib.sha256(label.encode() + str(epoch).encode()).hexdigest()[:8]
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC"}
    _run([mkfs, "-C", "--invariant", "-i", volume_id, "-n", label.upper(), str(out), str(kib)], "mkfs.fat", env)
    files = sorted(str(p) for p in tree.iterdir())
    _run([mcopy, "-m", "-i", str(out), *files, "::/"], "mcopy", env)
