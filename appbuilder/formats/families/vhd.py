"""The VHD family: Microsoft's Virtual Hard Disk (qemu's ``vpc``)."""

from __future__ import annotations

from appbuilder.formats import vhd as vhd_file
from appbuilder.formats.families.base import DiskJob, Option, QemuImgFormat

MIB = 1 << 20


class Vhd(QemuImgFormat, family="vhd"):
    """A VHD for Azure and Hyper-V, made by ``qemu-img convert -O vpc``: ``fixed`` (the
    raw disk followed by a 512-byte footer; what Azure takes) or ``dynamic`` (sparse,
    2 MiB blocks, a copy of the footer at the start).

    qemu-img writes the current time and a random unique id into the footer; appbuild
    replaces them with the group version's ``source_date_epoch`` and a UUID derived from
    the image and the file's name, and recomputes the checksum, in every footer copy.
    ``force_size`` keeps the virtual size exactly the raw disk's (a whole number of MiB,
    as Azure wants) instead of a CHS-rounded one. Checked with ``qemu-img info`` and by
    reading the footer back (its disk type and size). Boot tests attach it as
    ``format=vpc``, never probed: qemu-img probes a fixed VHD as raw.
    """

    QEMU_FORMAT = "vpc"
    DRIVE_FORMATS = ("vpc",)
    OPTIONS = {
        "subformat": Option("fixed (the raw disk plus a footer) or dynamic (sparse)", choices=("fixed", "dynamic"),
                            required=True),
        "force_size": Option("keep the virtual size exactly the raw disk's, not a CHS geometry's", kind=bool,
                             default=True),
    }

    def make_reproducible(self, job: DiskJob) -> None:
        vhd_file.make_reproducible(job.dest, unix_time=job.meta.source_date_epoch,
                                   unique_id=job.meta.derived_uuid(f"vhd-unique-id:{job.name}"))

    def problems(self, info: dict, job: DiskJob) -> list[str]:
        subformat = self.option("subformat")
        footer = vhd_file.read_footer(job.dest)
        problems = []
        if footer.kind != subformat:
            problems.append(f"VHD footer says {footer.kind}, expected {subformat}")
        if footer.current_size != job.meta.disk_size or footer.current_size % MIB:
            problems.append(f"VHD footer size {footer.current_size} is not the raw size {job.meta.disk_size}")
        return problems
