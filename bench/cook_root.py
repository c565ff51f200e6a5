"""Hermetic build roots: what they cost (issue 11).

In one run, with each reference measured in the same process:

1. **A build root made cold**: the toolchain group's closure (GCC, binutils, the C
   library, perl, ...) written from an empty cache: contents decompressed from the
   content store (verified) into the unpacked cache, then hard-linked into the root.
   Reference: ``cp -a`` of the finished root (copying the same tree instead of linking).
2. **Setting up a cached root** for one cook (goal < 0.5 s): resolving the toolchain
   group, the closure of the recipe's build requirements, the root's key over every
   file, finding the cached root, and the first sandboxed command (``true``).
   Reference: the same ``true`` in a bwrap sandbox over the host's root.
3. **The busybox cook** (Debian's source, static, x86_64) in the hermetic root against
   the same cook in a root that is the host's own ``/`` (bound read-only, the way cooks
   ran before), interleaved (goal: within 1.1x).
4. **A no-op ``appbuild cook recipes/ --arch all``** of the project's recipes, everything
   up to date (goal < 1 s). Reference: ``appbuild --version``.

The workspace is a temporary copy of the project's recipes, groups and config; the cache
(lookaside, apt state) is the project's ``repo/cache`` unless BENCH_CACHE names another,
so sources are fetched once. Setting up imports the upstream packages and cooks every
recipe for both arches (a few minutes on 2 cores).

    .venv/bin/python bench/cook_root.py        # BENCH_REPS=N (default 3 cooks, 10 no-ops)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import APPBUILD, REPO_ROOT, emit, interleave, med, run, table, timed  # noqa: E402

from appbuilder.cook.buildroot import BuildRoots, plan_root  # noqa: E402
from appbuilder.cook.cook import Cooker, CookOptions  # noqa: E402
from appbuilder.core.arch import get_arch  # noqa: E402
from appbuilder.core.sandbox import Bind, Sandbox, build_env  # noqa: E402
from appbuilder.core.settings import load_settings  # noqa: E402
from appbuilder.recipe.loader import load_recipe  # noqa: E402
from appbuilder.repository.repo import Repository  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", "3"))
NOOP_REPS = max(REPS * 3, 10)
HOST_SKIP = {"proc", "sys", "dev", "tmp", "run", "build", "sources", "lost+found", "mnt", "media"}


class HostRootCooker(Cooker):
    """The same cook, in a root that is the host's own file system (read-only), as cooks
    ran before build roots: a directory of mount points with the host's top-level
    directories bound into them."""

    def __init__(self, *a, mirror: Path, **kw):
        super().__init__(*a, **kw)
        self.mirror = mirror

    def build_root(self, plan, log):
        return contextlib.nullcontext(self.mirror)

    def root_binds(self) -> list[Bind]:
        return [Bind(Path("/") / d.name, "/" + d.name) for d in self.mirror.iterdir()
                if d.is_dir() and not d.is_symlink() and d.name not in HOST_SKIP]


def host_mirror(top: Path) -> Path:
    """Mount points for the host's top-level directories (and its top-level links)."""
    mirror = top / "host-root"
    mirror.mkdir()
    for entry in Path("/").iterdir():
        if entry.is_symlink():
            os.symlink(os.readlink(entry), mirror / entry.name)
        elif entry.is_dir():
            (mirror / entry.name).mkdir()
    for name in ("build", "sources", "tmp", "var/tmp", "dev", "proc"):
        (mirror / name).mkdir(parents=True, exist_ok=True)
    return mirror


def workspace(top: Path) -> dict[str, str]:
    ws = top / "ws"
    for d in ("recipes", "groups"):
        shutil.copytree(REPO_ROOT / d, ws / d)
    (ws / "repo").mkdir()
    shutil.copy(REPO_ROOT / "repo" / "config.yaml", ws / "repo" / "config.yaml")
    env = dict(os.environ)
    env.update(APPBUILD_WORKSPACE=str(ws), APPBUILD_REPOSITORY=str(top / "repo"),
               APPBUILD_CACHE=os.environ.get("BENCH_CACHE", str(REPO_ROOT / "repo" / "cache")),
               APPBUILD_LOGS=str(top / "logs"), APPBUILD_IMAGES=str(top / "images"))
    return env


def main() -> None:
    top = Path(tempfile.mkdtemp(prefix="appbuild-bench-root-"))
    try:
        env = workspace(top)
        t0 = time.perf_counter()
        run([APPBUILD, "import", "upstream"], env=env)
        run([APPBUILD, "cook", "recipes/", "--arch", "all", "-j", "2"], env=env)
        print(f"set-up (import upstream, cook everything for both arches): {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
        os.environ.update({k: v for k, v in env.items() if k.startswith("APPBUILD_")})
        settings = load_settings()
        repo = Repository(settings.repository, settings.label)
        x86_64 = get_arch("x86_64")

        # 1. a root made cold, against copying the same tree
        cooker = Cooker(settings, repo)
        toolchain = cooker.toolchain()
        plan = plan_root([toolchain.troves], toolchain.links)
        cold, copies = [], []
        for i in range(REPS):
            cache = top / f"cold-{i}"
            roots = BuildRoots(cache, repo.store)

            def make_root():
                with roots.use(plan):
                    pass

            seconds, _ = timed(make_root)
            cold.append(seconds)
            copies.append(timed(lambda: run(["cp", "-a", str(roots.path_of(plan.key)), str(top / f"copy-{i}")]))[0])
            shutil.rmtree(top / f"copy-{i}")
            shutil.rmtree(cache)

        # 2. a cached root's set-up for one cook, and the first command in it
        rf = load_recipe(settings.recipes_dir / "cvmfs-client")
        reqs = cooker.build_requirements(rf, x86_64)

        def setup_cached():
            c = Cooker(settings, repo)  # a new process's worth of work: the toolchain is resolved again
            tc = c.toolchain()
            closure = c._build_requirement_closure(reqs, x86_64, tc)
            have = {t.nvf for t in tc.troves}
            p = plan_root([tc.troves, [t for t in closure if t.nvf not in have]], tc.links)
            with c.roots.use(p) as root:
                box = Sandbox(root, timeout=60)
                box.run(["true"], cwd="/", env=build_env(source_date_epoch=0), log=open(os.devnull, "wb"))

        def host_true():
            run(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
                 "--proc", "/proc", "true"])

        setup_cached()  # make the cvmfs-client root once
        setups = interleave({"cached set-up + first command": setup_cached, "bwrap true over /": host_true},
                            max(REPS * 3, 10))

        # 3. busybox: hermetic root against the host's root
        busybox = load_recipe(settings.recipes_dir / "busybox")
        mirror = host_mirror(top)
        hermetic = Cooker(settings, repo)
        on_host = HostRootCooker(settings, repo, mirror=mirror)
        opts = CookOptions(arch=x86_64, force=True, make_jobs=os.cpu_count() or 2)
        cooks = interleave({"busybox, hermetic root": lambda: hermetic.cook(busybox, opts),
                            "busybox, host root": lambda: on_host.cook(busybox, opts)}, REPS, warmup=0)

        # 4. no-op cook of every recipe, both arches
        noop = interleave({"appbuild cook recipes/ --arch all (no-op)":
                           lambda: run([APPBUILD, "cook", "recipes/", "--arch", "all"], env=env),
                           "appbuild --version": lambda: run([APPBUILD, "--version"], env=env)}, NOOP_REPS)
        recipes = len(list(settings.recipes_dir.glob("*/recipe.py")))

        rows = [
            ("build root, cold (toolchain, %d entries, %.0f MB)" % (len(plan.entries), plan.size / 1e6),
             f"{med(cold):.2f}", f"{min(cold):.2f}", "cp -a of that root", f"{med(copies):.2f}",
             f"{med(cold) / med(copies):.2f}x"),
            ("cached set-up + first command (cvmfs-client)", f"{med(setups['cached set-up + first command']):.3f}",
             f"{min(setups['cached set-up + first command']):.3f}", "bwrap true over /",
             f"{med(setups['bwrap true over /']):.3f}",
             f"{med(setups['cached set-up + first command']) / med(setups['bwrap true over /']):.1f}x"),
            ("busybox cook, hermetic root", f"{med(cooks['busybox, hermetic root']):.1f}",
             f"{min(cooks['busybox, hermetic root']):.1f}", "same cook, host root",
             f"{med(cooks['busybox, host root']):.1f}",
             f"{med(cooks['busybox, hermetic root']) / med(cooks['busybox, host root']):.3f}x"),
            (f"no-op cook, {recipes} recipes x 2 arches", f"{med(noop['appbuild cook recipes/ --arch all (no-op)']):.3f}",
             f"{min(noop['appbuild cook recipes/ --arch all (no-op)']):.3f}", "appbuild --version",
             f"{med(noop['appbuild --version']):.3f}",
             f"{med(noop['appbuild cook recipes/ --arch all (no-op)']) / med(noop['appbuild --version']):.1f}x"),
        ]
        print(table(("measure", "median s", "min s", "reference", "ref median s", "ratio"), rows,
                    title=f"build roots ({REPS} cooks, {NOOP_REPS} no-ops)"))
        emit("cook_root", {
            "root_cold_s": cold, "root_copy_s": copies, "root_entries": len(plan.entries), "root_bytes": plan.size,
            "cached_setup_s": setups["cached set-up + first command"], "bwrap_true_s": setups["bwrap true over /"],
            "busybox_hermetic_s": cooks["busybox, hermetic root"], "busybox_host_s": cooks["busybox, host root"],
            "noop_cook_s": noop["appbuild cook recipes/ --arch all (no-op)"], "version_s": noop["appbuild --version"],
            "goals": {"cached_setup_s": 0.5, "busybox_ratio": 1.1, "noop_cook_s": 1.0},
        })
    finally:
        subprocess.run(["rm", "-rf", str(top)])


if __name__ == "__main__":
    main()
