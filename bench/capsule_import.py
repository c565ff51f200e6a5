"""Import throughput of RPM capsules: 100 RPMs from a local rpm-md repository.

    /tmp/v/bin/python bench/capsule_import.py [--packages 100] [--reps 3] [--keep DIR]

Builds N packages with rpmbuild (each a shared library with versioned symbols, a
program, a script, text files of assorted sizes, symlinks; gzip payloads as rpmbuild
writes by default) into a temporary rpm-md repository (createrepo_c), then times, in
the same run and interleaved:

* ``appbuild import rpm --repo DIR`` into an empty repository (header, signature and
  digest checks, payload read through librpm, every file hashed and zstd-stored, ELF
  scan, commit), through the real command line;
* the same command again: the no-op decided from primary.xml's checksums;
* reference ``rpm -i --justdb --nodeps --root TMP`` of the same files (reads each
  package and its payload digest, writes an rpmdb, extracts nothing);
* reference ``rpm -i --nodeps --noscripts --root TMP`` (extracts every file; as root).

Prints a table and one JSON line. MB/s counts the .rpm files' bytes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import APPBUILD, emit, interleave, mb, med, r3, run, table  # noqa: E402

SPEC = textwrap.dedent("""\
    %global debug_package %{nil}
    Name: bench-%{idx}
    Version: 1.%{idx}
    Release: 1
    Summary: benchmark package %{idx}
    License: MIT

    %description
    Benchmark package %{idx}.

    %install
    cp -a %{tree}/. %{buildroot}/

    %files
    /usr/lib64/libbench%{idx}.so.1
    /usr/lib64/libbench%{idx}.so.1.0
    /usr/bin/bench%{idx}
    /usr/bin/bench%{idx}-run
    /usr/share/bench-%{idx}
    %config(noreplace) /etc/bench-%{idx}.conf
    """)

LIB_C = "int bench_value_%d(void) { return %d; }\n"
MAP = "BENCH_1.0 { global: bench_value_%d; local: *; };\n"
PROG_C = "int bench_value_%d(void);\nint main(void) { return bench_value_%d() == %d ? 0 : 1; }\n"
WORDS = ("appliance capsule repository label flavor trove version component group image "
         "kernel initramfs bootloader partition filesystem mirror checksum signature").split()


def make_tree(base: Path, idx: int, rng: random.Random) -> Path:
    tree = base / f"tree-{idx}"
    lib, bindir, share = tree / "usr/lib64", tree / "usr/bin", tree / f"usr/share/bench-{idx}"
    for d in (lib, bindir, share, tree / "etc"):
        d.mkdir(parents=True)
    src = base / f"src-{idx}"
    src.mkdir()
    (src / "lib.c").write_text(LIB_C % (idx, idx))
    (src / "lib.map").write_text(MAP % idx)
    (src / "main.c").write_text(PROG_C % (idx, idx, idx))
    run(["cc", "-O2", "-fPIC", "-shared", f"-Wl,-soname,libbench{idx}.so.1", "-Wl,--version-script=lib.map",
         "-o", str(lib / f"libbench{idx}.so.1.0"), "lib.c"], cwd=src)
    os.symlink(f"libbench{idx}.so.1.0", lib / f"libbench{idx}.so.1")
    run(["cc", "-O2", "-o", str(bindir / f"bench{idx}"), "main.c", str(lib / f"libbench{idx}.so.1.0")], cwd=src)
    (bindir / f"bench{idx}-run").write_text(f"#!/bin/sh\nexec bench{idx} \"$@\"\n")
    (bindir / f"bench{idx}-run").chmod(0o755)
    (tree / "etc" / f"bench-{idx}.conf").write_text(f"value = {idx}\n")
    for n in range(rng.randint(8, 24)):  # text of assorted sizes, compressible like docs and data
        size = int(rng.lognormvariate(9.5, 1.3))
        words = " ".join(rng.choice(WORDS) + str(rng.randint(0, 9999)) for _ in range(size // 12 + 1))
        (share / f"doc-{n}.txt").write_text(words[:size])
    os.symlink("doc-0.txt", share / "README")
    return tree


def build_packages(work: Path, count: int) -> list[Path]:
    spec = work / "bench.spec"
    spec.write_text(SPEC)
    rng = random.Random(20240601)
    trees = [make_tree(work, i, rng) for i in range(count)]

    def build(i: int) -> None:
        run(["rpmbuild", "-bb", "--define", f"_topdir {work / 'rpmbuild' / str(i)}", "--define", f"idx {i}",
             "--define", f"tree {trees[i]}", str(spec)])

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(build, range(count)))
    repo = work / "repo"
    (repo / "x86_64").mkdir(parents=True)
    rpms = sorted((work / "rpmbuild").glob("*/RPMS/x86_64/bench-*.rpm"))
    for p in rpms:
        shutil.move(str(p), repo / "x86_64" / p.name)
    shutil.rmtree(work / "rpmbuild")
    for i in range(count):
        shutil.rmtree(trees[i])
        shutil.rmtree(work / f"src-{i}")
    run(["createrepo_c", "-q", str(repo)])
    return sorted((repo / "x86_64").glob("*.rpm"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packages", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", help="build the packages here and keep them (reused when present)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-capsule-"))
    work = Path(args.keep) if args.keep else tmp / "packages"
    try:
        if not (work / "repo" / "repodata" / "repomd.xml").is_file():
            work.mkdir(parents=True, exist_ok=True)
            print(f"building {args.packages} RPMs with rpmbuild in {work} ...", flush=True)
            build_packages(work, args.packages)
        rpms = sorted((work / "repo" / "x86_64").glob("*.rpm"))
        total = sum(p.stat().st_size for p in rpms)
        n = len(rpms)

        ws = tmp / "ws"
        (ws / "repo").mkdir(parents=True)
        (ws / "repo" / "config.yaml").write_text("label: bench@appbuild:1\n")
        env = {**os.environ, "APPBUILD_WORKSPACE": str(ws), "APPBUILD_CACHE": str(tmp / "cache")}
        counter = iter(range(1_000_000))
        state = {"repo": None}

        def appbuild_import() -> None:  # into an empty repository; the no-op runs right after it
            if state["repo"]:
                shutil.rmtree(state["repo"])
            state["repo"] = tmp / f"data-{next(counter)}"
            out = run([APPBUILD, "import", "rpm", "--repo", str(work / "repo")],
                      env={**env, "APPBUILD_REPOSITORY": str(state["repo"])}).stdout.decode()
            assert out.count("imported ") == n, out[-2000:]

        def appbuild_noop() -> None:
            out = run([APPBUILD, "import", "rpm", "--repo", str(work / "repo")],
                      env={**env, "APPBUILD_REPOSITORY": str(state["repo"])}).stdout.decode()
            assert out.count("already imported") == n

        def rpm_justdb() -> None:
            root = Path(tempfile.mkdtemp(dir=tmp, prefix="justdb-"))
            run(["rpm", "-i", "--justdb", "--nodeps", "--root", str(root), "--dbpath", "/var/lib/rpm", *map(str, rpms)])
            shutil.rmtree(root)

        def rpm_install() -> None:
            root = Path(tempfile.mkdtemp(dir=tmp, prefix="install-"))
            run(["rpm", "-i", "--nodeps", "--noscripts", "--root", str(root), "--dbpath", "/var/lib/rpm",
                 *map(str, rpms)])
            shutil.rmtree(root)

        fns = {"appbuild import": appbuild_import, "appbuild re-import (no-op)": appbuild_noop,
               "rpm -i --justdb --nodeps": rpm_justdb}
        if os.geteuid() == 0:
            fns["rpm -i --nodeps --noscripts"] = rpm_install
        times = interleave(fns, args.reps, warmup=1)
        store_bytes = sum(f.stat().st_size for f in (state["repo"] / "objects").rglob("*.zst"))

        rows = []
        for name, ts in times.items():
            m = med(ts)
            rows.append([name, f"{m:.3f}", f"{min(ts):.3f}", f"{n / m:.1f}", mb(total / m)])
        ref = med(times["rpm -i --justdb --nodeps"])
        print(table(["method", "median s", "min s", "packages/s", "MB/s"], rows,
                    title=f"{n} RPMs, {mb(total)} MB of .rpm files, from a local rpm-md repository "
                          f"(median of {args.reps})"))
        ratio = med(times["appbuild import"]) / ref
        print(f"appbuild import / rpm --justdb: {ratio:.2f}x the time; content store grew by {mb(store_bytes)} MB")
        figures = {
            "packages": n, "rpm_bytes": total, "reps": args.reps, "store_bytes": store_bytes,
            "seconds": {k: {"median": r3(med(v)), "min": r3(min(v))} for k, v in times.items()},
            "packages_per_s": {k: r3(n / med(v)) for k, v in times.items()},
            "mb_per_s": {k: r3(total / 1e6 / med(v)) for k, v in times.items()},
            "ratio_import_vs_rpm_justdb": r3(ratio),
        }
        if "rpm -i --nodeps --noscripts" in times:
            figures["ratio_import_vs_rpm_install"] = r3(med(times["appbuild import"]) /
                                                        med(times["rpm -i --nodeps --noscripts"]))
        emit("capsule_import", figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
