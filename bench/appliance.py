"""Benchmark: the group-cernvm appliance, from a warm repository to booted images.

    /tmp/v/bin/python bench/appliance.py [--reps 5] [--boots 3] [--repository DIR]

Figures (each with its reference measured in the same run):

* assembly of the x86_64 raw disk from a warm repository (stage, initramfs, FAT + ext4,
  disk), against ``dd`` writing the same number of bytes (the disk's allocated bytes
  and its apparent size, both without and with fdatasync);
* ``--format all`` for one arch: appbuild's parallel conversions against one
  ``qemu-img convert`` per format run one after another (the naive pipeline);
* sizes: raw (apparent and allocated), qcow2, what the closure installs;
* boot under QEMU/TCG to the ``APPLIANCE-BOOT-OK`` marker, both arches.

Without ``--repository`` it first imports the upstream kernels, cooks the recipes and
resolves group-cernvm into a temporary repository (not measured).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from _common import (
    APPBUILD,
    REPO_ROOT,
    emit,
    med,
    r3,
    run,
    sequential_argv,
    stats,
    table,
    timed,
)

from appbuilder.assemble.image import assemble_raw
from appbuilder.core.settings import load_settings
from appbuilder.formats.convert import convert_all
from appbuilder.formats.specs import resolve_formats
from appbuilder.graph.groups import find_group, staged_troves
from appbuilder.repository.repo import Repository
from appbuilder.store.build import device_modules
from appbuilder.verify.boot import BootOptions, boot_until


def prepare(repository: Path, cache: Path) -> None:
    env = {**__import__("os").environ, "APPBUILD_REPOSITORY": str(repository), "APPBUILD_CACHE": str(cache)}
    run([APPBUILD, "import", "upstream"], env=env, cwd=REPO_ROOT)
    run([APPBUILD, "cook", "recipes/", "--arch", "all", "-j", "2"], env=env, cwd=REPO_ROOT)
    run([APPBUILD, "resolve", "group-cernvm", "--arch", "all"], env=env, cwd=REPO_ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--repository", type=Path, help="reuse a repository where group-cernvm is resolved")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-appliance-"))
    try:
        repository = args.repository
        if repository is None:
            repository = tmp / "repo"
            prepare(repository, tmp / "cache")
        settings = dataclasses.replace(load_settings(REPO_ROOT), repository=repository)
        repo = Repository(repository, settings.label)
        figures: dict = {}
        rows = []

        # ---------------------------------------------------------- assembly vs dd
        group = repo.get(find_group(repo, "group-cernvm", "x86_64"), with_files=False)
        troves = staged_troves(repo, group)
        base = {"group": "group-cernvm", "source_date_epoch": 1_700_000_000}
        assembly, disk = [], None
        for i in range(args.reps):
            work = tmp / f"asm{i}"
            work.mkdir()
            seconds, disk = timed(lambda: assemble_raw(repo, group, troves, base, work,
                                                       devices=device_modules(settings, "x86_64")))
            assembly.append(seconds)
            if i < args.reps - 1:
                shutil.rmtree(work)
        raw = disk.raw
        apparent = raw.stat().st_size
        allocated = raw.stat().st_blocks * 512

        def dd(nbytes: int, sync: bool) -> float:
            target = tmp / "dd.out"
            argv = ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={-(-nbytes // (1 << 20))}"]
            if sync:
                argv.append("conv=fdatasync")
            t, _ = timed(lambda: run(argv))
            target.unlink()
            return t

        dd_alloc = [dd(allocated, False) for _ in range(args.reps)]
        dd_apparent = [dd(apparent, False) for _ in range(args.reps)]
        dd_sync = [dd(apparent, True) for _ in range(args.reps)]
        a = med(assembly)
        rows += [
            ("assemble x86_64 raw (warm repository)", f"{a:.3f}", f"{min(assembly):.3f}", "1.00x"),
            (f"dd {allocated >> 20} MiB (allocated bytes)", f"{med(dd_alloc):.3f}", f"{min(dd_alloc):.3f}",
             f"{a / med(dd_alloc):.2f}x"),
            (f"dd {apparent >> 20} MiB (apparent size)", f"{med(dd_apparent):.3f}", f"{min(dd_apparent):.3f}",
             f"{a / med(dd_apparent):.2f}x"),
            (f"dd {apparent >> 20} MiB conv=fdatasync", f"{med(dd_sync):.3f}", f"{min(dd_sync):.3f}",
             f"{a / med(dd_sync):.2f}x"),
        ]
        figures["assembly_s"] = {k: r3(v) for k, v in stats(assembly).items() if k != "n"}
        figures["dd_s"] = {"allocated": r3(med(dd_alloc)), "apparent": r3(med(dd_apparent)),
                           "apparent_fdatasync": r3(med(dd_sync))}
        figures["assembly_target_met"] = a < 5.0

        # ---------------------------------------------------------- all formats: parallel vs sequential
        specs = resolve_formats("all", "x86_64", settings.formats_dir)
        parallel, sequential = [], []
        for i in range(args.reps):
            out = tmp / f"conv{i}"
            out.mkdir()
            parallel.append(timed(lambda: convert_all(raw, [s.name for s in specs], out, disk.meta, jobs=2,
                                                   formats_dir=settings.formats_dir))[0])
            seq = tmp / f"seq{i}"
            seq.mkdir()
            t0 = time.perf_counter()
            for spec in specs:
                run(sequential_argv(spec, raw, seq / f"{spec.name}.img"))
            sequential.append(time.perf_counter() - t0)
            if i < args.reps - 1:
                shutil.rmtree(out)
            shutil.rmtree(seq)
        p, s = med(parallel), med(sequential)
        rows += [
            (f"--format all ({len(specs)} formats), parallel", f"{p:.3f}", f"{min(parallel):.3f}", "1.00x"),
            ("qemu-img convert per format, one after another", f"{s:.3f}", f"{min(sequential):.3f}", f"{s / p:.2f}x"),
        ]
        figures["convert_all_s"] = r3(p)
        figures["sequential_qemu_img_s"] = r3(s)
        figures["convert_speedup"] = r3(s / p)

        # ---------------------------------------------------------- sizes
        qcow2 = next((tmp / f"conv{args.reps - 1}").glob("*.qcow2"))
        sizes = {"raw_apparent": apparent, "raw_allocated": allocated, "qcow2": qcow2.stat().st_size,
                 "installed": disk.installed_size}
        figures["sizes"] = sizes

        # ---------------------------------------------------------- boot
        boots = {}
        for arch in ("x86_64", "x86"):
            g = repo.get(find_group(repo, "group-cernvm", arch), with_files=False)
            work = tmp / f"boot-{arch}"
            work.mkdir()
            d = assemble_raw(repo, g, staged_troves(repo, g), base, work, devices=device_modules(settings, arch))
            times = []
            for _ in range(args.boots):
                res = boot_until(d.raw, BootOptions(arch=arch, drive_format="raw", timeout=120))
                if not res.found:
                    raise SystemExit(f"{arch} did not boot to the marker:\n{res.console[-2000:]}")
                times.append(res.seconds)
            boots[arch] = times
            rows.append((f"boot {arch} raw (TCG) to the marker", f"{med(times):.2f}", f"{min(times):.2f}", ""))
        figures["boot_s"] = {a: {"median": r3(med(t)), "min": r3(min(t))} for a, t in boots.items()}
        figures["boot_target_met"] = all(med(t) < 10 for t in boots.values())

        print(table(["measurement", "median s", "min s", "vs first row of block"], rows,
                    title=f"group-cernvm appliance, {args.reps} repetitions ({args.boots} boots per arch)"))
        print()
        print(table(["size", "bytes", "MiB"], [(k, v, f"{v / 2**20:.1f}") for k, v in sizes.items()],
                    title="sizes (x86_64)"))
        print(f"qcow2 under 40 MB: {'yes' if sizes['qcow2'] < 40e6 else 'NO'} "
              f"({sizes['qcow2'] / 1e6:.1f} MB; CernVM 1.0 shipped 130 MB compressed)")
        emit("appliance", figures)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
