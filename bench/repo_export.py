"""Repository export (``appbuild repo export``): time and size, against copying the objects with ``cp -a``.

For the repository of the workspace (or the one given with ``--repo DIR``), several times,
each into a fresh directory (under $TMPDIR), interleaved:

1. export: ``export_repository`` (signed with a throw-away Ed25519 key): every object the
   index names copied as stored and checked against its name, the index snapshot
   (canonical JSON, zstd -9), the pointer; synced (syncfs) before the pointer;
2. reference: ``cp -a`` of the store's ``objects/`` directory followed by ``sync -f``
   (the same bytes, the same durability, no checking, no index).

Then, into the last exported tree:

3. export again with nothing changed (the incremental case: list the tree, compare);
4. export again after 1% of the tree's objects were deleted (they are written again);
5. a reader: ``open_remote`` over HTTP (a plain static server on 127.0.0.1): the first
   open (pointer, snapshot download, check, index build) and a second one (cached).

    .venv/bin/python bench/repo_export.py [--repo DIR]       # BENCH_REPS=N (default 5)

Ends with one JSON line (see _common.emit).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import random
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, mb, med, r3, rmtree, table, timed  # noqa: E402

from appbuilder.repository.export import export_repository  # noqa: E402
from appbuilder.repository.keys import Signer, generate  # noqa: E402
from appbuilder.repository.remote import open_remote  # noqa: E402
from appbuilder.repository.repo import Repository  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", "5"))


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repo", help="the repository directory (default: the workspace's)")
    args = parser.parse_args()
    if args.repo:
        repo = Repository(Path(args.repo), "cernvm@cvm:2")
    else:
        from appbuilder.core.settings import load_settings

        settings = load_settings()
        repo = Repository(settings.repository, settings.label)
    referenced = repo.referenced_contents()
    if not referenced:
        raise SystemExit(f"the repository {repo.path} is empty: cook something, or give --repo DIR")
    stored = sum(repo.store.path_of(d).stat().st_size for d in referenced)
    work = Path(tempfile.mkdtemp(prefix="bench-repo-export-"))
    try:
        private, _, _ = generate(work / "keys")
        signer = Signer.load(private)
        export_s, cp_s, results = [], [], []
        for i in range(REPS):
            dest = work / f"export-{i}"
            subprocess.run(["sync"], check=True)
            t, result = timed(lambda: export_repository(repo, dest, signer=signer))
            export_s.append(t)
            results.append(result)
            copy = work / f"cp-{i}"
            copy.mkdir()
            subprocess.run(["sync"], check=True)
            t, _ = timed(lambda: (subprocess.run(["cp", "-a", str(repo.store.objects), str(copy / "objects")],
                                                 check=True),
                                  subprocess.run(["sync", "-f", str(copy)], check=True)))
            cp_s.append(t)
            if i < REPS - 1:
                rmtree(dest)
                rmtree(copy)
        last = work / f"export-{REPS - 1}"
        size = tree_bytes(last)
        snapshot_bytes = tree_bytes(last / "snapshots")
        again_s = [timed(lambda: export_repository(repo, last, signer=signer))[0] for _ in range(REPS)]
        objects = sorted(p for p in (last / "objects").glob("*/*.zst"))
        rewrite_s, rewritten = [], []
        for i in range(REPS):
            victims = random.Random(i).sample(objects, max(1, len(objects) // 100))
            for v in victims:
                v.unlink()
            t, result = timed(lambda: export_repository(repo, last, signer=signer))
            rewrite_s.append(t)
            rewritten.append(result.objects_written)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(last)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        open_first, open_again = [], []
        for i in range(REPS):
            cache = work / f"reader-{i}"
            open_first.append(timed(lambda: open_remote(url, cache))[0])
            open_again.append(timed(lambda: open_remote(url, cache))[0])
        httpd.shutdown()
        first = results[0]
        rows = [
            ["export (fresh tree)", f"{med(export_s):.2f}", f"{min(export_s):.2f}"],
            ["cp -a objects + sync", f"{med(cp_s):.2f}", f"{min(cp_s):.2f}"],
            ["export, nothing changed", f"{med(again_s):.3f}", f"{min(again_s):.3f}"],
            [f"export, {rewritten[0]} objects missing", f"{med(rewrite_s):.3f}", f"{min(rewrite_s):.3f}"],
            ["open_remote over HTTP, first", f"{med(open_first):.3f}", f"{min(open_first):.3f}"],
            ["open_remote, cached snapshot", f"{med(open_again):.4f}", f"{min(open_again):.4f}"],
        ]
        print(table(["step", "median s", "min s"], rows,
                    title=f"repository {repo.path}: {first.troves} troves, {len(referenced)} objects, "
                          f"{mb(stored)} MB stored; export tree {mb(size)} MB (snapshot {mb(snapshot_bytes)} MB); "
                          f"{REPS} runs"))
        print(f"export / cp -a: {med(export_s) / med(cp_s):.2f}x (median)")
        emit("repo_export", {
            "repository": str(repo.path), "troves": first.troves, "objects": len(referenced),
            "stored_bytes": stored, "tree_bytes": size, "snapshot_bytes": snapshot_bytes,
            "export_s": {"median": r3(med(export_s)), "min": r3(min(export_s))},
            "cp_a_sync_s": {"median": r3(med(cp_s)), "min": r3(min(cp_s))},
            "ratio_export_vs_cp": r3(med(export_s) / med(cp_s)),
            "export_unchanged_s": {"median": r3(med(again_s)), "min": r3(min(again_s))},
            "export_1pct_missing_s": {"median": r3(med(rewrite_s)), "min": r3(min(rewrite_s)),
                                      "objects": rewritten[0]},
            "open_remote_first_s": {"median": r3(med(open_first)), "min": r3(min(open_first))},
            "open_remote_cached_s": {"median": r3(med(open_again)), "min": r3(min(open_again))},
        })
    finally:
        rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
