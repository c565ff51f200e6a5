"""The qcow2 family: QEMU's own copy-on-write format."""

from __future__ import annotations

from appbuilder.formats.families.base import Option, QemuImgFormat


class Qcow2(QemuImgFormat, family="qcow2"):
    """A qcow2 disk for QEMU/KVM, libvirt and OpenStack, made by ``qemu-img convert -O
    qcow2`` (with ``-c`` when ``compress`` is true: zlib-compressed clusters).

    qcow2 holds nothing random: as long as clusters are written in order it is the
    same bytes every time, which is why appbuild never passes ``-W`` (out-of-order
    writes make a compressed qcow2 differ from run to run). Checked with ``qemu-img
    info`` (format, virtual size) and ``qemu-img check``. Boot tests attach it as
    ``format=qcow2``.
    """

    QEMU_FORMAT = "qcow2"
    DRIVE_FORMATS = ("qcow2",)
    OPTIONS = {
        "compat": Option("qcow2 version: 1.1 is qcow2 v3 (QEMU >= 1.1), 0.10 the old v2",
                         choices=("0.10", "1.1")),
        "cluster_size": Option("cluster size in bytes (qemu-img's default: 65536)", kind=int),
        "compression_type": Option("how compressed clusters are compressed: zlib (every reader) or zstd "
                                   "(QEMU >= 5.1)", choices=("zlib", "zstd")),
        "lazy_refcounts": Option("defer reference count updates (compat 1.1 only)", kind=bool),
        "compress": Option("compress the clusters (qemu-img convert -c)", kind=bool, default=False, qemu=False),
    }

    @property
    def compress(self) -> bool:
        return bool(self.option("compress"))

    @property
    def heavy(self) -> bool:
        return self.compress
