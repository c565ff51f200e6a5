"""Reading through cvmfs2 (the appliance's repository client) against the references.

* **cold**: the first read of a 50 MB file through a fresh mount with an empty cache:
  the open downloads the object, checks its SHA-256, inflates it into the cache, and
  the read returns it through FUSE. Reference, from the same server in the same run:
  ``curl -o /dev/null`` of the same (compressed) object.
* **warm**: the same file read again from the cache, after the kernel's page cache of
  the mounted file is dropped (so every byte goes through cvmfs2). Reference: reading
  the cache's own copy of the file directly (the same bytes, same disk, no FUSE).

The file is random data (incompressible, like most physics data files) by default;
``BENCH_DATA=text`` uses text that zlib compresses about 3:1. The server is Python's
ThreadingHTTPServer on 127.0.0.1 serving the published tree.

The client is the real one: recipes/cvmfs-client cooked by ``appbuild cook`` into a
temporary repository (the Debian capsules it links are imported there first; the
lookaside cache of the workspace keeps the downloads), run from its materialized
runtime closure. Needs root and /dev/fuse (it mounts).

    sudo /tmp/v/bin/python bench/fs_read.py      # BENCH_REPS=N, BENCH_MB=N
"""

from __future__ import annotations

import http.server
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import APPBUILD, REPO_ROOT, emit, interleave, med, r3, run, stats, table  # noqa: E402

from appbuilder.fs import keys  # noqa: E402
from appbuilder.fs.publish import publish  # noqa: E402

REPO = "bench.example.org"
REPS = int(os.environ.get("BENCH_REPS", "5"))
SIZE = int(os.environ.get("BENCH_MB", "50")) << 20
DATA = os.environ.get("BENCH_DATA", "random")
LIBRARIES = ["libc6", "libfuse3-3", "libfuse3-dev", "libsqlite3-0", "libsqlite3-dev", "libssl3", "libssl-dev",
             "zlib1g", "zlib1g-dev"]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def build_client(tmp: Path) -> list[str]:
    """argv prefix running the cooked cvmfs2 through its own closure's loader."""
    env = {**os.environ, "APPBUILD_WORKSPACE": str(REPO_ROOT), "APPBUILD_REPOSITORY": str(tmp / "repo"),
           "APPBUILD_LOGS": str(tmp / "logs")}
    run([APPBUILD, "import", "deb", *LIBRARIES], env=env)
    run([APPBUILD, "cook", "recipes/cvmfs-client", "--arch", "x86_64"], env=env, cwd=REPO_ROOT)
    from appbuilder.graph.closure import ClosureResolver
    from appbuilder.repository.checkout import materialize
    from appbuilder.repository.repo import Repository
    from appbuilder.repository.versions import TroveSpec

    repo = Repository(tmp / "repo", "cernvm@cvm:2")
    nvf = repo.find_one(TroveSpec("cvmfs-client:runtime"), arch="x86_64")
    closure = ClosureResolver(repo, "x86_64").resolve([nvf])
    root = tmp / "client"
    materialize(repo.store, [repo.get(n) for n in closure.members], root)
    repo.close()
    libs = f"{root}/lib/x86_64-linux-gnu:{root}/usr/lib/x86_64-linux-gnu"
    return [str(root / "lib64/ld-linux-x86-64.so.2"), "--library-path", libs, str(root / "usr/bin/cvmfs2")]


def content() -> bytes:
    if DATA == "text":
        rng = random.Random(7)
        words = [f"{w}{rng.randrange(1000)}".encode() for w in "event track vertex jet muon energy".split()
                 for _ in range(50)]
        chunk = b" ".join(rng.choice(words) for _ in range(200_000))
        return (chunk * (SIZE // len(chunk) + 1))[:SIZE]
    return os.urandom(SIZE)


class Mount:
    def __init__(self, client: list[str], config: Path, mountpoint: Path):
        self.mountpoint = mountpoint
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([*client, "-f", "-c", str(config), REPO, str(mountpoint)],
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"cvmfs2 did not mount: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.01)

    def close(self) -> None:
        subprocess.run(["umount", str(self.mountpoint)], check=True)
        self.proc.wait(timeout=30)


def read_all(path: Path) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            n += len(chunk)
    return n


def drop_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def main() -> None:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        raise SystemExit("fs_read mounts with FUSE: run it as root on a machine with /dev/fuse")
    with tempfile.TemporaryDirectory(prefix="bench-fs-read-") as tmp:
        tmp = Path(tmp)
        client = build_client(tmp)
        pair = keys.generate(REPO, tmp / "keys")
        src = tmp / "src"
        src.mkdir()
        (src / "data.bin").write_bytes(content())
        out = tmp / "www"
        publish(src, REPO, out, pair.private_path)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(out)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        from appbuilder.fs.catalog import Catalog
        from appbuilder.fs.manifest import MANIFEST_NAME, parse
        from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectStore

        store = ObjectStore(out / REPO)
        digest = Catalog(store.get(parse((store.root / MANIFEST_NAME).read_bytes()).manifest.catalog,
                                   CATALOG_SUFFIX)).lookup("/data.bin").hash
        object_url = f"{url}/{REPO}/data/{digest[:2]}/{digest[2:]}"
        object_bytes = store.path(digest).stat().st_size

        config = tmp / "cfg"
        (config / "config.d").mkdir(parents=True)
        (config / "keys").mkdir()
        (config / "keys" / f"{REPO}.pub").write_bytes(pair.public_path.read_bytes())
        (config / "config.d" / f"{REPO}.conf").write_text(f"CVMFS_SERVER_URL={url}/@fqrn@\n")
        counter = iter(range(10_000))

        def cold() -> None:
            n = next(counter)
            (config / "default.conf").write_text(
                f"CVMFS_CACHE_BASE={tmp}/cache{n}\nCVMFS_QUOTA_LIMIT=4000\nCVMFS_KEYS_DIR={config}/keys\n")
            m = Mount(client, config, tmp / f"mnt{n}")
            try:
                t0 = time.perf_counter()
                assert read_all(m.mountpoint / "data.bin") == SIZE
                cold_times.append(time.perf_counter() - t0)
            finally:
                m.close()
                run(["rm", "-rf", f"{tmp}/cache{n}"])

        def curl() -> None:
            t0 = time.perf_counter()
            run(["curl", "-sf", "-o", "/dev/null", object_url])
            curl_times.append(time.perf_counter() - t0)

        cold_times: list[float] = []
        curl_times: list[float] = []
        # the wrappers time only the read and the download (not mounting); the first round warms up
        interleave({"cold": cold, "curl": curl}, REPS, warmup=1)
        cold_times, curl_times = cold_times[1:], curl_times[1:]

        (config / "default.conf").write_text(
            f"CVMFS_CACHE_BASE={tmp}/warm\nCVMFS_QUOTA_LIMIT=4000\nCVMFS_KEYS_DIR={config}/keys\n")
        m = Mount(client, config, tmp / "mnt-warm")
        try:
            read_all(m.mountpoint / "data.bin")
            cached = tmp / "warm" / REPO / "data" / digest[:2] / digest[2:]

            def warm() -> None:
                drop_page_cache(m.mountpoint / "data.bin")
                read_all(m.mountpoint / "data.bin")

            times = interleave({"warm": warm, "local": lambda: read_all(cached)}, REPS * 2)
        finally:
            m.close()
            httpd.shutdown()

    mib = SIZE / (1 << 20)
    c, r, w, loc = med(cold_times), med(curl_times), med(times["warm"]), med(times["local"])
    rows = [
        ("cold read through cvmfs2", f"{c:.3f}", f"{mib / c:.0f}", f"{c / r:.2f}x curl"),
        ("reference: curl of the object", f"{r:.3f}", f"{object_bytes / (1 << 20) / r:.0f}", ""),
        ("warm read through cvmfs2", f"{w:.3f}", f"{mib / w:.0f}", f"{w / loc:.2f}x local"),
        ("reference: the cached file read directly", f"{loc:.3f}", f"{mib / loc:.0f}", ""),
    ]
    print(table(("read", "seconds (median)", "MiB/s", "ratio"), rows,
                title=f"cvmfs2: a {mib:.0f} MiB file ({DATA}; object {object_bytes / (1 << 20):.1f} MiB), "
                      f"{REPS} cold / {REPS * 2} warm repetitions"))
    emit("fs_read", {"file_bytes": SIZE, "object_bytes": object_bytes, "data": DATA,
                     "cold": stats(cold_times), "curl": stats(curl_times), "cold_vs_curl": r3(c / r),
                     "warm": stats(times["warm"]), "local": stats(times["local"]), "warm_vs_local": r3(w / loc)})


if __name__ == "__main__":
    main()
