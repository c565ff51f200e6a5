"""Benchmark: storage growth of consecutive nightlies where one package changes each night.

A scratch workspace (copies of the project's recipes/, groups/ and repo/config.yaml)
builds group-cernvm for one arch; then, night after night, one package changes (the
contents of base-files' /etc/issue), and the night's ``appbuild group-cernvm`` cooks it,
resolves a new group version and builds its images into the image store. After each
night it measures the bytes (allocated on disk) the repository and the image store grew
by, against the size of that night's image:

* the **repository** stores file contents once (sha256-addressed): a night adds the one
  changed file and some index rows, not another copy of the kernel;
* the **image store** keeps every version's images as whole files: a night adds a full
  image. How much of that a deduplicating image store would save is estimated by
  cutting every night's images into fixed 64 KiB chunks and counting the chunks no
  earlier night had (what a chunk store such as casync/desync or borg would add).

    /tmp/v/bin/python bench/nightly_growth.py [--nights 10] [--formats qcow2,raw] [--from-repo DIR]

``--from-repo`` starts from a copy of an existing repository that already holds the
upstream kernels and cooked packages (e.g. an appliance test's ``repo``); without it
the first night imports upstream packages (the Debian archive) and cooks everything.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from _common import (  # first: puts the project on sys.path
    APPBUILD,
    REPO_ROOT,
    emit,
    r3,
    run,
    table,
)

CHUNK = 64 << 10
ISSUE = "CernVM appliance (built by appbuild)"


def allocated(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def chunks(path: Path) -> set[bytes]:
    """sha256 digests of the file's 64 KiB chunks, all-zero chunks left out (holes)."""
    zero = bytes(CHUNK)
    out = set()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            if block != zero[:len(block)]:
                out.add(hashlib.sha256(block).digest())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--formats", default="qcow2,raw")
    ap.add_argument("--arch", default="x86_64")
    ap.add_argument("--from-repo", help="start from a copy of this repository")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-growth-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    ws = tmp / "workspace"
    (ws / "repo").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "repo" / "config.yaml", ws / "repo" / "config.yaml")
    for d in ("groups", "recipes"):
        shutil.copytree(REPO_ROOT / d, ws / d)
    repo, store = tmp / "data", tmp / "images"
    if args.from_repo:
        run(["cp", "-a", "--reflink=auto", args.from_repo, str(repo)])
    env = {**os.environ, "APPBUILD_WORKSPACE": str(ws), "APPBUILD_REPOSITORY": str(repo),
           "APPBUILD_CACHE": os.environ.get("APPBUILD_CACHE", str(tmp / "cache")), "APPBUILD_LOGS": str(tmp / "logs"),
           "APPBUILD_IMAGES": str(store)}
    recipe = ws / "recipes" / "base-files" / "recipe.py"
    text = recipe.read_text()
    if ISSUE not in text:
        raise SystemExit(f"{recipe} no longer holds {ISSUE!r}; update this benchmark")

    def build(night: int) -> tuple[str, float]:
        t = time.perf_counter()
        out = run([APPBUILD, "group-cernvm", "--arch", args.arch, "--format", args.formats], env=env).stdout.decode()
        version = re.search(r"^group-cernvm=\S+/(\S+)\[is: ", out, re.M).group(1)
        return version, time.perf_counter() - t

    try:
        if not args.from_repo:
            print("night 0: importing upstream packages and cooking everything (takes a while)", flush=True)
            run([APPBUILD, "import", "upstream"], env=env)
        version, seconds = build(0)
        seen: dict[str, set[bytes]] = {}
        rows, nights = [], []
        prev_repo, prev_store = allocated(repo), allocated(store)

        def measure(night: int, version: str, seconds: float) -> None:
            nonlocal prev_repo, prev_store
            directory = store / "group-cernvm" / version / args.arch
            image_bytes = {p.suffix.lstrip("."): p.stat().st_size for p in directory.iterdir()
                           if p.suffix in (".qcow2", ".raw", ".vmdk", ".vhd", ".ova")}
            image_alloc = {p.suffix.lstrip("."): p.stat().st_blocks * 512 for p in directory.iterdir()
                           if p.suffix in (".qcow2", ".raw", ".vmdk", ".vhd", ".ova")}
            new_chunks = {}
            for p in directory.iterdir():
                kind = p.suffix.lstrip(".")
                if kind in image_bytes:
                    c = chunks(p)
                    new_chunks[kind] = len(c - seen.get(kind, set())) * CHUNK
                    seen.setdefault(kind, set()).update(c)
            r, s = allocated(repo), allocated(store)
            figures = {"night": night, "version": version, "seconds": seconds, "repo_added": r - prev_repo,
                       "store_added": s - prev_store, "images": image_bytes, "images_allocated": image_alloc,
                       "chunk_store_added": new_chunks, "repo_total": r, "store_total": s}
            nights.append(figures)
            prev_repo, prev_store = r, s
            rows.append([night, version, f"{seconds:.1f}", f"{figures['repo_added'] / 1e3:.1f}",
                         f"{figures['store_added'] / 1e6:.2f}",
                         ", ".join(f"{k} {image_alloc[k] / 1e6:.1f}" for k in sorted(image_alloc)),
                         ", ".join(f"{k} {v / 1e6:.2f}" for k, v in sorted(new_chunks.items()))])

        measure(0, version, seconds)
        for night in range(1, args.nights + 1):
            recipe.write_text(text.replace(ISSUE, f"CernVM appliance (nightly {night})"))
            version, seconds = build(night)
            measure(night, version, seconds)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    later = nights[1:]
    avg = lambda key: sum(n[key] for n in later) / len(later)  # noqa: E731
    qcow2 = [n["images_allocated"].get("qcow2", 0) for n in later]
    print(table(["night", "version", "s", "repo +KB", "store +MB", "image MB (allocated)", "chunk store +MB"], rows,
                title=f"{args.nights} nightlies of group-cernvm ({args.arch}, {args.formats}), one package changed "
                      f"each night"))
    print(f"per night: repository +{avg('repo_added') / 1e3:.1f} KB, image store +{avg('store_added') / 1e6:.2f} MB "
          f"for images of {sum(qcow2) / len(qcow2) / 1e6:.1f} MB (qcow2, allocated); a 64 KiB chunk store would add "
          + ", ".join(f"{k} {sum(n['chunk_store_added'].get(k, 0) for n in later) / len(later) / 1e6:.2f} MB"
                      for k in sorted(later[0]["chunk_store_added"])))
    emit("nightly_growth", {
        "nights": args.nights, "arch": args.arch, "formats": args.formats,
        "repo_added_per_night_bytes": r3(avg("repo_added")), "store_added_per_night_bytes": r3(avg("store_added")),
        "qcow2_allocated_bytes": r3(sum(qcow2) / len(qcow2)) if qcow2 else None,
        "chunk_store_added_per_night_bytes": {k: r3(sum(n["chunk_store_added"].get(k, 0) for n in later) / len(later))
                                              for k in sorted(later[0]["chunk_store_added"])},
        "per_night": nights,
    })


if __name__ == "__main__":
    main()
