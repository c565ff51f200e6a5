"""Benchmark: what growing the root at first boot costs (recipes/appliance-grow).

    .venv/bin/python bench/first_boot_grow.py [--rounds 5] [--disk-gib 4] [--image X86_64.raw]

Each round boots the same x86_64 raw image twice under QEMU/TCG (``-snapshot``, so every
boot is a first boot), interleaved:

* **grow**: a sparse copy enlarged to ``--disk-gib`` GiB (4): the root partition and its
  ext4 grow to the end of the disk before the boot marker;
* **reference**: the image at its own size, so appliance-grow finds nothing to grow (it
  still runs and says so).

Figures: seconds from QEMU's start to the ``grow:`` console line and to the
``APPLIANCE-BOOT-OK`` marker (median and minimum of the rounds), the difference of the
medians (the goal: growing adds under 1 s), and the guest's own figure from the ``grow:``
line (``in X s``: the program's run, partition and file system). Without ``--image`` it
builds group-cernvm (raw, x86_64) with the workspace's repository into a temporary
directory first (not measured).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import subprocess
import tempfile
import time
from pathlib import Path

from _common import APPBUILD, REPO_ROOT, emit, med, r3, rmtree, run, table

from appbuilder.verify.boot import BOOT_MARKER, BootOptions, qemu_argv

GIB = 1 << 30


def boot(image: Path, timeout: float) -> dict:
    """Boot once; seconds to the grow line and to the marker, and the grow line."""
    start = time.monotonic()
    proc = subprocess.Popen(qemu_argv(image, BootOptions(arch="x86_64", drive_format="raw", timeout=timeout)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    seen: dict = {}
    buffer = b""
    try:
        fd = proc.stdout.fileno()
        while "marker" not in seen and time.monotonic() - start < timeout:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            now = time.monotonic() - start
            buffer += chunk
            *lines, rest = buffer.split(b"\n")
            buffer = rest
            for raw in lines:
                line = raw.decode(errors="replace").strip()
                if line.startswith("grow: ") and "grow" not in seen:
                    seen["grow"], seen["line"] = now, line
                if BOOT_MARKER in line:
                    seen["marker"] = now
    finally:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait()
        proc.stdout.close()
    if "marker" not in seen or "grow" not in seen:
        raise SystemExit(f"{image.name}: no {'grow line' if 'marker' in seen else BOOT_MARKER} within {timeout:.0f} s")
    m = re.search(r"in (\d+\.\d+) s$", seen["line"])
    seen["guest"] = float(m.group(1)) if m else float("nan")
    return seen


def build_image(out: Path) -> Path:
    run([APPBUILD, "group-cernvm", "--format", "raw", "--arch", "x86_64", "--output", str(out)], cwd=REPO_ROOT)
    return next(out.glob("*x86_64.raw"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--disk-gib", type=int, default=4)
    ap.add_argument("--image", type=Path, help="an x86_64 raw disk of group-cernvm (default: build one)")
    ap.add_argument("--timeout", type=float, default=180)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-grow-"))
    try:
        image = args.image or build_image(tmp / "images")
        grown = tmp / "grow.raw"
        run(["cp", "--sparse=always", str(image), str(grown)])
        run(["truncate", "-s", str(args.disk_gib * GIB), str(grown)])
        kinds = {"grow": grown, "reference": image}
        results: dict[str, list[dict]] = {k: [] for k in kinds}
        for i in range(args.rounds):
            for kind, disk in kinds.items():
                r = boot(disk, args.timeout)
                results[kind].append(r)
                print(f"round {i + 1} {kind:9}  grow line {r['grow']:6.2f} s  marker {r['marker']:6.2f} s  "
                      f"| {r['line']}", flush=True)

        def col(kind: str, key: str) -> list[float]:
            return [r[key] for r in results[kind]]

        g, ref = results["grow"][-1]["line"], results["reference"][-1]["line"]
        if " -> " not in g or "nothing to grow" not in ref:
            raise SystemExit(f"unexpected grow lines:\n  {g}\n  {ref}")
        rows = []
        for key, what in (("marker", "to the boot marker"), ("grow", "to the grow: line"), ("guest", "in the guest")):
            a, b = med(col("grow", key)), med(col("reference", key))
            rows.append((f"{what}, {args.disk_gib} GiB disk, growing", f"{a:.2f}", f"{min(col('grow', key)):.2f}",
                         f"{a / b:.2f}x" if b else ""))
            rows.append((f"{what}, image at its own size (reference)", f"{b:.2f}",
                         f"{min(col('reference', key)):.2f}", "1.00x"))
        added = med(col("grow", "marker")) - med(col("reference", "marker"))
        print()
        print(table(["measurement", "median s", "min s", "vs reference"], rows,
                    title=f"first boot with growing vs without, x86_64 raw under TCG, {args.rounds} rounds"))
        print(f"growing adds {added:+.2f} s to the boot (difference of medians; goal < 1 s: "
              f"{'met' if added < 1 else 'NOT met'}); the guest's own figure: "
              f"{med(col('grow', 'guest')):.2f} s growing, {med(col('reference', 'guest')):.2f} s finding nothing")
        print(f"  {g}\n  {ref}")
        emit("first_boot_grow", {
            "rounds": args.rounds,
            "disk_gib": args.disk_gib,
            "marker_s": {k: {"median": r3(med(col(k, "marker"))), "min": r3(min(col(k, "marker")))} for k in kinds},
            "grow_line_s": {k: r3(med(col(k, "grow"))) for k in kinds},
            "guest_s": {k: r3(med(col(k, "guest"))) for k in kinds},
            "added_s": r3(added),
            "target_met": added < 1.0,
        })
        return 0
    finally:
        rmtree(tmp)


if __name__ == "__main__":
    raise SystemExit(main())
