"""Benchmark: the whole Debian main index as a resolve source, cold and warm, time and memory.

    .venv/bin/python bench/upstream_resolve.py        # BENCH_RUNS=N (fresh processes per mode, default 3)

Goal (issue 15): resolution against the whole Debian main index in < 5 s and < 500 MB.

Measured, each in a fresh process (so imports, page cache aside, and peak RSS are its own):

* **load cold**: :class:`~appbuilder.upstream.debindex.DebianIndex` for x86_64 with no
  parsed-index cache: every suite's InRelease checked with gpgv, every list (Packages
  amd64, Contents-amd64, Contents-all: about 720 MB uncompressed) decompressed and its
  sha256 checked against InRelease, Packages parsed with apt_pkg, Contents filtered to
  bin and library directories (a build reads Contents only at its first question about a
  file or soname; the load here asks one, so it is the whole index); the parsed index
  written to the cache;
* **load warm**: the same with the cache (lists hashed, signatures checked, parsed index read back);
* **resolve** (when ``appbuilder.graph.upstream`` is there): the warm load plus
  ``UpstreamResolver(relations=True, base="essential").plan`` for ``systemd-sysv`` and
  ``linux-image-amd64`` against an empty repository; also with a cold load.

References in the same run, over the same lists: **apt** itself, ``apt-get install -s
--no-install-recommends systemd-sysv linux-image-amd64`` with an empty dpkg status, cold
(apt builds its binary cache, ``pkgcache.bin``, from the lists first) and warm (the cache
is there; turned on here, since Debian's container images switch it off); and a process that only imports the modules (baseline RSS).

The lists are those of the workspace's private apt state (``repo/cache/apt-bin``,
updated once first, not measured), hard-linked into a temporary directory so that the
parsed-index cache and apt's binary cache of the benchmark are its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PYTHON, REPO_ROOT, emit, med, r3, table

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
NAMES = ("systemd-sysv", "linux-image-amd64")


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ====================================================================== worker (fresh process)


def worker(mode: str, work: str) -> None:
    from appbuilder.upstream.debindex import DebianIndex
    from appbuilder.upstream.lookaside import Lookaside

    work_path = Path(work)
    out: dict = {}
    if mode == "baseline":
        if importlib.util.find_spec("appbuilder.graph.upstream"):
            importlib.import_module("appbuilder.graph.upstream")
        print(json.dumps({"hwm_mb": vm_hwm_mb()}))
        return
    t0 = time.perf_counter()
    index = DebianIndex("debian", cache=work_path, arch="x86_64", lookaside=Lookaside(work_path / "lookaside"))
    out["packages"] = len(index._records)
    out["paths"] = len(index._files)  # Contents is read at the first question about a file: asked here
    out["load_s"] = time.perf_counter() - t0
    if mode.startswith("resolve"):
        from appbuilder.graph.closure import Closure
        from appbuilder.graph.upstream import UpstreamResolver
        from appbuilder.repository.repo import Repository

        repo_dir = Path(tempfile.mkdtemp(dir=work_path, prefix="repo-"))
        repo = Repository(repo_dir / "repo", "bench@b:1")
        t1 = time.perf_counter()
        plan = UpstreamResolver([index], relations=True, base="essential").plan(
            Closure(), repo, set(NAMES), wanted=[(n, "bench") for n in NAMES], group="group-bench")
        out["plan_s"] = time.perf_counter() - t1
        out["picks"] = len(plan.picks)
        out["unresolved"] = [str(u) for u in plan.unresolved]
        out["conflicts"] = list(plan.conflicts)
    out["total_s"] = time.perf_counter() - t0
    out["hwm_mb"] = vm_hwm_mb()
    print(json.dumps(out))


def in_fresh_process(mode: str, work: Path) -> dict:
    proc = subprocess.run([PYTHON, __file__, "--worker", mode, str(work)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ====================================================================== the apt reference


def apt_simulate(work: Path, cache: Path) -> tuple[float, int]:
    """Seconds of ``apt-get install -s`` over the benchmark's lists, and the packages it would install."""
    from appbuilder.upstream.apt import PrivateApt

    apt = PrivateApt(work / "apt-bin", kind="deb", architectures=("amd64", "i386"), status="private", contents=True)
    apt.prepare()
    opts = [o.replace(f"Dir::Cache={work / 'apt-bin' / 'cache'}", f"Dir::Cache={cache}") for o in apt.options()]
    # Debian's docker images turn apt's binary caches off (apt.conf.d/docker-clean): on again
    opts += ["-o", "Dir::Cache::pkgcache=pkgcache.bin", "-o", "Dir::Cache::srcpkgcache=srcpkgcache.bin"]
    t0 = time.perf_counter()
    proc = subprocess.run(["apt-get", *opts, "install", "-s", "--no-install-recommends", *NAMES],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"apt-get install -s failed:\n{proc.stderr[-2000:]}")
    return elapsed, sum(1 for line in proc.stdout.splitlines() if line.startswith("Inst "))


# ====================================================================== main


def main() -> None:
    from appbuilder.core.settings import load_settings
    from appbuilder.upstream.debindex import DebianIndex
    from appbuilder.upstream.lookaside import Lookaside

    settings = load_settings(REPO_ROOT)
    print("# updating the workspace's apt lists (not measured) ...", file=sys.stderr)
    DebianIndex("debian", cache=settings.cache, arch="x86_64", lookaside=Lookaside(settings.lookaside),
                update=True, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    have_resolver = importlib.util.find_spec("appbuilder.graph.upstream") is not None

    work = Path(tempfile.mkdtemp(prefix="bench-upstream-"))
    try:
        lists = work / "apt-bin" / "state" / "lists"
        lists.mkdir(parents=True)
        for f in (settings.cache / "apt-bin" / "state" / "lists").iterdir():
            if f.is_file() and f.name != "lock":
                os.link(f, lists / f.name)
        parsed = work / "upstream"

        results: dict[str, list[dict]] = {k: [] for k in ("cold", "warm", "resolve_cold", "resolve_warm")}
        apt_cold, apt_warm = [], []
        for _ in range(RUNS):
            shutil.rmtree(parsed, ignore_errors=True)
            results["cold"].append(in_fresh_process("cold", work))
            results["warm"].append(in_fresh_process("warm", work))
            if have_resolver:
                shutil.rmtree(parsed, ignore_errors=True)
                results["resolve_cold"].append(in_fresh_process("resolve_cold", work))
                results["resolve_warm"].append(in_fresh_process("resolve_warm", work))
            apt_cache = Path(tempfile.mkdtemp(dir=work, prefix="aptcache-"))
            (apt_cache / "archives" / "partial").mkdir(parents=True)
            apt_cold.append(apt_simulate(work, apt_cache))
            apt_warm.append(apt_simulate(work, apt_cache))
        baseline = in_fresh_process("baseline", work)

        apt_c, apt_w = med([t for t, _ in apt_cold]), med([t for t, _ in apt_warm])
        rows = []
        for mode, ref, ref_name in (("cold", apt_c, "apt cold"), ("warm", apt_w, "apt warm"),
                                    ("resolve_cold", apt_c, "apt cold"), ("resolve_warm", apt_w, "apt warm")):
            rs = results[mode]
            if not rs:
                continue
            t = med([r["total_s"] for r in rs])
            rows.append([mode.replace("_", " "), f"{t:.2f}", f"{min(r['total_s'] for r in rs):.2f}",
                         f"{med([r['load_s'] for r in rs]):.2f}",
                         f"{med([r.get('plan_s', 0.0) for r in rs]):.2f}" if "plan_s" in rs[0] else "",
                         f"{max(r['hwm_mb'] for r in rs):.0f}", rs[0].get("picks", ""),
                         f"{t / ref:.2f}x {ref_name}"])
        rows.append(["apt-get install -s (cold)", f"{apt_c:.2f}", f"{min(t for t, _ in apt_cold):.2f}", "", "", "",
                     apt_cold[0][1], ""])
        rows.append(["apt-get install -s (warm)", f"{apt_w:.2f}", f"{min(t for t, _ in apt_warm):.2f}", "", "", "",
                     apt_warm[0][1], ""])
        rows.append(["baseline (imports only)", "", "", "", "", f"{baseline['hwm_mb']:.0f}", "", ""])
        first = results["cold"][0]
        print(table(["mode", "median s", "min s", "load s", "plan s", "peak MB", "picks", "ratio"], rows,
                    title=f"# DebianIndex x86_64: {first['packages']} packages, {first['paths']} bin/lib paths; "
                          f"{RUNS} fresh processes per mode; goal < 5 s, < 500 MB"))
        for mode in ("resolve_cold", "resolve_warm"):
            for r in results[mode][:1]:
                if r.get("unresolved") or r.get("conflicts"):
                    print(f"# {mode}: unresolved {r['unresolved'][:5]}, conflicts {r['conflicts'][:5]}")
        figures = {
            "packages": first["packages"],
            "load_cold_s": r3(med([r["load_s"] for r in results["cold"]])),
            "load_warm_s": r3(med([r["load_s"] for r in results["warm"]])),
            "load_cold_peak_mb": round(max(r["hwm_mb"] for r in results["cold"])),
            "load_warm_peak_mb": round(max(r["hwm_mb"] for r in results["warm"])),
            "apt_simulate_cold_s": r3(apt_c), "apt_simulate_warm_s": r3(apt_w),
            "baseline_mb": round(baseline["hwm_mb"]),
        }
        if have_resolver:
            figures.update({
                "resolve_cold_s": r3(med([r["total_s"] for r in results["resolve_cold"]])),
                "resolve_warm_s": r3(med([r["total_s"] for r in results["resolve_warm"]])),
                "resolve_peak_mb": round(max(r["hwm_mb"] for r in results["resolve_cold"] + results["resolve_warm"])),
                "picks": results["resolve_warm"][0]["picks"], "apt_installs": apt_warm[0][1],
            })
        emit("upstream_resolve", figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        main()
