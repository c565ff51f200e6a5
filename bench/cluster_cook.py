"""Cooks on a Dask cluster (issue 17): two workers against one worker and a local ``-j 2``.

In one run, on this machine (every worker is a real ``dask worker`` process on 127.0.0.1,
one thread, its own empty directory, pinned to a processor of its own with ``taskset`` as
a one-core node of a cluster would be, so that one worker cannot borrow the processor
a second worker would have; the repository is read over HTTP from the export the
coordinator serves):

1. **20 small recipes** (independent C programs of four source files and a header each,
   one of them 120 generated functions: about 1 s of ``gcc -O2`` per recipe, a small
   package's build; real cooks: compile, link, install, policies) cooked with ``--force``
   (every one is built): through a cluster of **two workers**, a cluster of **one worker**, and
   locally with ``-j 2``, interleaved, after one warm-up round each (build roots made,
   objects fetched). Goal: two workers >= 1.8x one worker.
2. **The overhead of one remote cook** beyond the build itself: a trivial recipe (one
   file made by ``r.Create``) cooked ``--force`` remote and local; each command's wall
   clock less its cook proper (``Cooker.cook``, as the command reports it: the worker
   runs it on one pinned processor, the local command on two; both commands resolve the
   toolchain group before their first cook, outside it), remote against local
   (the whole commands' difference is printed too); and, from the worker's own timing,
   the task's time beyond the cook proper (opening the export, the changeset). Goal < 0.5 s.
   (Only the one-worker cluster runs then.)
   Beside it, from the one-worker runs of 1., each run's time beyond its cooks proper
   divided by its cooks: what a cook costs on the cluster beyond its build when many run.
3. **Export of the repository** (the toolchain plus the cooked recipes): time and size of
   a first export into an empty directory, and of an export with nothing changed.

The toolchain group's packages are imported from the project's cache (or BENCH_CACHE), or
the repository starts as a copy of BENCH_TOOLCHAIN_REPO (a repository holding them).
On a 2-core machine the workers share the cores with each other and the coordinator,
so the ratios say as much about the machine as about appbuild.

    .venv/bin/python bench/cluster_cook.py        # BENCH_REPS=N (default 3), BENCH_TOOLCHAIN_REPO=DIR
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import APPBUILD, REPO_ROOT, emit, med, r3, run, table, timed  # noqa: E402

N_RECIPES = 20
REPS = int(os.environ.get("BENCH_REPS", "3"))
DASK = str(Path(sys.executable).with_name("dask"))
CPUS = len(os.sched_getaffinity(0))


# ------------------------------------------------------------------ the workspace


FUNCTIONS = 120  # in work.c: about 0.8 s of gcc -O2 on this machine


def _work(k: int) -> str:
    """C source of FUNCTIONS small functions with loops and switches (compile time, not run time)."""
    out = []
    for j in range(FUNCTIONS):
        out.append(textwrap.dedent(f"""\
            static int f{j}(int x)
            {{
                int s = {j + k};
                for (int i = 0; i < x; i++) {{
                    switch ((i * {j + 3}) % 7) {{
                    case 0: s += i * {j}; break;
                    case 1: s ^= i << {j % 5}; break;
                    case 2: s -= (s >> 3) + {j}; break;
                    case 3: s = s * 31 + i; break;
                    default: s += (i % {j + 2}) * {j + 1};
                    }}
                }}
                return s;
            }}
            """))
    calls = "".join(f"    s += f{j}(x + {j});\n" for j in range(FUNCTIONS))
    out.append(f'#include "prog{k}.h"\nint prog{k}_work(int x)\n{{\n    int s = 0;\n{calls}    return s;\n}}\n')
    return "".join(out)


def _program(k: int) -> dict[str, str]:
    return {
        "work.c": _work(k),
        "main.c": textwrap.dedent(f"""\
            #include <stdio.h>
            #include "prog{k}.h"
            int main(int argc, char **argv)
            {{
                printf("%s %d %d\\n", prog{k}_name(), prog{k}_sum(argc > 1 ? argc : {k + 3}), prog{k}_work(argc));
                return 0;
            }}
            """),
        "name.c": f'#include "prog{k}.h"\nconst char *prog{k}_name(void) {{ return "prog{k}"; }}\n',
        "sum.c": textwrap.dedent(f"""\
            #include "prog{k}.h"
            int prog{k}_sum(int n)
            {{
                int s = 0;
                for (int i = 0; i < n; i++)
                    s += i * {k + 1};
                return s;
            }}
            """),
        f"prog{k}.h": f"const char *prog{k}_name(void);\nint prog{k}_sum(int n);\nint prog{k}_work(int x);\n",
        "recipe.py": textwrap.dedent(f"""\
            class Prog{k}(PackageRecipe):
                name = 'prog{k}'
                version = '1.{k}'

                def setup(r):
                    for f in ('main.c', 'name.c', 'sum.c', 'work.c', 'prog{k}.h'):
                        r.addSource(f)
                    r.Run('%(cc)s %(cflags)s %(ldflags)s -o prog{k} main.c name.c sum.c work.c')
                    r.Install('prog{k}', '%(bindir)s/prog{k}')
            """),
    }


TRIVIAL = textwrap.dedent("""\
    class Trivial(PackageRecipe):
        name = 'trivial'
        version = '1.0'

        def setup(r):
            r.Create('%(datadir)s/trivial/hello', contents='hello\\n')
    """)


def make_workspace(root: Path) -> None:
    (root / "repo").mkdir(parents=True)
    (root / "recipes").mkdir()
    (root / "groups").mkdir()
    (root / "repo" / "config.yaml").write_text(
        "label: cernvm@cvm:2\nupstream:\n  deb:\n    - group: group-toolchain\n")
    shutil.copy(REPO_ROOT / "groups" / "group-toolchain.py", root / "groups")
    for k in range(N_RECIPES):
        d = root / "recipes" / f"prog{k}"
        d.mkdir()
        for name, text in _program(k).items():
            (d / name).write_text(text)
    (root / "trivial" / "trivial").mkdir(parents=True)  # outside recipes/: cooked on its own
    (root / "trivial" / "trivial" / "recipe.py").write_text(TRIVIAL)


def env_for(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPBUILD_")}
    env.update(APPBUILD_WORKSPACE=str(root),
               APPBUILD_CACHE=os.environ.get("BENCH_CACHE", str(REPO_ROOT / "repo" / "cache")))
    return env


# ------------------------------------------------------------------ clusters


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """``dask scheduler`` and N ``dask worker`` processes on 127.0.0.1 (each in its own directory)."""

    def __init__(self, top: Path, workers: int):
        self.top = top
        top.mkdir(parents=True)
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPBUILD_")}
        log = open(top / "scheduler.log", "wb")
        self.procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                        "--no-dashboard"], cwd=top, env=env, stdout=log, stderr=log,
                                       start_new_session=True)]
        for i in range(workers):
            home = top / f"w{i}"
            home.mkdir()
            wlog = open(top / f"w{i}.log", "wb")
            # each worker on a processor of its own, as on a cluster of one-core nodes (the
            # scheduler and the coordinator are not pinned: they take from the workers' time)
            self.procs.append(subprocess.Popen(
                ["taskset", "--cpu-list", str(i % CPUS), DASK, "worker", self.address, "--name", f"w{i}",
                 "--nworkers", "1", "--nthreads", "1",
                 "--host", "127.0.0.1", "--local-directory", str(home), "--no-dashboard"],
                cwd=home, env=env, stdout=wlog, stderr=wlog, start_new_session=True))
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(self.address, timeout=5, set_as_default=False) as c:
                    c.wait_for_workers(workers, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def cook(ws: Path, *args: str) -> tuple[float, str]:
    t, p = timed(lambda: run([APPBUILD, "cook", *args], env=env_for(ws), cwd=ws))
    return t, p.stdout.decode() + p.stderr.decode()


def build_seconds(output: str) -> float:
    """The cook proper (``Cooker.cook``) of the one cook *output* reports: the worker's
    ``build`` figure for a remote cook, the ``cooked ... in`` figure for a local one."""
    remote = re.findall(r"build ([\d.]+) s, task", output)
    return float(remote[0]) if remote else float(re.findall(r"cooked .+? in ([\d.]+) s", output)[0])


def task_overheads(output: str) -> list[float]:
    """task seconds minus build seconds of each remote cook the output reports."""
    return [float(t) - float(b) for b, t in re.findall(r"build ([\d.]+) s, task ([\d.]+) s", output)]


def main() -> int:
    top = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    clusters = []
    try:
        ws = top / "ws"
        make_workspace(ws)
        seed = os.environ.get("BENCH_TOOLCHAIN_REPO")
        if seed:  # a repository holding the toolchain group already (objects hard-linked)
            data = ws / "repo" / "data"
            data.mkdir(parents=True)
            run(["cp", "-a", "--link", str(Path(seed) / "objects"), str(data / "objects")])
            shutil.copy(Path(seed) / "index.sqlite", data / "index.sqlite")
        else:
            t_import, _ = timed(lambda: run([APPBUILD, "import", "upstream"], env=env_for(ws), cwd=ws))
            print(f"toolchain imported in {t_import:.1f} s", flush=True)
        two = LocalCluster(top / "two", 2)
        clusters.append(two)
        one = LocalCluster(top / "one", 1)
        clusters.append(one)
        runs = {
            "local -j 2": lambda: cook(ws, "recipes/", "--force", "-j", "2"),
            "cluster, 2 workers": lambda: cook(ws, "recipes/", "--force", "--cluster", two.address),
            "cluster, 1 worker": lambda: cook(ws, "recipes/", "--force", "--cluster", one.address),
        }
        for name, fn in runs.items():  # warm-up: build roots made, objects fetched by each worker
            t, _ = fn()
            print(f"warm-up {name}: {t:.1f} s", flush=True)
        times: dict[str, list[float]] = {k: [] for k in runs}
        overheads: list[float] = []
        amortized: list[float] = []  # one worker: the run's time beyond its cooks proper, per cook
        for _ in range(REPS):
            for name, fn in runs.items():
                t, out = fn()
                times[name].append(t)
                overheads += task_overheads(out)
                if name == "cluster, 1 worker":
                    builds = [float(b) for b in re.findall(r"build ([\d.]+) s, task", out)]
                    amortized.append((t - sum(builds)) / max(1, len(builds)))
        # one trivial cook, remote against local (the two-worker cluster, idle from now on, stopped:
        # its processes' timers would take from the two processors this part measures)
        two.stop()
        clusters.remove(two)
        trivial = {"local": lambda: cook(ws, "trivial/trivial", "--force"),
                   "cluster (1 worker)": lambda: cook(ws, "trivial/trivial", "--force", "--cluster", one.address)}
        for fn in trivial.values():
            fn()
        ttimes: dict[str, list[float]] = {k: [] for k in trivial}
        beyond: dict[str, list[float]] = {k: [] for k in trivial}  # the command's time beyond the cook proper
        tover: list[float] = []
        for _ in range(max(REPS, 5)):
            for name, fn in trivial.items():
                t, out = fn()
                ttimes[name].append(t)
                beyond[name].append(t - build_seconds(out))
                tover += task_overheads(out)
        # the export of the repository now
        sys.path.insert(0, str(REPO_ROOT))
        from appbuilder.core.settings import load_settings
        from appbuilder.repository.export import export_repository
        from appbuilder.repository.repo import Repository

        os.environ.update(env_for(ws))
        settings = load_settings(ws)
        repo = Repository(settings.repository, settings.label)
        dest = top / "export"
        t_first, first = timed(lambda: export_repository(repo, dest))
        t_again, _ = timed(lambda: export_repository(repo, dest))
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        objects = sum(1 for _ in (dest / "objects").rglob("*.zst")) if (dest / "objects").is_dir() else 0
    finally:
        for c in clusters:
            c.stop()
        shutil.rmtree(top, ignore_errors=True)

    m = {k: med(v) for k, v in times.items()}
    speedup = m["cluster, 1 worker"] / m["cluster, 2 workers"]
    print(table(["run", "median s", "min s", "per recipe s"],
                [[k, f"{m[k]:.1f}", f"{min(v):.1f}", f"{m[k] / N_RECIPES:.2f}"] for k, v in times.items()],
                title=f"{N_RECIPES} recipes cooked --force ({REPS} runs each, interleaved)"))
    print(f"two workers vs one worker: {speedup:.2f}x (goal >= 1.8x)")
    print(f"two workers vs local -j 2: {m['local -j 2'] / m['cluster, 2 workers']:.2f}x")
    tm = {k: med(v) for k, v in ttimes.items()}
    remote_extra = tm["cluster (1 worker)"] - tm["local"]
    bm = {k: med(v) for k, v in beyond.items()}
    remote_beyond = bm["cluster (1 worker)"] - bm["local"]
    print(table(["trivial cook", "median s", "min s", "beyond the cook proper s"],
                [[k, f"{tm[k]:.2f}", f"{min(v):.2f}", f"{bm[k]:.2f}"] for k, v in ttimes.items()]))
    print(f"one remote cook beyond the local one, the cook proper set aside (the worker's one pinned "
          f"processor against the local two): {remote_beyond:.2f} s (goal < 0.5 s); whole command: "
          f"{remote_extra:.2f} s")
    print(f"the worker's task beyond its cook (open the export, changeset): median {med(tover):.2f} s "
          f"(trivial), {med(overheads):.2f} s (20 recipes)")
    print(f"one worker, {N_RECIPES} recipes: the run's time beyond its cooks proper (connecting, exporting, "
          f"scheduling, changesets, commits), per cook: {med(amortized):.2f} s")
    print(f"export of the repository: {objects} objects, {size / 1e6:.1f} MB in {t_first:.1f} s; "
          f"again with nothing changed: {t_again:.2f} s")
    emit("cluster_cook", {
        "recipes": N_RECIPES, "reps": REPS, "seconds": {k: r3(v) for k, v in m.items()},
        "two_vs_one_worker": r3(speedup), "two_workers_vs_local_j2": r3(m["local -j 2"] / m["cluster, 2 workers"]),
        "trivial_seconds": {k: r3(v) for k, v in tm.items()}, "remote_overhead_seconds": r3(remote_beyond),
        "remote_whole_command_extra_seconds": r3(remote_extra),
        "task_overhead_seconds": r3(med(tover)), "amortized_overhead_per_cook_seconds": r3(med(amortized)),
        "export_seconds": r3(t_first), "export_again_seconds": r3(t_again),
        "export_bytes": size, "export_objects": objects, "first_export_written": first.objects_written,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
