"""A streamOptimized VMDK writer that compresses on every core.

``qemu-img convert -O vmdk -o subformat=streamOptimized`` deflates one grain after the
other on one core (and ``-W`` does not help it). This writer reads the raw disk grain
by grain (64 KiB), skips all-zero grains (and holes, via SEEK_DATA), deflates the
others in a thread pool (zlib releases the GIL) and writes them in disk order, so the
output is the same whatever the number of threads.

The layout is VMware's own stream-optimized one (VMDK specification 5.0, section
"Stream-Optimized Compressed Sparse Extents"), as ESXi and ovftool write it:

    header (gdOffset = GD_AT_END) | descriptor | grain markers + deflated grains ...
    | GT marker + grain table (after the grains it covers) ... | GD marker + grain directory
    | footer marker + header copy (with the real gdOffset) | end-of-stream marker

Grain tables of regions without data are not written (their directory entry is 0).
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from appbuilder.core.cpus import usable_cpus
from appbuilder.core.errors import AppbuildError

SECTOR = 512
GRAIN_SECTORS = 128  # 64 KiB grains
GRAIN = GRAIN_SECTORS * SECTOR
GTES_PER_GT = 512  # one grain table covers 32 MiB
GD_AT_END = 0xFFFFFFFFFFFFFFFF
DESCRIPTOR_SECTORS = 20
OVERHEAD_SECTORS = 128  # header + descriptor, padded to 64 KiB like VMware does
FLAGS = 0x1 | 0x10000 | 0x20000  # valid newline test, compressed grains, markers
MARKER_EOS, MARKER_GT, MARKER_GD, MARKER_FOOTER = 0, 1, 2, 3
LEVEL = 6  # zlib's default, what qemu-img and VMware use
ZERO = bytes(GRAIN)


class StreamWriteError(AppbuildError):
    """The raw disk cannot be written as a streamOptimized VMDK."""


def descriptor(capacity_sectors: int, *, cid: int, extent_name: str, adapter: str = "lsilogic") -> str:
    """The text descriptor (what qemu-img writes for the same disk, with our CID)."""
    heads, sectors = (255, 63) if adapter in ("lsilogic", "buslogic", "legacyESX") else (16, 63)
    cylinders = min(capacity_sectors // (heads * sectors), 65535)
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        f"CID={cid & 0xFFFFFFFF:08x}\n"
        "parentCID=ffffffff\n"
        'createType="streamOptimized"\n'
        "\n"
        "# Extent description\n"
        f'RW {capacity_sectors} SPARSE "{extent_name}"\n'
        "\n"
        "# The Disk Data Base\n"
        "#DDB\n"
        "\n"
        'ddb.virtualHWVersion = "4"\n'
        f'ddb.geometry.cylinders = "{cylinders}"\n'
        f'ddb.geometry.heads = "{heads}"\n'
        f'ddb.geometry.sectors = "{sectors}"\n'
        f'ddb.adapterType = "{adapter}"\n'
        'ddb.toolsVersion = "2147483647"\n'
    )


def _header(capacity_sectors: int, gd_offset: int) -> bytes:
    head = struct.pack(
        "<4sIIQQQQIQQQB4sH", b"KDMV", 3, FLAGS, capacity_sectors, GRAIN_SECTORS, 1, DESCRIPTOR_SECTORS,
        GTES_PER_GT, 0, gd_offset, OVERHEAD_SECTORS, 0, b"\n \r\n", 1,
    )
    return head + bytes(SECTOR - len(head))


def _marker(num_sectors: int, kind: int) -> bytes:
    return struct.pack("<QII", num_sectors, 0, kind) + bytes(SECTOR - 16)


def _pad(n: int) -> int:
    return -n % SECTOR


def _data_ranges(fd: int, size: int):
    """(start, end) byte ranges that may hold data (holes skipped where the file system says)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole from here on
            return
        try:
            end = os.lseek(fd, start, os.SEEK_HOLE)
        except OSError:
            end = size
        yield start, min(end, size)
        pos = end


def _grains(fd: int, size: int):
    """Indexes of the grains that may hold data, in order, each once."""
    last = -1
    for start, end in _data_ranges(fd, size):
        for g in range(max(start // GRAIN, last + 1), -(-end // GRAIN)):
            yield g
            last = g


def _compress(fd: int, index: int, size: int) -> tuple[int, bytes | None]:
    data = os.pread(fd, GRAIN, index * GRAIN)
    if len(data) < GRAIN:
        data += bytes(GRAIN - len(data))
    if data == ZERO:
        return index, None
    return index, zlib.compress(data, LEVEL)


def write_stream_optimized(raw: Path, dest: Path, *, cid: int, extent_name: str, adapter: str = "lsilogic",
                           jobs: int | None = None, stop=None) -> None:
    """Write *raw* as the streamOptimized VMDK *dest*, deflating with *jobs* threads.

    *stop* (a threading.Event) aborts between grains with InterruptedError.
    """
    size = Path(raw).stat().st_size
    if size % SECTOR:
        raise StreamWriteError(f"{raw}: size {size} is not a whole number of sectors")
    capacity = size // SECTOR
    n_grains = -(-size // GRAIN)
    n_tables = -(-n_grains // GTES_PER_GT)
    text = descriptor(capacity, cid=cid, extent_name=extent_name, adapter=adapter).encode()
    if len(text) >= DESCRIPTOR_SECTORS * SECTOR:
        raise StreamWriteError("the VMDK descriptor is too long")
    jobs = max(1, jobs or usable_cpus())
    directory = [0] * n_tables  # sector offset of each written grain table
    table = [0] * GTES_PER_GT
    table_no = 0

    fd = os.open(raw, os.O_RDONLY)
    try:
        with open(dest, "wb") as out, ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="deflate") as pool:
            out.write(_header(capacity, GD_AT_END))
            out.write(text + bytes(DESCRIPTOR_SECTORS * SECTOR - len(text)))
            out.write(bytes((OVERHEAD_SECTORS - 1 - DESCRIPTOR_SECTORS) * SECTOR))
            pos = OVERHEAD_SECTORS * SECTOR

            def flush_tables(upto: int) -> None:
                """Write the grain tables before table number *upto* that hold grains."""
                nonlocal table_no, table, pos
                while table_no < upto:
                    if any(table):
                        out.write(_marker(GTES_PER_GT * 4 // SECTOR, MARKER_GT))
                        directory[table_no] = pos // SECTOR + 1
                        out.write(struct.pack(f"<{GTES_PER_GT}I", *table))
                        pos += SECTOR + GTES_PER_GT * 4
                        table = [0] * GTES_PER_GT
                    table_no += 1

            pending: list[Future] = []

            def drain(keep: int) -> None:
                nonlocal pos
                while len(pending) > keep:
                    index, data = pending.pop(0).result()
                    if data is None:
                        continue
                    flush_tables(index // GTES_PER_GT)
                    table[index % GTES_PER_GT] = pos // SECTOR
                    record = struct.pack("<QI", index * GRAIN_SECTORS, len(data)) + data
                    out.write(record + bytes(_pad(len(record))))
                    pos += len(record) + _pad(len(record))

            for index in _grains(fd, size):
                if stop is not None and stop.is_set():
                    raise InterruptedError(f"stopped while writing {dest.name}")
                pending.append(pool.submit(_compress, fd, index, size))
                drain(keep=4 * jobs)
            drain(keep=0)
            flush_tables(n_tables)

            gd_sectors = -(-n_tables * 4 // SECTOR)
            out.write(_marker(gd_sectors, MARKER_GD))
            gd_offset = pos // SECTOR + 1
            gd = struct.pack(f"<{n_tables}I", *directory)
            out.write(gd + bytes(gd_sectors * SECTOR - len(gd)))
            out.write(_marker(1, MARKER_FOOTER))
            out.write(_header(capacity, gd_offset))
            out.write(_marker(0, MARKER_EOS))
    finally:
        os.close(fd)
