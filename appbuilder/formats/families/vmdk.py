"""The VMDK family (VMware's virtual disks) and the OVA family (a VMDK packed with its OVF)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appbuilder.assemble.meta import ImageMeta
from appbuilder.formats import ova as ova_file
from appbuilder.formats import qemu
from appbuilder.formats import vmdk as vmdk_file
from appbuilder.formats.families.base import (
    DiskJob,
    Option,
    QemuImgFormat,
    Say,
    refuse_unless,
)
from appbuilder.formats.vmdkstream import write_stream_optimized

WRITERS = ("qemu-img", "appbuild")


class Vmdk(QemuImgFormat, family="vmdk"):
    """A one-file VMDK: ``monolithicSparse`` (growable; VMware Workstation and Player,
    beside a ``.vmx``) or ``streamOptimized`` (deflated grains; what ESXi/vSphere ingest
    from an OVF package).

    ``writer: qemu-img`` makes it with ``qemu-img convert -O vmdk``; qemu-img puts a
    random content id (``CID``) into the embedded descriptor and names the extent after
    the temporary file it wrote, so appbuild rewrites both: a CID derived from the
    image and the file's final name. ``writer: appbuild`` (streamOptimized only) is
    appbuild's own writer, which deflates on every core in VMware's stream layout and
    writes the derived CID and the final name itself. Checked with ``qemu-img info``
    (format, virtual size, create type) and ``qemu-img check``. Boot tests attach it as
    ``format=vmdk``.
    """

    QEMU_FORMAT = "vmdk"
    DRIVE_FORMATS = ("vmdk",)
    OPTIONS = {
        "subformat": Option("monolithicSparse (growable) or streamOptimized (deflated, for OVF/OVA)",
                            choices=("monolithicSparse", "streamOptimized"), required=True),
        "adapter_type": Option("the disk controller the descriptor names", default="lsilogic",
                               choices=("ide", "lsilogic", "buslogic", "legacyESX")),
        "writer": Option("qemu-img, or appbuild: appbuild's parallel streamOptimized writer "
                         "(appbuilder/formats/vmdkstream.py)", choices=WRITERS, default="qemu-img", qemu=False),
    }

    def validate(self) -> None:
        self.require(self.writer == "qemu-img" or self.option("subformat") == "streamOptimized",
                     "writer appbuild writes streamOptimized VMDKs only")

    @property
    def writer(self) -> str:
        return self.option("writer", "qemu-img")

    @property
    def heavy(self) -> bool:
        return self.option("subformat") == "streamOptimized"  # every grain is deflated

    def cid(self, job: DiskJob) -> int:
        """The descriptor's content id: derived from the image and the disk's final name."""
        return job.meta.derived_u32(f"vmdk-cid:{job.name}")

    def make_disk(self, job: DiskJob) -> None:
        if self.writer == "appbuild":
            write_stream_optimized(job.raw, job.dest, cid=self.cid(job), extent_name=job.name,
                                   adapter=self.option("adapter_type", "lsilogic"), jobs=job.jobs,
                                   stop=job.runner.stopped)
        else:
            super().make_disk(job)

    def make_reproducible(self, job: DiskJob) -> None:
        if self.writer == "qemu-img":  # appbuild's own writer derives its CID itself
            vmdk_file.make_reproducible(job.dest, cid=self.cid(job), extent_name=job.name)

    def problems(self, info: dict, job: DiskJob) -> list[str]:
        created = info.get("format-specific", {}).get("data", {}).get("create-type")
        expected = self.option("subformat")
        return [] if created == expected else [f"create type {created!r}, expected {expected!r}"]


@dataclass(frozen=True)
class ArchiveSpec:
    file: str  # name pattern of the tar
    members: tuple[str, ...]  # name patterns, in tar order


@dataclass(frozen=True)
class Ova(Vmdk, family="ova"):
    """An Open Virtual Appliance: one tar (ustar) holding the OVF descriptor first, then
    the manifest, then the streamOptimized VMDK, in the order ``archive.members`` gives
    (the OVF 1.0 specification wants the descriptor first). The disk is made as the
    VMDK family makes it (the same options give the same disk, shared with a format
    that leaves the files unpacked, such as ``vmdk-esx``); the descriptors are rendered,
    then packed: owner 0:0, mode 0644, every mtime the image's ``source_date_epoch``, so
    the same inputs give the same bytes. Only the ``.ova`` is kept. Boot tests extract
    the ``.vmdk`` member and attach it as ``format=vmdk``.
    """

    EXTRA_KEYS = {"archive": "the tar: file (its name pattern) and members (the disk and every descriptor, "
                             "each once, OVF descriptor first)"}

    archive: ArchiveSpec | None = None

    @classmethod
    def extra_fields(cls, data: dict, path: Path, fields: dict) -> dict:
        a = data.get("archive")
        refuse_unless(isinstance(a, dict) and set(a) == {"file", "members"}, path, "archive needs 'file' and 'members'")
        refuse_unless(isinstance(a["file"], str) and "{basename}" in a["file"], path,
                      "archive.file must contain {basename}")
        members = tuple(a["members"] or ())
        own = {fields["disk_file"], *(d.file for d in fields["descriptors"])}
        refuse_unless(set(members) == own and len(members) == len(own), path,
                 f"archive.members must list the disk and every descriptor once: {sorted(own)}")
        refuse_unless(members[0].endswith(".ovf"), path, "archive.members must start with the OVF descriptor (.ovf)")
        return {"archive": ArchiveSpec(a["file"], members)}

    def validate(self) -> None:
        super().validate()
        self.require(self.option("subformat") == "streamOptimized", "an OVA holds a streamOptimized VMDK")

    def archive_name(self, basename: str) -> str:
        return self.archive.file.format(basename=basename)

    def outputs(self, basename: str) -> list[str]:
        return [self.archive_name(basename)]  # the disk and descriptors only live inside

    def made_files(self) -> list[tuple[str, object]]:
        return [*super().made_files(), (self.archive.file, ("archive", self.name))]

    def pack(self, work: Path, files: dict[str, Path], meta: ImageMeta, runner: qemu.Processes, say: Say) -> None:
        archive = work / self.archive_name(meta.basename)
        members = [m.format(basename=meta.basename) for m in self.archive.members]
        say(f"{archive.name}: packing {', '.join(members)}")
        ova_file.write_ova(archive, [(m, files[m]) for m in members], mtime=meta.source_date_epoch,
                           stop=runner.stopped)

    def boot_drive(self, files: list[Path], scratch: Path) -> tuple[Path, str]:
        return ova_file.extract_disk(files[0], scratch), self.drive_format
