"""Shared helpers for the benchmark scripts in bench/: timing, statistics, tables.

The scripts are plain programs (``/tmp/v/bin/python bench/NAME.py``). Each measures
its reference in the same run, repeats every measurement several times and reports
the median and the minimum, because the machines they run on are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/, not the project, on sys.path
    sys.path.insert(0, str(REPO_ROOT))

# the interpreter running the benchmark, and the CLI installed beside it
PYTHON = sys.executable
APPBUILD = str(Path(sys.executable).with_name("appbuild"))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(wall seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleave(fns: dict[str, Callable[[], object]], reps: int, *, warmup: int = 1) -> dict[str, list[float]]:
    """Time several alternatives round-robin, so slow drifts of the machine hit all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            times[k].append(timed(fn)[0])
    return times


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def stats(xs: Sequence[float]) -> dict:
    return {"median": med(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def run(argv: Sequence[str], *, env: dict | None = None, cwd: str | Path | None = None,
        check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(list(argv), env=env, cwd=cwd, input=stdin, capture_output=True)
    if check and p.returncode != 0:
        raise SystemExit(
            f"command failed ({p.returncode}): {' '.join(map(str, argv))}\n"
            f"--- stdout ---\n{p.stdout.decode(errors='replace')[-3000:]}\n"
            f"--- stderr ---\n{p.stderr.decode(errors='replace')[-3000:]}"
        )
    return p


def ms(s: float) -> str:
    return f"{s * 1000:.1f}"


def mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> str:
    """A plain fixed-width table; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r, first=False):
        out = []
        for i, c in enumerate(r):
            num = not first and _looks_numeric(c)
            out.append(c.rjust(widths[i]) if num else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    lines = []
    if title:
        lines.append(title)
    lines.append(line(cells[0], first=True))
    lines.append("  ".join("-" * w for w in widths))
    lines += [line(r) for r in cells[1:]]
    return "\n".join(lines)


def _looks_numeric(s: str) -> bool:
    try:
        float(s.rstrip("x%").replace(",", ""))
        return True
    except ValueError:
        return False


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def emit(name: str, figures: dict) -> None:
    """The one JSON line every benchmark ends with."""
    print(json.dumps({"bench": name, "machine": machine(), **figures}, sort_keys=False, default=_json_default))


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def r3(x: float) -> float:
    """Round for the JSON line (seconds to 0.1 ms, ratios to 3 digits)."""
    return float(f"{x:.4g}") if abs(x) < 1 else round(x, 4)


def rmtree(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def sequential_argv(spec, raw: Path, out: Path) -> list[str]:
    """The one ``qemu-img convert`` a naive pipeline runs for a format *spec* (same options)."""
    q = spec.disk.qemu_img
    if q is None:
        return ["qemu-img", "convert", "-f", "raw", "-O", "raw", str(raw), str(out)]
    argv = ["qemu-img", "convert", "-f", "raw", "-O", q.format]
    if q.option_string:
        argv += ["-o", q.option_string]
    if q.compress:
        argv.append("-c")
    return argv + [str(raw), str(out)]
