"""No-op ``appbuild cook recipes/`` when nothing changed (target: under 1 s for 20 recipes).

A temporary workspace gets 20 small real recipes:

* 4 C shared libraries ``libgreet0..3`` with symbol versions, in a chain: libgreetK
  links libgreet(K-1) and build-requires ``libgreet(K-1):devel``;
* 8 C programs ``greeter0..7``, each linking one of the libraries (build-requires its
  ``:devel``), with a shell script, a man page and a config file;
* 8 file-only packages ``data0..7`` (docs, a script, config, data files from sources
  beside the recipe); dataK build-requires data(K-1) for K = 1..3 and 5..7.

The toolchain group's packages are imported (from the project's cache, or BENCH_CACHE)
and everything is cooked once with the real CLI, then the real CLI is timed (subprocess,
wall clock) for ``appbuild cook recipes/`` (20 no-ops) and ``appbuild cook
recipes/greeter7`` (1 no-op). The reference, in the same run and interleaved with the
no-ops, is ``appbuild --version`` (interpreter start + the CLI's top-level imports),
and ``python -c pass`` (the bare interpreter). Afterwards one no-op is profiled
(``-X importtime`` and cProfile) to say where its time goes.

    /tmp/v/bin/python bench/noop_cook.py            # BENCH_REPS=N to change repetitions
"""

from __future__ import annotations

import os
import pstats
import re
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    APPBUILD,
    PYTHON,
    REPO_ROOT,
    emit,
    interleave,
    med,
    ms,
    r3,
    rmtree,
    run,
    table,
    timed,
)

N_LIBS, N_PROGS, N_DATA = 4, 8, 8
TARGET_SECONDS = 1.0
REPS = int(os.environ.get("BENCH_REPS", "15"))


# ------------------------------------------------------------------ the workspace


def _lib(k: int) -> dict[str, str]:
    dep = k - 1 if k > 0 else None
    inc_dep = f'#include "greet{dep}.h"\n' if dep is not None else ""
    call_dep = f"    greet{dep}_print(name);\n" if dep is not None else ""
    ldlibs = f"-lgreet{dep}" if dep is not None else ""
    br = f"    buildRequires = ['libgreet{dep}:devel']\n" if dep is not None else ""
    return {
        f"greet{k}.c": textwrap.dedent(f"""\
            #include <stdio.h>
            #include <stdlib.h>
            #include <string.h>
            #include "greet{k}.h"
            INC_DEP
            char *greet{k}_text(const char *name)
            {{
                const char *fmt = "Hello from level {k}, %s!";
                size_t n = strlen(fmt) + strlen(name) + 1;
                char *s = malloc(n);
                if (s)
                    snprintf(s, n, fmt, name);
                return s;
            }}

            int greet{k}_print(const char *name)
            {{
                CALL_DEP
                char *s = greet{k}_text(name);
                if (!s)
                    return -1;
                puts(s);
                free(s);
                return 0;
            }}
            """).replace("INC_DEP\n", inc_dep).replace("    CALL_DEP\n", call_dep),
        f"greet{k}.h": textwrap.dedent(f"""\
            #ifndef GREET{k}_H
            #define GREET{k}_H
            char *greet{k}_text(const char *name);
            int greet{k}_print(const char *name);
            #endif
            """),
        f"greet{k}.map": f"LIBGREET{k}_1.0 {{\n    global:\n        greet{k}_text;\n        greet{k}_print;\n"
                         f"    local:\n        *;\n}};\n",
        "Makefile": textwrap.dedent(f"""\
            PREFIX ?= /usr
            LIBDIR ?= $(PREFIX)/lib
            INCLUDEDIR ?= $(PREFIX)/include

            all: libgreet{k}.so.1.0

            libgreet{k}.so.1.0: greet{k}.c greet{k}.h greet{k}.map
            \t$(CC) $(CFLAGS) $(CPPFLAGS) -fPIC -shared -Wl,-soname,libgreet{k}.so.1 -Wl,--version-script=greet{k}.map $(LDFLAGS) -o $@ greet{k}.c {ldlibs}

            install: libgreet{k}.so.1.0
            \tinstall -D -m 0755 libgreet{k}.so.1.0 $(DESTDIR)$(LIBDIR)/libgreet{k}.so.1.0
            \tln -sf libgreet{k}.so.1.0 $(DESTDIR)$(LIBDIR)/libgreet{k}.so.1
            \tln -sf libgreet{k}.so.1 $(DESTDIR)$(LIBDIR)/libgreet{k}.so
            \tinstall -D -m 0644 greet{k}.h $(DESTDIR)$(INCLUDEDIR)/greet{k}.h
            """),
        "recipe.py": textwrap.dedent(f"""\
            class LibGreet{k}(PackageRecipe):
                \"\"\"Benchmark library level {k}.\"\"\"

                name = 'libgreet{k}'
                version = '1.{k}'
                BUILD_REQUIRES

                def setup(r):
                    r.addSource('greet{k}.c')
                    r.addSource('greet{k}.h')
                    r.addSource('greet{k}.map')
                    r.addSource('Makefile')
                    r.Make()
                    r.MakeInstall('PREFIX=%(prefix)s LIBDIR=%(libdir)s INCLUDEDIR=%(includedir)s')
            """).replace("    BUILD_REQUIRES\n", br),
    }


def _prog(k: int) -> dict[str, str]:
    lib = k % N_LIBS
    return {
        "main.c": textwrap.dedent(f"""\
            #include <greet{lib}.h>

            int main(int argc, char **argv)
            {{
                /* greeter {k} */
                return greet{lib}_print(argc > 1 ? argv[1] : "world") == 0 ? 0 : 1;
            }}
            """),
        f"greeter{k}-all.sh": f"#!/bin/sh\n# greets everyone (greeter {k})\nfor who in \"$@\"; do greeter{k} \"$who\"; done\n",
        f"greeter{k}.1": f".TH GREETER{k} 1\n.SH NAME\ngreeter{k} \\- print a greeting\n",
        "recipe.py": textwrap.dedent(f"""\
            class Greeter{k}(PackageRecipe):
                \"\"\"Benchmark program {k}, linking libgreet{lib}.\"\"\"

                name = 'greeter{k}'
                version = '2.{k}'
                buildRequires = ['libgreet{lib}:devel']

                def setup(r):
                    r.addSource('main.c')
                    r.addSource('greeter{k}-all.sh')
                    r.addSource('greeter{k}.1')
                    r.Run('%(cc)s %(cflags)s %(ldflags)s -o greeter{k} main.c -lgreet{lib}')
                    r.Install('greeter{k}', '%(bindir)s/greeter{k}')
                    r.Install('greeter{k}-all.sh', '%(bindir)s/greeter{k}-all', mode=0o755)
                    r.Install('greeter{k}.1', '%(mandir)s/man1/greeter{k}.1')
                    r.Create('%(sysconfdir)s/greeter{k}.conf', contents='greeting_target = world {k}\\n')
            """),
    }


def _data(k: int) -> dict[str, str]:
    dep = k - 1 if k % 4 else None
    br = f"    buildRequires = ['data{dep}']\n" if dep is not None else ""
    readme = "".join(f"data set {k}, line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(40))
    table_ = "".join(f"{i},{i * i},{(i * 7919) % 1000}\n" for i in range(200))
    return {
        "README": readme,
        "table.csv": table_,
        "recipe.py": textwrap.dedent(f"""\
            class Data{k}(PackageRecipe):
                \"\"\"Benchmark file-only package {k}.\"\"\"

                name = 'data{k}'
                version = '3.{k}'
                BUILD_REQUIRES

                def setup(r):
                    r.addSource('README')
                    r.addSource('table.csv')
                    r.Install('README', '%(thisdocdir)s/README')
                    r.Install('table.csv', '%(datadir)s/data{k}/table.csv')
                    r.Create('%(datadir)s/data{k}/version', contents='{k}\\n')
                    r.Create('%(sysconfdir)s/data{k}.conf', contents='enabled = yes\\n')
                    r.Create('%(bindir)s/data{k}-show', contents='#!/bin/sh\\ncat %(datadir)s/data{k}/table.csv\\n',
                             mode=0o755)
            """).replace("    BUILD_REQUIRES\n", br),
    }


def make_workspace(root: Path) -> list[str]:
    (root / "repo").mkdir(parents=True)
    # cooks run in build roots made from the project's toolchain group, imported below
    (root / "repo" / "config.yaml").write_text("label: cernvm@cvm:2\nupstream:\n  deb:\n    - group: group-toolchain\n")
    (root / "groups").mkdir()
    shutil.copy(REPO_ROOT / "groups" / "group-toolchain.py", root / "groups")
    recipes = {}
    recipes.update({f"libgreet{k}": _lib(k) for k in range(N_LIBS)})
    recipes.update({f"greeter{k}": _prog(k) for k in range(N_PROGS)})
    recipes.update({f"data{k}": _data(k) for k in range(N_DATA)})
    for name, files in recipes.items():
        d = root / "recipes" / name
        d.mkdir(parents=True)
        for fname, text in files.items():
            (d / fname).write_text(text)
    return sorted(recipes)


def workspace_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        APPBUILD_WORKSPACE=str(root),
        APPBUILD_REPOSITORY=str(root / "repo" / "data"),
        # the project's cache unless BENCH_CACHE names another: the toolchain's packages are fetched once
        APPBUILD_CACHE=os.environ.get("BENCH_CACHE", str(REPO_ROOT / "repo" / "cache")),
        APPBUILD_LOGS=str(root / "repo" / "logs"),
        APPBUILD_IMAGES=str(root / "images"),
        # compiled bytecode goes to a private tree, not into the project (or the recipes)
        PYTHONPYCACHEPREFIX=str(root / "pycache"),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def no_bytecode_env(env: dict[str, str]) -> dict[str, str]:
    """Python neither reads nor writes a bytecode cache for appbuilder (this machine's default:
    PYTHONDONTWRITEBYTECODE=1 and no __pycache__ in the project, so every run compiles appbuilder)."""
    env = dict(env)
    env.pop("PYTHONPYCACHEPREFIX", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# ------------------------------------------------------------------ profiling


def import_profile(argv: list[str], env: dict, cwd: Path, top: int = 8):
    """``-X importtime`` of one run: total, the program's own top-level imports, and
    self time summed by top-level package (self times are disjoint, so they add up)."""
    p = run([PYTHON, "-X", "importtime", *argv], env=env, cwd=cwd)
    total = 0.0
    tops: list[tuple[str, float]] = []
    by_package: dict[str, float] = {}
    for line in p.stderr.decode(errors="replace").splitlines():
        m = re.match(r"import time:\s+(\d+)\s*\|\s*(\d+)\s*\|( *)(\S+)", line)
        if not m:
            continue
        self_s, cumulative, indent, name = int(m.group(1)) / 1e6, int(m.group(2)) / 1e6, len(m.group(3)), m.group(4)
        package = name.split(".")[0].lstrip("_") or name
        by_package[package] = by_package.get(package, 0.0) + self_s
        if indent == 1:  # an import done by the program itself, not by another module
            total += cumulative
            tops.append((name, cumulative))
    tops.sort(key=lambda t: -t[1])
    packages = sorted(by_package.items(), key=lambda t: -t[1])
    return total, tops[:top], packages[:top]


# Runs the CLI in-process under cProfile. The cooks run in a ThreadPoolExecutor thread,
# which cProfile does not follow by itself, so every new thread gets its own profiler
# (threading.setprofile); the main thread's and the worker threads' statistics are
# written to two files.
PROFILE_DRIVER = r"""
import cProfile, sys, threading
main_out, threads_out = sys.argv[1], sys.argv[2]
sys.argv = ["appbuild", *sys.argv[3:]]
thread_profiles = []
def _start(*_):
    p = cProfile.Profile()
    thread_profiles.append(p)
    p.enable()
threading.setprofile(_start)
main = cProfile.Profile()
main.enable()
rc = 1
try:
    from appbuilder.cli import main as cli_main
    rc = cli_main(sys.argv[1:])
finally:
    main.disable()
    threading.setprofile(None)
    main.dump_stats(main_out)
    import pstats
    st = None
    for p in thread_profiles:
        p.disable()
        st = pstats.Stats(p) if st is None else st.add(p)
    if st is not None:
        st.dump_stats(threads_out)
sys.exit(rc)
"""

# (label, which profile, file suffix, function name): cumulative seconds under cProfile
PHASES = [
    ("imports (importlib _find_and_load), main thread", "main", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("load_settings (config.yaml)", "main", "appbuilder/core/settings.py", "load_settings"),
    ("find_recipes (read the recipe files, sandboxed)", "main", "appbuilder/recipe/loader.py", "find_recipes"),
    ("Repository() open + schema", "main", "appbuilder/repository/repo.py", "__init__"),
    ("cook_all (graph + skipped cooks, wall)", "main", "appbuilder/cook/batch.py", "cook_all"),
    ("  build_graph (networkx)", "main", "appbuilder/graph/buildorder.py", "build_graph"),
    ("  Cooker.cook, worker thread (sum)", "threads", "appbuilder/cook/cook.py", "cook"),
    ("    resolve_toolchain (the toolchain group)", "threads", "appbuilder/cook/toolchain.py",
     "resolve_toolchain"),
    ("    source_hash (read recipe dirs)", "threads", "appbuilder/cook/inputs.py", "source_hash"),
    ("    build_requirements (repo.find_one)", "threads", "appbuilder/cook/cook.py", "build_requirements"),
    ("    Repository.by_input (SQLite)", "threads", "appbuilder/repository/repo.py", "by_input"),
]


def cprofile(argv: list[str], env: dict, cwd: Path, outdir: Path):
    main_out, threads_out = outdir / "main.prof", outdir / "threads.prof"
    run([PYTHON, "-c", PROFILE_DRIVER, str(main_out), str(threads_out), *argv], env=env, cwd=cwd)
    stats = {"main": pstats.Stats(str(main_out))}
    if threads_out.exists():
        stats["threads"] = pstats.Stats(str(threads_out))
    rows = []
    for label, which, suffix, func in PHASES:
        ct, calls = 0.0, 0
        st = stats.get(which)
        for (fname, _line, fn), (cc, nc, tt, cum, callers) in (st.stats.items() if st else ()):
            if fn == func and fname.endswith(suffix):
                ct += cum
                calls += nc
        rows.append((label, ct, calls))
    return stats["main"].total_tt, rows


# ------------------------------------------------------------------ main


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="appbuild-bench-noop-"))
    try:
        return _main(tmp)
    finally:
        rmtree(tmp)


def _main(root: Path) -> int:
    names = make_workspace(root)
    env = workspace_env(root)
    assert len(names) == 20, names

    run([APPBUILD, "import", "upstream"], env=env, cwd=root)
    t_first, p = timed(lambda: run([APPBUILD, "cook", "recipes/"], env=env, cwd=root))
    cooked = p.stdout.decode().count("cooked ")
    if cooked != len(names):
        print(p.stdout.decode(), p.stderr.decode(), file=sys.stderr)
        raise SystemExit(f"expected {len(names)} cooks, saw {cooked}")
    p = run([APPBUILD, "cook", "recipes/"], env=env, cwd=root)
    uptodate = p.stdout.decode().count("is up to date")
    if uptodate != len(names):
        raise SystemExit(f"second cook: expected {len(names)} up-to-date recipes, saw {uptodate}:\n{p.stdout.decode()}")
    p = run([APPBUILD, "cook", "recipes/greeter7"], env=env, cwd=root)
    assert p.stdout.decode().count("is up to date") == 1, p.stdout.decode()
    before = run([APPBUILD, "query"], env=env, cwd=root).stdout.decode()

    nobc = no_bytecode_env(env)
    cmds = {
        "python -c pass": ([PYTHON, "-c", "pass"], env),
        "appbuild --version": ([APPBUILD, "--version"], env),
        "appbuild cook recipes/greeter7 (1 no-op)": ([APPBUILD, "cook", "recipes/greeter7"], env),
        "appbuild cook recipes/ (20 no-ops)": ([APPBUILD, "cook", "recipes/"], env),
        "no bytecode cache: appbuild --version": ([APPBUILD, "--version"], nobc),
        "no bytecode cache: appbuild cook recipes/ (20)": ([APPBUILD, "cook", "recipes/"], nobc),
    }
    times = interleave({k: (lambda a=a, e=e: run(a, env=e, cwd=root)) for k, (a, e) in cmds.items()},
                       REPS, warmup=2)

    # nothing may have been cooked by the timed runs
    after = run([APPBUILD, "query"], env=env, cwd=root).stdout.decode()
    if after != before or sum(line.split("=")[0] in names for line in after.splitlines()) != len(names):
        raise SystemExit(f"the no-op cooks changed the repository:\n{before}\n---\n{after}")

    ref = times["appbuild --version"]
    noop20 = times["appbuild cook recipes/ (20 no-ops)"]
    noop1 = times["appbuild cook recipes/greeter7 (1 no-op)"]
    nb_ver = times["no bytecode cache: appbuild --version"]
    nb_20 = times["no bytecode cache: appbuild cook recipes/ (20)"]
    rows = []
    for k, ts in times.items():
        rows.append([k, ms(med(ts)), ms(min(ts)), f"{med(ts) / med(ref):.2f}x", f"{min(ts) / min(ref):.2f}x"])
    print(f"noop_cook: {len(names)} recipes ({N_LIBS} C libraries in a chain, {N_PROGS} C programs, "
          f"{N_DATA} file-only packages); first full cook {t_first:.2f} s; {REPS} interleaved repetitions")
    print()
    print(table(["command (wall clock, subprocess)", "median ms", "min ms", "median / --version", "min / --version"],
                rows))
    print("(bytecode cached in a private PYTHONPYCACHEPREFIX unless the row says otherwise; "
          "ratios are against the cached --version)")
    print()

    per_recipe = (med(noop20) - med(noop1)) / (len(names) - 1)
    startup_share = med(ref) / med(noop20)
    summary = [
        ["target: 20-recipe no-op < 1000 ms", ms(med(noop20)), "MET" if med(noop20) < TARGET_SECONDS else "MISSED"],
        ["startup (--version) share of 20-recipe no-op", f"{startup_share * 100:.0f}%", ""],
        ["cook-specific time (20 no-ops - --version)", ms(med(noop20) - med(ref)), "ms"],
        ["cook-specific time (1 no-op - --version)", ms(med(noop1) - med(ref)), "ms"],
        ["marginal cost per extra recipe ((20 - 1) / 19)", ms(per_recipe), "ms"],
        ["no bytecode cache: 20-recipe no-op", ms(med(nb_20)), "MET" if med(nb_20) < TARGET_SECONDS else "MISSED"],
        ["no bytecode cache: extra cost of compiling on every run", ms(med(nb_20) - med(noop20)), "ms"],
    ]
    print(table(["figure", "value", ""], summary))
    print()

    # where the time of one 20-recipe no-op goes
    imp_total, imp_top, imp_packages = import_profile([APPBUILD, "cook", "recipes/"], env, root)
    print(table(["import by the program (-X importtime, one 20-recipe no-op)", "cumulative ms"],
                [[n, ms(t)] for n, t in imp_top] + [["all imports", ms(imp_total)]]))
    print()
    print(table(["import self time by top-level package (same run)", "ms", "share of imports"],
                [[n, ms(t), f"{t / imp_total * 100:.0f}%"] for n, t in imp_packages]))
    print()
    prof_total, phases = cprofile(["cook", "recipes/"], env, root, root)
    print(table(["phase (cProfile in-process, one 20-recipe no-op; inflated by profiling)",
                 "cumulative ms", "calls", "share of main thread"],
                [[lbl, ms(ct), calls, f"{ct / prof_total * 100:.0f}%"] for lbl, ct, calls in phases]
                + [["main thread profiled total (after interpreter start)", ms(prof_total), "", "100%"]]))
    print()

    emit("noop_cook", {
        "recipes": len(names),
        "reps": REPS,
        "first_cook_s": r3(t_first),
        "noop20_s": {"median": r3(med(noop20)), "min": r3(min(noop20))},
        "noop1_s": {"median": r3(med(noop1)), "min": r3(min(noop1))},
        "version_s": {"median": r3(med(ref)), "min": r3(min(ref))},
        "python_pass_s": {"median": r3(med(times["python -c pass"])), "min": r3(min(times["python -c pass"]))},
        "no_bytecode_cache": {
            "version_s": {"median": r3(med(nb_ver)), "min": r3(min(nb_ver))},
            "noop20_s": {"median": r3(med(nb_20)), "min": r3(min(nb_20))},
            "ratio_noop20_vs_version": {"median": r3(med(nb_20) / med(nb_ver)), "min": r3(min(nb_20) / min(nb_ver))},
        },
        "ratio_noop20_vs_version": {"median": r3(med(noop20) / med(ref)), "min": r3(min(noop20) / min(ref))},
        "ratio_noop1_vs_version": {"median": r3(med(noop1) / med(ref)), "min": r3(min(noop1) / min(ref))},
        "startup_share_of_noop20": r3(startup_share),
        "per_extra_recipe_s": r3(per_recipe),
        "imports_s": r3(imp_total),
        "top_imports_s": {n: r3(t) for n, t in imp_top[:5]},
        "import_self_by_package_s": {n: r3(t) for n, t in imp_packages[:6]},
        "cprofile_phases_s": {lbl.strip(): r3(ct) for lbl, ct, _ in phases},
        "target_s": TARGET_SECONDS,
        "target_met": med(noop20) < TARGET_SECONDS,
        "repository_unchanged": True,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
