"""Repository commit of a 50 MB install tree: time, and stored size vs input size.

A realistic install tree of about 50 MB is assembled once in a temporary directory
from real files of this machine (Python's standard library from /usr/lib/python3.11,
programs from /usr/bin, documentation from /usr/share/doc; symlinks are kept as
symlinks). Then, several times, each into a fresh repository:

1. walk + hash: ``appbuilder.policy.files.walk_install_root`` (lstat, sha256 of every file);
2. store: ``ContentStore.put_file`` for every regular file (zstd level 3, sha256 again);
3. sync: ``ContentStore.sync`` (syncfs, the flush that ``commit_package`` starts with;
   timed apart so that the index commit shows what the index itself costs);
4. index commit: ``Repository.commit_package`` (one SQLite transaction).

References, in the same run and interleaved with the commits: ``cp -a`` of the tree,
``cp -a`` followed by ``sync -f`` (the same durability as the commit), and
``tar -c | zstd -3`` to a file. The page cache is flushed (``sync``) before every
timed step so that no step pays for another's writes.

Finally the same tree is committed again into the last repository with one file
changed (several times, a different change each time): time per step, and bytes added
to the store and to the index (deduplication).

    /tmp/v/bin/python bench/commit.py      # BENCH_REPS=N, BENCH_TREE_MB=M
    TMPDIR=/dev/shm /tmp/v/bin/python bench/commit.py   # the same on tmpfs: no disk, CPU only

Everything happens in one temporary directory (under $TMPDIR), removed at the end.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, mb, med, r3, rmtree, table, timed  # noqa: E402

from appbuilder.policy.files import FileRules, walk_install_root  # noqa: E402
from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository  # noqa: E402
from appbuilder.repository.versions import Flavor  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", "7"))
TREE_MB = float(os.environ.get("BENCH_TREE_MB", "50"))
LABEL = "cernvm@cvm:2"
MAX_FILE = 4 << 20  # leave out the few huge programs so that the tree stays a mix
# (source directory, share of the tree)
SOURCES = [("/usr/lib/python3.11", 0.40), ("/usr/bin", 0.40), ("/usr/share/doc", 0.20)]


# ------------------------------------------------------------------ the tree


def build_tree(root: Path, target_bytes: int) -> dict:
    """Copy real files into *root* (mirroring their paths) up to *target_bytes*."""
    counts = {"files": 0, "symlinks": 0, "dirs": 0, "bytes": 0, "by_source": {}}
    for src, share in SOURCES:
        if not os.path.isdir(src):
            continue
        quota = int(target_bytes * share)
        taken = 0
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, "/")
            dest_dir = root / rel
            for name in sorted(filenames):
                if taken >= quota:
                    break
                s = os.path.join(dirpath, name)
                try:
                    st = os.lstat(s)
                except OSError:
                    continue
                d = dest_dir / name
                if stat.S_ISLNK(st.st_mode):
                    dest_dir.mkdir(parents=True, exist_ok=True)
                    os.symlink(os.readlink(s), d)
                    counts["symlinks"] += 1
                elif stat.S_ISREG(st.st_mode) and st.st_size <= MAX_FILE and os.access(s, os.R_OK):
                    dest_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(s, d, follow_symlinks=False)
                    taken += st.st_size
                    counts["files"] += 1
            if taken >= quota:
                break
        counts["by_source"][src] = taken
        counts["bytes"] += taken
    counts["dirs"] = sum(len(dn) for _, dn, _ in os.walk(root))
    return counts


def component_of(path: str) -> str:
    if path.startswith("/usr/share/doc/"):
        return "bench:doc"
    if path.startswith("/usr/lib/python"):
        return "bench:python"
    return "bench:runtime"


# ------------------------------------------------------------------ the commit


def commit_tree(repo: Repository, root: Path, source_hash: str) -> dict:
    """Walk, store, sync and commit *root*; seconds of each step and what was added."""
    out: dict = {}
    os.sync()
    out["walk"], files = timed(lambda: walk_install_root(root, FileRules()))

    def store():
        for f in files:
            if f.entry.type == "file":
                repo.store.put_file(f.host_path, f.entry.sha256)

    written_before = repo.store.written
    os.sync()
    out["store"], _ = timed(store)
    out["written"] = repo.store.written - written_before
    out["sync"], _ = timed(repo.store.sync)

    comps: dict[str, ComponentContents] = {}
    for f in files:
        name = component_of(f.entry.path)
        comps.setdefault(name, ComponentContents(name)).files.append(f.entry)
    build = PackageBuild(name="bench", upstream="1.0", flavor=Flavor("x86_64"), source_hash=source_hash,
                         components=list(comps.values()), info={"bench": "commit"})
    out["commit"], trove = timed(lambda: repo.commit_package(build))
    out["version"] = str(trove.version)
    out["entries"] = len(files)
    out["total"] = out["walk"] + out["store"] + out["sync"] + out["commit"]
    return out


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for n in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


def repo_bytes(repo_dir: Path) -> dict:
    """Sizes of a closed repository (closing checkpoints SQLite's WAL into index.sqlite)."""
    objects = dir_bytes(repo_dir / "objects")
    index = sum(os.path.getsize(p) for p in repo_dir.glob("index.sqlite*"))
    return {"objects": objects, "index": index, "total": objects + index}


def ref_inprocess(root: Path) -> dict[str, float]:
    """What the store step is made of, without files: sha256 and zstd -3 of every file's bytes."""
    import hashlib

    import zstandard

    paths = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]
    out = {}
    os.sync()
    out["read every file (Python)"], blobs = timed(lambda: [p.read_bytes() for p in paths])
    out["sha256 of every file (in memory)"], _ = timed(lambda: [hashlib.sha256(b).digest() for b in blobs])

    def compress():
        for b in blobs:
            zstandard.ZstdCompressor(level=3, write_content_size=True).compress(b)

    out["zstd -3 of every file (python-zstandard, in memory)"], _ = timed(compress)
    return out


# ------------------------------------------------------------------ references


def sh(cmd: str) -> None:
    subprocess.run(["sh", "-c", cmd], check=True)


def ref_cp(root: Path, dest: Path, *, sync: bool) -> float:
    os.sync()
    t, _ = timed(lambda: sh(f"cp -a '{root}' '{dest}'" + (f" && sync -f '{dest}'" if sync else "")))
    rmtree(dest)
    return t


def ref_tar_zstd(root: Path, out: Path) -> tuple[float, int]:
    os.sync()
    t, _ = timed(lambda: sh(f"tar -C '{root}' -cf - . | zstd -3 -q -f -o '{out}'"))
    size = out.stat().st_size
    out.unlink()
    return t, size


# ------------------------------------------------------------------ main


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="appbuild-bench-commit-"))
    try:
        return _main(tmp)
    finally:
        rmtree(tmp)


def _main(tmp: Path) -> int:
    root = tmp / "tree"
    root.mkdir()
    info = build_tree(root, int(TREE_MB * 1e6))
    input_bytes = info["bytes"]

    firsts: list[dict] = []
    refs: dict[str, list[float]] = {"cp -a": [], "cp -a + sync -f": [], "tar -c | zstd -3 > file": []}
    parts: dict[str, list[float]] = {}
    tar_size = 0
    last_repo_dir = None
    for i in range(REPS):
        repo_dir = tmp / f"repo{i}"
        repo = Repository(repo_dir, LABEL)
        res = commit_tree(repo, root, f"source-{i}")
        repo.close()
        firsts.append(res | {"bytes": repo_bytes(repo_dir)})
        for k, v in ref_inprocess(root).items():
            parts.setdefault(k, []).append(v)
        refs["cp -a"].append(ref_cp(root, tmp / "copy", sync=False))
        refs["cp -a + sync -f"].append(ref_cp(root, tmp / "copy", sync=True))
        t, tar_size = ref_tar_zstd(root, tmp / "tree.tar.zst")
        refs["tar -c | zstd -3 > file"].append(t)
        if last_repo_dir is not None:
            rmtree(last_repo_dir)
        last_repo_dir = repo_dir

    # second commits: one file changed each time, into the last repository
    victim = pick_file(root)
    seconds: list[dict] = []
    for i in range(REPS):
        with open(victim, "ab") as f:
            f.write(f"\n# changed for second commit {i}\n".encode())
        before = repo_bytes(last_repo_dir)
        repo = Repository(last_repo_dir, LABEL)
        res = commit_tree(repo, root, f"source-changed-{i}")
        repo.close()
        after = repo_bytes(last_repo_dir)
        res["added"] = {k: after[k] - before[k] for k in after}
        seconds.append(res)

    # ---------------------------------------------------------------- report
    steps = ["walk", "store", "sync", "commit", "total"]
    labels = {
        "walk": "walk_install_root (lstat + sha256)",
        "store": "ContentStore.put_file (zstd -3 + sha256)",
        "sync": "ContentStore.sync (syncfs)",
        "commit": "Repository.commit_package (SQLite)",
        "total": "first commit, all steps",
    }
    total_med = med([r["total"] for r in firsts])
    total_min = min(r["total"] for r in firsts)
    ref_cp_med = med(refs["cp -a"])
    ref_cp_min = min(refs["cp -a"])
    ref_tar_med = med(refs["tar -c | zstd -3 > file"])
    ref_tar_min = min(refs["tar -c | zstd -3 > file"])

    print(f"commit: tree of {info['files']} files, {info['symlinks']} symlinks, {info['dirs']} directories, "
          f"{mb(input_bytes)} MB ({', '.join(f'{k} {mb(v)} MB' for k, v in info['by_source'].items())}); "
          f"{REPS} repetitions, each into a fresh repository; {firsts[0]['entries']} file entries")
    print()
    rows = []
    for s in steps:
        xs = [r[s] for r in firsts]
        rows.append([labels[s], f"{med(xs):.3f}", f"{min(xs):.3f}", f"{input_bytes / med(xs) / 1e6:.0f}",
                     f"{med(xs) / total_med * 100:.0f}%", f"{med(xs) / ref_cp_med:.2f}x", f"{med(xs) / ref_tar_med:.2f}x"])
    for k, xs in refs.items():
        rows.append([f"reference: {k}", f"{med(xs):.3f}", f"{min(xs):.3f}", f"{input_bytes / med(xs) / 1e6:.0f}", "",
                     f"{med(xs) / ref_cp_med:.2f}x", f"{med(xs) / ref_tar_med:.2f}x"])
    for k, xs in parts.items():
        rows.append([f"part of store: {k}", f"{med(xs):.3f}", f"{min(xs):.3f}", f"{input_bytes / med(xs) / 1e6:.0f}",
                     "", f"{med(xs) / ref_cp_med:.2f}x", f"{med(xs) / ref_tar_med:.2f}x"])
    print(table(["step (first commit of the tree)", "median s", "min s", "MB/s", "share",
                 "/ cp -a", "/ tar|zstd"], rows))
    print(f"first commit / cp -a: median {total_med / ref_cp_med:.2f}x, min {total_min / ref_cp_min:.2f}x;  "
          f"first commit / tar|zstd -3: median {total_med / ref_tar_med:.2f}x, min {total_min / ref_tar_min:.2f}x")
    # ratios of each repetition's commit to the references timed right after it: robust to slow drifts
    paired_cp = [r["total"] / c for r, c in zip(firsts, refs["cp -a"])]
    paired_tar = [r["total"] / t for r, t in zip(firsts, refs["tar -c | zstd -3 > file"])]
    print(f"paired per repetition: commit / cp -a median {med(paired_cp):.2f}x (range {min(paired_cp):.2f}-"
          f"{max(paired_cp):.2f}); commit / tar|zstd median {med(paired_tar):.2f}x (range {min(paired_tar):.2f}-"
          f"{max(paired_tar):.2f})")
    print("per repetition, s: store " + " ".join(f"{r['store']:.2f}" for r in firsts)
          + " | cp -a " + " ".join(f"{x:.2f}" for x in refs["cp -a"])
          + " | tar|zstd " + " ".join(f"{x:.2f}" for x in refs["tar -c | zstd -3 > file"]))
    print()

    b = firsts[-1]["bytes"]
    print(table(["stored size (first commit)", "bytes", "MB", "/ input"], [
        ["input (regular file contents)", input_bytes, mb(input_bytes), "1.000"],
        ["content store objects (zstd -3, one per file)", b["objects"], mb(b["objects"]),
         f"{b['objects'] / input_bytes:.3f}"],
        ["index (index.sqlite, WAL checkpointed)", b["index"], mb(b["index"]), f"{b['index'] / input_bytes:.3f}"],
        ["repository total", b["total"], mb(b["total"]), f"{b['total'] / input_bytes:.3f}"],
        ["reference: tar -c | zstd -3 (one stream)", tar_size, mb(tar_size), f"{tar_size / input_bytes:.3f}"],
    ]))
    print()

    rows = []
    for s in steps:
        xs = [r[s] for r in seconds]
        rows.append([labels[s].replace("first commit", "second commit"), f"{med(xs):.3f}", f"{min(xs):.3f}",
                     f"{med(xs) / total_med:.2f}x"])
    print(table([f"second commit, 1 file changed ({victim.stat().st_size} bytes, "
                 f"{victim.relative_to(root)})", "median s", "min s", "/ first commit"], rows))
    added = [r["added"] for r in seconds]
    print(table(["bytes added by the second commit (median over reps)", "bytes"], [
        ["content store objects", int(med([a["objects"] for a in added]))],
        ["index (index.sqlite, WAL checkpointed)", int(med([a["index"] for a in added]))],
        ["repository total", int(med([a["total"] for a in added]))],
        ["compressed bytes written by put_file", int(med([r["written"] for r in seconds]))],
        ["share of the first commit's repository size", f"{med([a['total'] for a in added]) / b['total'] * 100:.2f}%"],
    ]))
    print(f"versions: first commits {firsts[0]['version']} .. ; second commits "
          f"{seconds[0]['version']} .. {seconds[-1]['version']}")
    print()

    emit("commit", {
        "reps": REPS,
        "tree": {"files": info["files"], "symlinks": info["symlinks"], "dirs": info["dirs"],
                 "input_bytes": input_bytes, "by_source": info["by_source"]},
        "first_commit_s": {s: {"median": r3(med([r[s] for r in firsts])), "min": r3(min(r[s] for r in firsts))}
                           for s in steps},
        "reference_s": {k: {"median": r3(med(xs)), "min": r3(min(xs))} for k, xs in refs.items()},
        "inprocess_parts_s": {k: {"median": r3(med(xs)), "min": r3(min(xs))} for k, xs in parts.items()},
        "ratio_commit_vs_cp": {"median": r3(total_med / ref_cp_med), "min": r3(total_min / ref_cp_min)},
        "ratio_commit_vs_tar_zstd": {"median": r3(total_med / ref_tar_med), "min": r3(total_min / ref_tar_min)},
        "paired_ratio_commit_vs_cp": {"median": r3(med(paired_cp)), "min": r3(min(paired_cp)),
                                      "max": r3(max(paired_cp))},
        "paired_ratio_commit_vs_tar_zstd": {"median": r3(med(paired_tar)), "min": r3(min(paired_tar)),
                                            "max": r3(max(paired_tar))},
        "stored_bytes": b,
        "stored_ratio": r3(b["total"] / input_bytes),
        "objects_ratio": r3(b["objects"] / input_bytes),
        "tar_zstd_bytes": tar_size,
        "tar_zstd_ratio": r3(tar_size / input_bytes),
        "second_commit_s": {s: {"median": r3(med([r[s] for r in seconds])), "min": r3(min(r[s] for r in seconds))}
                            for s in steps},
        "second_commit_added_bytes": {k: int(med([a[k] for a in added])) for k in ("objects", "index", "total")},
        "changed_file_bytes": victim.stat().st_size,
    })
    return 0


def pick_file(root: Path) -> Path:
    """A mid-sized Python module of the tree: the one to change for the second commit."""
    candidates = sorted(
        (p for p in root.rglob("*.py") if p.is_file() and not p.is_symlink()),
        key=lambda p: (abs(p.stat().st_size - 50_000), str(p)),
    )
    if not candidates:
        candidates = sorted((p for p in root.rglob("*") if p.is_file() and not p.is_symlink()), key=str)
    return candidates[0]


if __name__ == "__main__":
    sys.exit(main())
