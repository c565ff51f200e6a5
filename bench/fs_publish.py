"""Publishing a 10,000-file tree with ``appbuild fs publish``, and republishing it.

A temporary tree of 10,000 files (100 directories; sizes from 256 B to 64 KiB, about
80 MB; text-like content that zlib compresses about 2:1) is published four times
into one repository, each timed:

* **first**: every file compressed, hashed and written as an object (a new repository);
* **unchanged**: nothing changed; files are recognised by path, size and mtime, and
  only a new catalog and manifest are written;
* **one file changed**: one file rewritten; the bytes written (what a web server or
  CDN receives) are the one new object, the new catalog and the manifest;
* **rehash**: every file read and hashed again (``--rehash``), no new object.

The reference, in the same run: ``tar -czf`` of the same tree (one archive of it,
the classic way to ship a release) and the bare cost of zlib + SHA-256 over every
file in one Python thread.

    /tmp/v/bin/python bench/fs_publish.py        # BENCH_FILES=N for another tree size
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, mb, r3, rmtree, run, table, timed  # noqa: E402

from appbuilder.fs import keys  # noqa: E402
from appbuilder.fs.publish import publish  # noqa: E402

N_FILES = int(os.environ.get("BENCH_FILES", "10000"))
N_DIRS = 100
REPO = "bench.example.org"
WORDS = ("event track vertex jet muon electron photon calibration geometry alignment trigger "
         "detector cluster energy momentum analysis release setup library module").split()


def make_tree(root: Path) -> int:
    rng = random.Random(1)
    total = 0
    for i in range(N_FILES):
        path = root / f"pkg{i % N_DIRS:03d}" / f"sub{(i // N_DIRS) % 10}" / f"file{i:05d}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = int(256 * (2 ** rng.uniform(0, 8)))
        words = []
        length = 0
        while length < size:  # text-like: compresses about 2:1
            w = rng.choice(WORDS) + str(rng.randrange(100000))
            words.append(w)
            length += len(w) + 1
        data = " ".join(words).encode()[:size]
        path.write_bytes(data)
        total += len(data)
    return total


def raw_work(root: Path) -> None:
    for path in sorted(root.rglob("*.dat")):
        hashlib.sha256(zlib.compress(path.read_bytes(), 6)).hexdigest()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fs-publish-") as tmp:
        tmp = Path(tmp)
        tree = tmp / "tree"
        total = make_tree(tree)
        pair = keys.generate(REPO, tmp / "keys")
        out = tmp / "www"
        rows, figures = [], {"files": N_FILES, "tree_bytes": total}

        seconds, first = timed(lambda: publish(tree, REPO, out, pair.private_path))
        rows.append(("first publish", f"{seconds:.2f}", first.objects_written, mb(first.bytes_written)))
        figures["first"] = {"seconds": r3(seconds), "objects_written": first.objects_written,
                            "bytes_written": first.bytes_written}

        seconds, same = timed(lambda: publish(tree, REPO, out, pair.private_path))
        rows.append(("republish, unchanged", f"{seconds:.2f}", same.objects_written, mb(same.bytes_written)))
        figures["unchanged"] = {"seconds": r3(seconds), "objects_written": same.objects_written,
                                "bytes_written": same.bytes_written}

        victim = tree / "pkg042" / "sub3" / "file00342.dat"
        victim.write_bytes(victim.read_bytes()[::-1] + b" changed")
        seconds, one = timed(lambda: publish(tree, REPO, out, pair.private_path))
        rows.append(("republish, one file changed", f"{seconds:.2f}", one.objects_written, mb(one.bytes_written)))
        figures["one_changed"] = {"seconds": r3(seconds), "objects_written": one.objects_written,
                                  "bytes_written": one.bytes_written}

        seconds, again = timed(lambda: publish(tree, REPO, out, pair.private_path, rehash=True))
        rows.append(("republish, --rehash", f"{seconds:.2f}", again.objects_written, mb(again.bytes_written)))
        figures["rehash"] = {"seconds": r3(seconds), "objects_written": again.objects_written,
                             "bytes_written": again.bytes_written}

        tar_seconds, _ = timed(lambda: run(["tar", "-czf", str(tmp / "tree.tar.gz"), "-C", str(tree), "."]))
        tar_bytes = (tmp / "tree.tar.gz").stat().st_size
        rows.append(("reference: tar -czf of the tree", f"{tar_seconds:.2f}", "", mb(tar_bytes)))
        raw_seconds, _ = timed(lambda: raw_work(tree))
        rows.append(("reference: zlib + sha256, one thread", f"{raw_seconds:.2f}", "", ""))
        figures["tar_czf"] = {"seconds": r3(tar_seconds), "bytes": tar_bytes}
        figures["zlib_sha256_one_thread_seconds"] = r3(raw_seconds)
        figures["first_vs_tar"] = r3(figures["first"]["seconds"] / tar_seconds)
        figures["catalog_bytes"] = (out / REPO / "data" / one.catalog[:2] / (one.catalog[2:] + "C")).stat().st_size

        print(table(("step", "seconds", "objects written", "MB written"), rows,
                    title=f"appbuild fs publish: {N_FILES} files, {mb(total)} MB, {os.cpu_count()} CPUs"))
        print(f"catalog object: {figures['catalog_bytes']} bytes; one changed file republished = "
              f"{one.bytes_written} bytes written ({one.objects_written} object + catalog + tag list + manifest)")
        emit("fs_publish", figures)
        rmtree(out)


if __name__ == "__main__":
    main()
