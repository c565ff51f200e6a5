"""Benchmark: `--format all` for one arch, parallel convert_all against qemu-img one after another.

Builds a realistic raw disk (an MBR and one ext4 partition made with ``mke2fs -d``
from about 300 MB of real files: /usr/lib/python3.11 and parts of /usr/share), then
times, round-robin in the same run:

* **parallel**: ``convert_all(raw, "all", ...)``: every format, conversions at the
  same time, shared conversions done once, plus everything the sequential reference
  does not do (reproducibility patches, qemu-img info/check verification, descriptors,
  the OVA tar, the AMI manifest's sha256);
* **sequential**: one ``qemu-img convert`` per format (same options, including the
  duplicates: ova and vmdk-esx each convert to streamOptimized, raw and ami each
  copy), one after another;
* **sequential-unique**: the distinct conversions only, one after another (what
  parallelism alone gains, without the sharing).

Prints per-format times and sizes, the ratio sequential / parallel (goal >= 1.5) and
a JSON line.

    /tmp/v/bin/python bench/formats.py [--reps 2] [--size-mib 1024] [--data-mb 300] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (  # first: puts the project on sys.path
    emit,
    interleave,
    mb,
    med,
    r3,
    run,
    sequential_argv,
    table,
)

from appbuilder.assemble.meta import ImageMeta
from appbuilder.formats.convert import convert_all
from appbuilder.formats.specs import resolve_formats

MIB = 1 << 20
SOURCES = [Path("/usr/lib/python3.11"), Path("/usr/share")]


def gather(dest: Path, want_bytes: int) -> int:
    """Copy real files into *dest* until about *want_bytes*; returns the bytes copied."""
    total = 0
    for src in SOURCES:
        subdirs = [src] if src.name == "python3.11" else sorted(p for p in src.iterdir() if p.is_dir())
        for d in subdirs:
            if total >= want_bytes:
                return total
            target = dest / src.name if d == src else dest / src.name / d.name
            if total + _du(d) > want_bytes * 1.1:
                continue  # too big: keep the disk near the asked-for size
            target.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(["cp", "-a", "--no-preserve=ownership", str(d), str(target)], capture_output=True)
            if proc.returncode not in (0, 1) or not target.exists():  # 1: a few unreadable files, fine
                continue
            total += sum(os.lstat(os.path.join(root, f)).st_size for root, _, files in os.walk(target) for f in files)
    return total


def _du(path: Path) -> int:
    proc = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(proc.stdout.split()[0]) if proc.stdout else 0


def make_raw(work: Path, size_mib: int, data_mb: int) -> tuple[Path, int]:
    data = work / "data"
    data.mkdir()
    copied = gather(data, data_mb * 1000 * 1000)
    raw = work / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(size_mib * MIB)
    run(["sfdisk", "--no-reread", "--no-tell-kernel", str(raw)],
        stdin=b"label: dos\nlabel-id: 0x0badcafe\nstart=2048, type=83, bootable\n")
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-U", "8b5c3f3a-2f1e-4c55-9d43-0c8d2b1d7e01",
         "-E", f"offset={MIB},root_owner=0:0", "-d", str(data), str(raw), f"{(size_mib - 1) * 1024}k"])
    shutil.rmtree(data)
    return raw, copied


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2, help="timed rounds (default 2)")
    ap.add_argument("--size-mib", type=int, default=1024, help="virtual size of the raw disk (default 1024)")
    ap.add_argument("--data-mb", type=int, default=300, help="real data copied into it (default 300)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="convert_all jobs (default: CPUs)")
    ap.add_argument("--workdir", help="scratch directory (default: a temporary one in /tmp)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-formats-", dir=args.workdir))
    try:
        print(f"building a {args.size_mib} MiB raw disk with ~{args.data_mb} MB of real files ...", flush=True)
        raw, copied = make_raw(work, args.size_mib, args.data_mb)
        allocated = raw.stat().st_blocks * 512
        print(f"raw disk: {raw.stat().st_size / MIB:.0f} MiB virtual, {allocated / MIB:.0f} MiB allocated, "
              f"{copied / 1e6:.0f} MB of files", flush=True)
        meta = ImageMeta("group-bench", "bench@appbuild:1/1.0-1-1", "x86_64", raw.stat().st_size, 1700000000)
        specs = resolve_formats("all", meta.arch)
        unique = {}
        for spec in specs:
            unique.setdefault(spec.disk.conversion_key, spec)

        par_out, seq_out = work / "parallel", work / "sequential"
        seq_times: dict[str, list[float]] = {s.name: [] for s in specs}
        par_conv: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}

        def parallel():
            shutil.rmtree(par_out, ignore_errors=True)
            timings: dict = {}
            produced = convert_all(raw, "all", par_out, meta, jobs=args.jobs, timings=timings)
            for name, secs in timings.items():
                par_conv.setdefault(name, []).append(secs)
            for fmt, paths in produced.items():
                sizes[fmt] = sum(p.stat().st_size for p in paths)

        def sequential(only=None):
            shutil.rmtree(seq_out, ignore_errors=True)
            seq_out.mkdir()
            for spec in (only or specs):
                out = seq_out / f"{spec.name}.{spec.disk.qemu_img.format if spec.disk.qemu_img else 'raw'}"
                t0 = _now()
                run(sequential_argv(spec, raw, out))
                if only is None:
                    seq_times[spec.name].append(_now() - t0)

        single_out = work / "single"
        esx = next(s for s in specs if s.name == "vmdk-esx")

        def single_ours():
            shutil.rmtree(single_out, ignore_errors=True)
            convert_all(raw, "vmdk-esx", single_out, meta, jobs=args.jobs)

        def single_qemu():
            shutil.rmtree(single_out, ignore_errors=True)
            single_out.mkdir()
            run(sequential_argv(esx, raw, single_out / "esx.vmdk"))

        times = interleave({
            "parallel": parallel,
            "sequential": sequential,
            "sequential-unique": lambda: sequential(list(unique.values())),
            "vmdk-esx": single_ours,
            "vmdk-esx-qemu-img": single_qemu,
        }, args.reps, warmup=0)

        rows = []
        for spec in specs:
            disk = spec.disk_name(meta.basename)
            rows.append([spec.name, f"{med(seq_times[spec.name]):.2f}", f"{med(par_conv.get(disk, [0])):.2f}",
                         mb(sizes.get(spec.name, 0))])
        print()
        print(table(["format", "sequential s", "in parallel s", "size MB"], rows,
                    title="per format (median): the qemu-img convert alone / that conversion inside convert_all "
                          "(shared conversions are listed under each format using them)"))
        p, s, u = med(times["parallel"]), med(times["sequential"]), med(times["sequential-unique"])
        print()
        print(table(["run", "median s", "min s", "ratio vs parallel"], [
            ["parallel convert_all (all formats)", f"{p:.2f}", f"{min(times['parallel']):.2f}", "1.00x"],
            ["qemu-img one after another (per format)", f"{s:.2f}", f"{min(times['sequential']):.2f}", f"{s / p:.2f}x"],
            ["qemu-img one after another (distinct conversions)", f"{u:.2f}",
             f"{min(times['sequential-unique']):.2f}", f"{u / p:.2f}x"],
        ], title=f"--format all for x86_64, {os.cpu_count()} CPUs, jobs={args.jobs}, {args.reps} rounds"))
        e, eq = med(times["vmdk-esx"]), med(times["vmdk-esx-qemu-img"])
        print()
        print(table(["one compressed format alone", "median s", "min s", "ratio"], [
            ["convert_all --format vmdk-esx (appbuild writer, all cores)", f"{e:.2f}", f"{min(times['vmdk-esx']):.2f}",
             "1.00x"],
            ["qemu-img convert streamOptimized", f"{eq:.2f}", f"{min(times['vmdk-esx-qemu-img']):.2f}", f"{eq / e:.2f}x"],
        ]))
        goal = "met" if s / p >= 1.5 else "NOT met"
        print(f"\nspeed-up {s / p:.2f}x over qemu-img one format after another (goal >= 1.5x: {goal})")
        emit("formats", {
            "raw_virtual_bytes": raw.stat().st_size, "raw_allocated_bytes": allocated, "data_bytes": copied,
            "jobs": args.jobs, "reps": args.reps,
            "parallel_s": {k: r3(v) for k, v in _stats(times["parallel"]).items()},
            "sequential_s": {k: r3(v) for k, v in _stats(times["sequential"]).items()},
            "sequential_unique_s": {k: r3(v) for k, v in _stats(times["sequential-unique"]).items()},
            "speedup": r3(s / p), "speedup_unique": r3(u / p),
            "vmdk_esx_alone_s": r3(e), "vmdk_esx_qemu_img_s": r3(eq), "vmdk_esx_speedup": r3(eq / e),
            "per_format_sequential_s": {k: r3(med(v)) for k, v in seq_times.items()},
            "per_conversion_parallel_s": {k: r3(med(v)) for k, v in par_conv.items() if k != "total"},
            "sizes": sizes,
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _now() -> float:
    import time

    return time.perf_counter()


def _stats(xs):
    return {"median": med(xs), "min": min(xs), "max": max(xs)}


if __name__ == "__main__":
    sys.exit(main())
