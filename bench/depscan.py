"""Dependency scan throughput over the whole of /usr/lib/x86_64-linux-gnu.

What is timed (wall clock, page cache warmed first, several repetitions):

* ``appbuilder.policy.deps.scan_files`` over every regular file (symlinks are not
  followed; non-ELF files count as scanned files), with ``jobs=1`` and with
  ``jobs=os.cpu_count()``;
* the reference, GNU ``readelf -d -V`` (dynamic section + symbol version sections:
  the same information) over the ELF files, output read through a pipe:
  - one readelf process per file, as rpm's find-requires does; sequential, and with
    ``os.cpu_count()`` processes at a time;
  - batched, ``BATCH`` files per readelf invocation (as xargs would); sequential and
    with ``os.cpu_count()`` invocations at a time;
* ``/usr/lib/rpm/rpmdeps --requires --provides`` (if installed) over all the files,
  names on stdin.

Ratios are wall-clock time of the reference over time of scan_files (> 1: scan_files
is faster). Files/s counts the files each tool was given: every regular file for
scan_files and rpmdeps, the ELF files for readelf.

    /tmp/v/bin/python bench/depscan.py      # BENCH_REPS=N, BENCH_DIR=/other/dir
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, mb, med, r3, table, timed  # noqa: E402

from appbuilder.policy import deps as deps_mod  # noqa: E402
from appbuilder.policy.deps import scan_files  # noqa: E402

ROOT = os.environ.get("BENCH_DIR", "/usr/lib/x86_64-linux-gnu")
REPS = int(os.environ.get("BENCH_REPS", "5"))
RPMDEPS_REPS = min(REPS, 3)
BATCH = 128
RPMDEPS = "/usr/lib/rpm/rpmdeps"
CPUS = os.cpu_count() or 1


def collect(root: str) -> tuple[list[tuple[str, bool]], list[str], int]:
    """(every regular file as (path, executable), the ELF ones, total bytes); no symlinks followed."""
    items, elves, total = [], [], 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            items.append((path, bool(st.st_mode & 0o111)))
            total += st.st_size
            try:
                with open(path, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        elves.append(path)
            except OSError:
                pass
    return items, elves, total


def warm_cache(paths: list[str]) -> None:
    for p in paths:
        try:
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass
        except OSError:
            pass


# ------------------------------------------------------------------ references


def readelf_one(path: str) -> bytes:
    return subprocess.run(["readelf", "-d", "-V", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout


def readelf_per_file(paths: list[str], workers: int) -> int:
    if workers <= 1:
        return sum(len(readelf_one(p)) for p in paths)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # threads only wait for the processes
        return sum(len(out) for out in pool.map(readelf_one, paths))


def readelf_batch(paths: list[str], options: tuple[str, ...] = ("-d", "-V")) -> bytes:
    # -W: one line per entry; several files: readelf prints "File: NAME" before each
    return subprocess.run(["readelf", "-W", *options, *paths], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL).stdout


def readelf_batched(paths: list[str], workers: int, options: tuple[str, ...] = ("-d", "-V")
                    ) -> list[tuple[list[str], bytes]]:
    chunks = [paths[i:i + BATCH] for i in range(0, len(paths), BATCH)]
    if workers <= 1:
        return [(c, readelf_batch(c, options)) for c in chunks]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(zip(chunks, pool.map(lambda c: readelf_batch(c, options), chunks)))


def rpmdeps(paths: list[str]) -> bytes:
    return subprocess.run([RPMDEPS, "--requires", "--provides"], input=("\n".join(paths) + "\n").encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False).stdout


# ------------------------------------------------------------------ agreement


def readelf_needed(outputs: list[tuple[list[str], bytes]]) -> dict[str, tuple[set[str], str | None]]:
    """path -> (DT_NEEDED names, DT_SONAME) from batched readelf output."""
    found: dict[str, tuple[set[str], str | None]] = {}
    for chunk, out in outputs:
        current = None
        if len(chunk) == 1:  # readelf names the file only when it was given several
            current = chunk[0]
            found[current] = (set(), None)
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("File: "):
                current = line[6:].strip()
                found[current] = (set(), None)
            elif current is None:
                continue
            elif "(NEEDED)" in line:
                m = re.search(r"\[(.*)\]", line)
                if m:
                    found[current][0].add(m.group(1))
            elif "(SONAME)" in line:
                m = re.search(r"\[(.*)\]", line)
                if m:
                    found[current] = (found[current][0], m.group(1))
    return found


def agreement(items, results, readelf_info) -> dict:
    """Compare scan_files' soname requirements/provisions with readelf's NEEDED/SONAME."""
    same = differ = unreadable = 0
    examples = []
    sonames_readelf = sum(1 for _, (_, so) in readelf_info.items() if so)
    sonames_scan = 0
    for (path, _), fd in zip(items, results):
        if path not in readelf_info:
            continue
        needed, so = readelf_info[path]
        if fd is None:
            unreadable += 1
            continue
        if fd.provides:
            sonames_scan += 1
        scanned = {d.name.split("/", 1)[1] for d in fd.requires if d.cls == "soname"}
        interps = {os.path.basename(d.name) for d in fd.requires if d.cls == "file"}
        if needed <= scanned and scanned - needed <= interps:
            same += 1
        else:
            differ += 1
            if len(examples) < 3:
                examples.append(f"{path}: readelf {sorted(needed)} scan {sorted(scanned)}")
    return {"elf_files_agreeing": same, "elf_files_differing": differ, "elf_files_scan_returned_none": unreadable,
            "sonames_readelf": sonames_readelf, "sonames_scan": sonames_scan, "examples": examples}


# ------------------------------------------------------------------ profile


def profile_scan(items) -> dict:
    """cProfile of one scan_files(jobs=1) pass: self time by area and the top functions."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    scan_files(items, jobs=1)
    prof.disable()
    st = pstats.Stats(prof)
    areas: dict[str, float] = {}
    wanted = [  # (label, file suffix, function)
        ("ELFFile() (header + struct setup)", "elftools/elf/elffile.py", "__init__"),
        ("ELFFile.iter_sections (build every section object)", "elftools/elf/elffile.py", "iter_sections"),
        ("  hash section objects (.gnu.hash/.hash tables parsed)", "elftools/elf/elffile.py", "_make_gnu_hash_section"),
        ("  (ELF .hash)", "elftools/elf/elffile.py", "_make_elf_hash_section"),
        ("ELFFile.iter_segments", "elftools/elf/elffile.py", "iter_segments"),
        ("  DynamicSegment() (looks up the string table section)", "elftools/elf/dynamic.py", "__init__"),
        ("Dynamic.iter_tags", "elftools/elf/dynamic.py", "iter_tags"),
        ("GNU version sections iter_versions", "elftools/elf/gnuversions.py", "iter_versions"),
    ]
    entry = {label: [0.0, 0] for label, _, _ in wanted}
    top = []
    for (fname, line, func), (cc, nc, tt, ct, callers) in st.stats.items():
        for label, suffix, fn in wanted:
            if func == fn and fname.endswith(suffix) and not (fn == "__init__" and "dynamic.py" in suffix
                                                             and line < 285):
                entry[label][0] += ct
                entry[label][1] += nc
        if "elftools" in fname:
            area = "pyelftools (parsing: structs, sections, version tables)"
        elif "/appbuilder/" in fname:
            area = "appbuilder (deps/elf: building ElfInfo and Dependency sets)"
        elif fname == "~" and ("read" in func or "open" in func or "seek" in func):
            area = "file I/O (open/read/seek builtins)"
        elif fname == "~":
            area = "other builtins"
        else:
            area = "other Python (stdlib: io, struct, dataclasses, ...)"
        areas[area] = areas.get(area, 0.0) + tt
        short = f"{os.path.basename(fname)}:{func}" if fname != "~" else func
        top.append((short, tt, nc))
    top.sort(key=lambda t: -t[1])
    return {"total": st.total_tt, "by_area": sorted(areas.items(), key=lambda t: -t[1]), "top": top[:10],
            "entry_points": [(label, ct, n) for label, (ct, n) in entry.items()]}


# ------------------------------------------------------------------ main


def main() -> int:
    items, elves, total = collect(ROOT)
    paths = [p for p, _ in items]
    elf_bytes = sum(os.lstat(p).st_size for p in elves)
    warm_cache(paths)

    # (label, function, files given, repetitions); run round-robin so that the machine's
    # noise hits every tool alike
    plan = [
        ("scan_files jobs=1", lambda: scan_files(items, jobs=1), len(items), REPS),
        (f"scan_files jobs={CPUS}", lambda: scan_files(items, jobs=CPUS), len(items), REPS),
        ("readelf -d -V, one process per file", lambda: readelf_per_file(elves, 1), len(elves), REPS),
        (f"readelf -d -V, one process per file, {CPUS} at a time", lambda: readelf_per_file(elves, CPUS),
         len(elves), REPS),
        (f"readelf -d -V, {BATCH} files per process", lambda: readelf_batched(elves, 1), len(elves), REPS),
        (f"readelf -d -V, {BATCH} files per process, {CPUS} at a time", lambda: readelf_batched(elves, CPUS),
         len(elves), REPS),
        # not the reference, but shows what -V costs: it prints every dynamic symbol's version (.gnu.version)
        (f"readelf -d only (no -V), {BATCH} files per process", lambda: readelf_batched(elves, 1, ("-d",)),
         len(elves), REPS),
    ]
    if os.access(RPMDEPS, os.X_OK):
        plan.append(("rpmdeps --requires --provides (stdin)", lambda: rpmdeps(paths), len(paths), RPMDEPS_REPS))

    # one untimed call each, so every tool starts from the same warm state
    scan_files(items[:50], jobs=1)
    readelf_batched(elves[:BATCH], 1)

    measures: dict[str, dict] = {label: {"times": [], "files": files} for label, _, files, _ in plan}
    last: dict[str, object] = {}
    for rep in range(REPS):
        for label, fn, _, reps in plan:
            if rep < reps:
                t, last[label] = timed(fn)
                measures[label]["times"].append(t)

    results = last["scan_files jobs=1"]
    batched_out = last[f"readelf -d -V, {BATCH} files per process"]
    rpm_out = last.get("rpmdeps --requires --provides (stdin)")
    rpm_lines = len(rpm_out.splitlines()) if rpm_out is not None else None

    agree = agreement(items, results, readelf_needed(batched_out))
    readelf_v_bytes = sum(len(out) for _, out in batched_out)
    prof = profile_scan(items)

    scan1 = med(measures["scan_files jobs=1"]["times"])
    scan1_min = min(measures["scan_files jobs=1"]["times"])
    scann = med(measures[f"scan_files jobs={CPUS}"]["times"])
    scann_min = min(measures[f"scan_files jobs={CPUS}"]["times"])

    print(f"depscan: {ROOT}: {len(items)} regular files ({mb(total)} MB), {len(elves)} ELF files "
          f"({mb(elf_bytes)} MB); {CPUS} CPUs; {REPS} repetitions ({RPMDEPS_REPS} for rpmdeps), round-robin; page cache warm")
    print(f"scan_files results: {sum(1 for r in results if r is not None)} files with dependencies; "
          f"parallel threshold PARALLEL_ABOVE={deps_mod.PARALLEL_ABOVE}")
    print()
    rows = []
    for label, m in measures.items():
        t, tmin = med(m["times"]), min(m["times"])
        is_scan = label.startswith("scan_files")
        # a reference is compared with scan_files at the same parallelism
        parallel = label.endswith("at a time") or label == f"scan_files jobs={CPUS}"
        ref_scan, ref_scan_min = (scann, scann_min) if parallel and CPUS > 1 else (scan1, scan1_min)
        rows.append([
            label, m["files"], f"{t:.3f}", f"{tmin:.3f}", f"{m['files'] / t:.0f}", f"{m['files'] / tmin:.0f}",
            "" if is_scan else f"{t / scan1:.2f}x",
            "" if is_scan else f"{t / ref_scan:.2f}x",
            "" if is_scan else f"{tmin / ref_scan_min:.2f}x",
        ])
    print(table(["tool", "files", "median s", "min s", "files/s (median)", "files/s (best)",
                 "time / scan j1", "time / scan same-par (median)", "(min)"], rows))
    print("ratios > 1: the reference took longer than scan_files over all "
          f"{len(items)} files; 'same-par' compares with scan_files jobs={CPUS} for the parallel rows")
    print()
    print(table(["agreement of scan_files with readelf (DT_NEEDED per ELF file, SONAME count)", "value"], [
        ["ELF files whose soname requirements equal readelf NEEDED (+ loader)", agree["elf_files_agreeing"]],
        ["ELF files that differ", agree["elf_files_differing"]],
        ["ELF files scan_files returned nothing for (unreadable)", agree["elf_files_scan_returned_none"]],
        ["files with DT_SONAME (readelf)", agree["sonames_readelf"]],
        ["files providing a soname (scan_files; only ET_DYN)", agree["sonames_scan"]],
        ["rpmdeps output lines (deduplicated over all files)", rpm_lines if rpm_lines is not None else "n/a"],
    ]))
    for ex in agree["examples"]:
        print("  differs:", ex)
    print(f"readelf -d -V output for the {len(elves)} ELF files: {mb(readelf_v_bytes)} MB")
    print()
    prof_total = prof["total"]
    print(table(["where scan_files jobs=1 spends its time (cProfile self time, one pass)", "ms", "share"],
                [[k, f"{v * 1000:.0f}", f"{v / prof_total * 100:.0f}%"] for k, v in prof["by_area"]]
                + [["profiled total", f"{prof_total * 1000:.0f}", "100%"]]))
    print()
    print(table(["pyelftools entry points (same profile, cumulative ms; they nest)", "ms", "calls", "share"],
                [[k, f"{v * 1000:.0f}", n, f"{v / prof_total * 100:.0f}%"] for k, v, n in prof["entry_points"]]))
    print()

    emit("depscan", {
        "dir": ROOT,
        "files": len(items),
        "elf_files": len(elves),
        "bytes": total,
        "elf_bytes": elf_bytes,
        "reps": REPS,
        "results": {
            label: {"files": m["files"], "median_s": r3(med(m["times"])), "min_s": r3(min(m["times"])),
                    "files_per_s_median": round(m["files"] / med(m["times"]), 1),
                    "files_per_s_best": round(m["files"] / min(m["times"]), 1)}
            for label, m in measures.items()
        },
        "ratios_time_ref_over_scan_j1_median": {
            label: r3(med(m["times"]) / scan1) for label, m in measures.items() if not label.startswith("scan_files")
        },
        "speedup_scan_jobs": r3(scan1 / scann),
        "agreement": {k: v for k, v in agree.items() if k != "examples"},
        "rpmdeps_present": rpm_lines is not None,
        "readelf_dV_output_bytes": readelf_v_bytes,
        "cprofile_scan_j1_self_s_by_area": {k: r3(v) for k, v in prof["by_area"]},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
