"""Benchmark: group-cernvm rebuilt from nothing, against a warm rebuild, in the same run.

    .venv/bin/python bench/rebuild_from_scratch.py [--rounds 2] [--formats raw,qcow2,vmdk,vhd]

Each round, in a new temporary workspace (the project's recipes, groups and
repo/config.yaml; a repository and cache of its own, only the lookaside's verified
downloads hard-linked from the project's cache, or BENCH_CACHE):

* **from scratch**: ``appbuild group-cernvm --format F --arch x86_64``: imports the
  toolchain and the upstream packages, makes the build roots, cooks every recipe,
  resolves, assembles and converts;
* **wiped**: the repository deleted (the cache, with its build roots, kept) and the
  version rebuilt with ``--version V``: restored from the pins the image store recorded,
  everything imported and cooked again;
* **warm** (the reference): ``--version V --output DIR`` with the repository full: the
  assembly and conversions alone.

Every round must give the same bytes as the first (the script fails otherwise), so the
figures are also a check that rebuilds from nothing are bit-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from _common import APPBUILD, REPO_ROOT, emit, med, r3, rmtree, run, table, timed


def workspace_env(root: Path) -> dict[str, str]:
    return {**os.environ, "APPBUILD_WORKSPACE": str(REPO_ROOT), "APPBUILD_REPOSITORY": str(root / "repo"),
            "APPBUILD_CACHE": str(root / "cache"), "APPBUILD_LOGS": str(root / "logs"),
            "APPBUILD_IMAGES": str(root / "images")}


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())
            if p.is_file() and p.name not in ("manifest.json", "build.log")}


def one_round(base: Path, formats: str, lookaside: Path) -> tuple[dict[str, float], dict[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="scratch-", dir=base))
    (root / "cache").mkdir()
    if lookaside.is_dir():
        subprocess.run(["cp", "-a", "--link", str(lookaside), str(root / "cache" / "lookaside")], check=True)
    env = workspace_env(root)
    build = [APPBUILD, "group-cernvm", "--format", formats, "--arch", "x86_64", "-j", "2"]
    seconds, proc = timed(lambda: run(build, env=env, cwd=REPO_ROOT))
    out = proc.stdout.decode()
    m = re.search(r"^group-cernvm=\S+/(\S+)\[is: x86_64\]: (\S+)$", out, re.M)
    version, directory = m.group(1), Path(m.group(2))
    first = digests(directory)
    warm_out = root / "warm"
    warm, _ = timed(lambda: run([*build[:2], "--version", version, "--format", formats, "--arch", "x86_64",
                                 "--output", str(warm_out)], env=env, cwd=REPO_ROOT))
    if digests(warm_out) != first:
        raise SystemExit("a warm rebuild gave other bytes")
    rmtree(root / "repo")
    wiped, _ = timed(lambda: run([*build[:2], "--version", version, "--format", formats, "--arch", "x86_64",
                                  "--force"], env=env, cwd=REPO_ROOT))
    if digests(directory) != first:
        raise SystemExit("the rebuild after wiping the repository gave other bytes")
    rmtree(root)
    return {"scratch": seconds, "wiped": wiped, "warm": warm}, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--formats", default="raw,qcow2,vmdk,vhd")
    args = ap.parse_args()
    cache = Path(os.environ.get("BENCH_CACHE", REPO_ROOT / "repo" / "cache"))
    base = Path(tempfile.mkdtemp(prefix="appbuild-bench-scratch-"))
    times: dict[str, list[float]] = {"scratch": [], "wiped": [], "warm": []}
    reference = None
    try:
        for _ in range(args.rounds):
            t, files = one_round(base, args.formats, cache / "lookaside")
            if reference is None:
                reference = files
            elif files != reference:
                raise SystemExit("two builds from nothing gave other bytes: " +
                                 ", ".join(n for n in files if files[n] != reference.get(n)))
            for k, v in t.items():
                times[k].append(v)
    finally:
        rmtree(base)
    warm = med(times["warm"])
    rows = [(k, r3(med(v)), r3(min(v)), f"{med(v) / warm:.1f}x") for k, v in times.items()]
    print(table(["rebuild", "median s", "min s", "vs warm"], rows,
                title=f"group-cernvm x86_64 ({args.formats}), {args.rounds} rounds; every round the same bytes"))
    emit("rebuild_from_scratch", {"formats": args.formats, "rounds": args.rounds, "identical": True,
                                  **{f"{k}_s": r3(med(v)) for k, v in times.items()},
                                  "scratch_vs_warm": round(med(times["scratch"]) / warm, 1)})


if __name__ == "__main__":
    main()
