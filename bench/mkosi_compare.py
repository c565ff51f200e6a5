"""Benchmark: one Debian package set built by mkosi and by appbuild, cold and warm, in one run.

    .venv/bin/python bench/mkosi_compare.py [--work DIR] [--skip-mkosi]

mkosi (Debian's package, ``apt-get install mkosi``) builds ``Distribution=debian
Release=bookworm Format=gpt_ext4 Bootable=no Packages=systemd-sysv,linux-image-amd64``
with the mirror taken from this machine's apt sources (``--nspawn-keep-unit``: this
machine has no system bus). Cold is its first run with an empty package cache, warm
the second with the cache filled (``mkosi.cache/``).

The packages mkosi installed (its manifest) then become a group (``group-mkosi-set``:
names every one of them, Debian relations followed, maintainer scripts run, merged
/usr), which appbuild builds as a raw disk in a fresh workspace holding appbuild's busybox
recipe (a Debian system's initramfs runs appbuild's static busybox). Cold is the first
build after busybox was cooked (not timed, as mkosi's own tools are installed: the Debian
packages fetched, imported as capsules, their scripts run, the disk assembled; members
the toolchain already imported are not imported again), warm a forced rebuild of the
same group version (``--force``: the disk is assembled again from the repository). A
build in a second fresh workspace, from nothing (the toolchain imported and busybox
cooked first by the build itself), is reported beside them. Sizes compare mkosi's ``image.raw`` with
appbuild's raw disk, allocated and apparent. Goals (issue 15): cold >= 2x faster, warm
>= 5x, never larger.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import APPBUILD, REPO_ROOT, run, table

from appbuilder.upstream.apt import system_entries

GROUP = "group-mkosi-set"


def debian_mirror() -> str:
    """The first Debian archive URI of this machine's apt sources (never written into the repo)."""
    for entry in system_entries():
        if "bookworm" in entry.suites and "main" in entry.components:
            return entry.uris[0]
    raise SystemExit("no bookworm main entry in this machine's apt sources")


def sizes(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_blocks * 512, st.st_size


def mkosi_build(work: Path, *, fresh_cache: bool) -> tuple[float, Path, list[str]]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "mkosi.default").write_text(
        "[Distribution]\nDistribution=debian\nRelease=bookworm\n"
        f"Mirror={debian_mirror()}\n\n[Output]\nFormat=gpt_ext4\nBootable=no\n\n"
        "[Content]\nPackages=systemd-sysv,linux-image-amd64\n")
    cache = work / "mkosi.cache"
    if fresh_cache:
        shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    run(["mkosi", "--nspawn-keep-unit", "--force", "build"], cwd=work)
    seconds = time.perf_counter() - t0
    manifest = json.loads((work / "image.raw.manifest").read_text())
    return seconds, work / "image.raw", sorted(p["name"] for p in manifest["packages"])


def group_text(packages: list[str]) -> str:
    adds = "\n".join(f"        r.add({p!r})" for p in packages)
    return (
        "class GroupMkosiSet(GroupRecipe):\n"
        "    name = 'group-mkosi-set'\n    version = '12'\n    imageGroup = True\n    hostname = 'debian'\n"
        "    resolveSources = ('debian',)\n    upstreamRelations = True\n    upstreamBase = 'essential'\n"
        "    packageScripts = True\n    mergedUsr = True\n"
        "    kernelModules = ('vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8')\n\n"
        f"    def setup(r):\n{adds}\n")


def appbuild_workspace(work: Path, packages: list[str]) -> dict[str, str]:
    """A fresh workspace holding the group, appbuild's busybox recipe (the initramfs of a
    Debian system runs appbuild's static busybox) and the toolchain group it cooks with."""
    if work.exists():
        shutil.rmtree(work)
    (work / "groups").mkdir(parents=True)
    (work / "repo").mkdir()
    (work / "recipes").mkdir()
    shutil.copy(REPO_ROOT / "repo" / "config.yaml", work / "repo" / "config.yaml")
    shutil.copy(REPO_ROOT / "groups" / "group-toolchain.py", work / "groups")
    shutil.copytree(REPO_ROOT / "recipes" / "busybox", work / "recipes" / "busybox", symlinks=True)
    (work / "groups" / f"{GROUP}.py").write_text(group_text(packages))
    return {**os.environ, "APPBUILD_WORKSPACE": str(work)}


def cook_busybox(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    run([APPBUILD, "cook", "recipes/busybox", "--arch", "x86_64"], env=env)
    return time.perf_counter() - t0


def appbuild_build(env: dict[str, str], *, force: bool) -> tuple[float, Path]:
    t0 = time.perf_counter()
    run([APPBUILD, GROUP, "--format", "raw", "--arch", "x86_64", *(["--force"] if force else [])], env=env)
    seconds = time.perf_counter() - t0
    images = sorted(Path(env["APPBUILD_WORKSPACE"], "images", GROUP).rglob("*.raw"), key=lambda p: p.stat().st_mtime)
    if not images:
        raise SystemExit("appbuild wrote no raw disk")
    return seconds, images[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a new temporary one)")
    ap.add_argument("--skip-mkosi", action="store_true", help="reuse the package list of a previous run in --work")
    ap.add_argument("--skip-from-nothing", action="store_true",
                    help="leave out the build from nothing (toolchain import and busybox cook, several minutes)")
    args = ap.parse_args()
    if not shutil.which("mkosi"):
        raise SystemExit("mkosi is not installed: apt-get install mkosi")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-mkosi-"))
    rows, figures = [], {}

    mk = work / "mkosi"
    if not args.skip_mkosi:
        cold, image, packages = mkosi_build(mk, fresh_cache=True)
        warm, image, _ = mkosi_build(mk, fresh_cache=False)
        figures["mkosi"] = {"cold": cold, "warm": warm, "size": sizes(image), "packages": len(packages)}
        (work / "packages.json").write_text(json.dumps(packages))
    packages = json.loads((work / "packages.json").read_text())

    # from nothing: the first build also imports the toolchain and cooks busybox
    cold_all = None
    if not args.skip_from_nothing:
        env = appbuild_workspace(work / "appbuild-from-nothing", packages)
        cold_all, _ = appbuild_build(env, force=False)
    # busybox cooked first (not timed, like mkosi's own tools being installed): the first
    # build imports, runs the scripts and assembles; the toolchain's capsules are in the
    # repository, so the members they share with the set (libc6, coreutils, ...) are not
    # imported again
    env = appbuild_workspace(work / "appbuild", packages)
    busybox = cook_busybox(env)
    cold, disk = appbuild_build(env, force=False)
    warm, disk = appbuild_build(env, force=True)
    status = run([APPBUILD, "show", GROUP, "--arch", "x86_64"], env=env, check=False).stdout.decode()
    members = sum(1 for line in status.splitlines() if ":deb" in line)
    figures["appbuild"] = {"cold": cold, "warm": warm, "size": sizes(disk), "packages": members,
                           "cold_from_nothing": cold_all, "busybox_cook": busybox}

    for name, f in figures.items():
        rows.append((name, f"{f['cold']:.1f}", f"{f['warm']:.1f}", f"{f['size'][0] / 2**20:.1f}",
                     f"{f['size'][1] / 2**20:.1f}", f["packages"]))
    print(table(("builder", "cold s", "warm s", "allocated MiB", "apparent MiB", "packages"), rows,
                title=f"systemd-sysv + linux-image-amd64, bookworm ({len(packages)} packages in mkosi's set)"))
    if "mkosi" in figures:
        m, a = figures["mkosi"], figures["appbuild"]
    if "mkosi" in figures and cold_all is not None:
        print(f"appbuild from nothing (toolchain imported, busybox cooked, then the build): {a['cold_from_nothing']:.1f} s, "
              f"{m['cold'] / a['cold_from_nothing']:.2f}x mkosi's cold; busybox cook alone {a['busybox_cook']:.1f} s")
    if "mkosi" in figures:
        print(f"cold: appbuild {m['cold'] / a['cold']:.2f}x faster (goal >= 2x); "
              f"warm: {m['warm'] / a['warm']:.2f}x (goal >= 5x); "
              f"allocated size: {a['size'][0] / m['size'][0]:.2f} of mkosi's (goal <= 1)")
    (work / "figures.json").write_text(json.dumps(figures, indent=2))
    print(f"figures: {work / 'figures.json'}")


if __name__ == "__main__":
    main()
