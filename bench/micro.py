"""The network-booting appliance (microCernVM's idea) against the classic full image, in one run.

    APPBUILD_WORKSPACE=WS .venv/bin/python bench/micro.py [--rounds 3] [--arch x86_64] [--package busybox]

With the workspace's repository (its newest group-cernvm), in a temporary directory:

1. **Size per format**: ``appbuild group-cernvm --boot network --format all`` against the
   classic ``--format all`` of the same version: the bytes of each format's files (a sparse
   raw disk: the bytes it holds); the goal: the network qcow2 at most 12 MiB, below
   microCernVM's 10-20 MB.
2. **First boot's download**: the OS published (``appbuild fs publish-group``) and served on
   127.0.0.1; a fresh copy of the network qcow2 boots to its marker; the bytes the server sent
   against the OS tree (its files' sizes, and its published, compressed objects). Goal: 30 %.
3. **Boot time**: seconds from QEMU's start to the marker, network image (first boot: empty
   cache; and warm: a later boot) against the classic qcow2, interleaved, ``--rounds`` each;
   the ratio of the medians (goal: 1.5x).
4. **An update where one package changed**: the OS with every file of ``--package`` changed
   (a rebuilt package) published as a new tag; an appliance that has run its version once
   (a whole boot: services, ``appliance status``) runs ``appliance update`` and reboots into
   it: the bytes it fetched against the bytes of that package's new objects plus the
   catalog, manifest and tag list (the goal: no more than that).

Needs qemu-system-x86 (TCG), mtools/syslinux as image builds do; no root.
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import APPBUILD, emit, med, r3, run, table  # noqa: E402

from appbuilder.verify.boot import BootOptions, qemu_argv  # noqa: E402

MIB = 1 << 20
SERVER = "10.0.2.100"


class _Counting(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if path.is_file():
            with self.server.lock:
                self.server.sent += path.stat().st_size
                self.server.paths.append(self.path)
        super().do_GET()


class Server:
    """A static server on 127.0.0.1 counting the bytes of the files it sends."""

    def __init__(self, directory: Path):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Counting, directory=str(directory)))
        self.httpd.sent, self.httpd.paths, self.httpd.lock = 0, [], threading.Lock()
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def take(self) -> int:
        with self.httpd.lock:
            sent, self.httpd.sent = self.httpd.sent, 0
            return sent

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def boot(image: Path, arch: str, *, port: int | None, snapshot: bool, iso: Path | None = None,
         until_exit: bool = False, timeout: float = 300) -> tuple[float, str]:
    """Seconds from QEMU's start to the marker, and the console (until the guest powers off
    with *until_exit*)."""
    opts = BootOptions(arch=arch, drive_format="qcow2", snapshot=snapshot, timeout=timeout,
                       guestfwd=[(SERVER, 80, port)] if port else [],
                       extra_args=["-cdrom", str(iso)] if iso else [])
    start = time.monotonic()
    proc = subprocess.Popen(qemu_argv(image, opts), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    console, marker = b"", None
    try:
        while time.monotonic() - start < timeout:
            chunk = proc.stdout.read1(65536) if proc.poll() is None else proc.stdout.read()
            if chunk:
                console += chunk
            if marker is None and b"APPLIANCE-BOOT-OK" in console:
                marker = time.monotonic() - start
                if not until_exit:
                    break
            if not chunk and proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()
    text = console.decode(errors="replace")
    if marker is None:
        raise SystemExit(f"no boot marker from {image.name}; the console ends with:\n{text[-3000:]}")
    return marker, text


def by_format(out: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for m in re.finditer(r"^  (\S+)\s+(\S+)  \(", out, re.M):
        found.setdefault(m.group(1), []).append(m.group(2))
    return found


def context_iso(work: Path, step: str, env: dict) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "step.sh").write_text("#!/bin/sh\n" + step + "\n")
    (work / "user-data").write_text("[cernvm]\ncontextualization_command = root:/media/context/step.sh\n")
    iso = work / "context.iso"
    run([APPBUILD, "context", "make", str(work / "user-data"), "-o", str(iso), "--add", str(work / "step.sh")],
        env=env)
    return iso


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", default="x86_64")
    ap.add_argument("--package", default="busybox", help="the package an update changes (default busybox)")
    args = ap.parse_args()
    arch, repo_name = args.arch, f"group-cernvm.{args.arch}"
    work = Path(tempfile.mkdtemp(prefix="bench-micro-"))
    env = {**os.environ, "APPBUILD_OS_KEYS": str(work / "keys")}
    try:
        run([APPBUILD, "fs", "keygen", "--repo", repo_name, "-o", str(work / "keys")], env=env)
        www = work / "www"
        common = ["--arch", arch, "--no-cook", "--force"]
        classic = run([APPBUILD, "group-cernvm", "--format", "all", "--output", str(work / "classic"), *common],
                      env=env).stdout.decode()
        network = run([APPBUILD, "group-cernvm", "--format", "all", "--boot", "network", "--os-server",
                       f"http://{SERVER}/@fqrn@", "--output", str(work / "network"), *common],
                      env=env).stdout.decode()
        version = re.search(r"group-cernvm=\S+/(\S+)\[is: ", network).group(1)
        published = run([APPBUILD, "fs", "publish-group", f"group-cernvm={version}", "--arch", arch, "--to",
                         str(www), "--key", str(work / "keys" / f"{repo_name}.key")], env=env).stdout.decode()

        # 1. sizes per format
        classic_files, network_files = by_format(classic), by_format(network)
        rows, size_figures = [], {}
        def size(path: Path) -> int:  # a sparse raw disk: the bytes it holds
            return min(path.stat().st_size, path.stat().st_blocks * 512)

        for fmt in sorted(network_files):
            n = sum(size(work / "network" / f) for f in network_files[fmt])
            c = sum(size(work / "classic" / f) for f in classic_files.get(fmt, []))
            rows.append([fmt, f"{n / MIB:.1f}", f"{c / MIB:.1f}" if c else "-", f"{n / c:.2f}x" if c else "-"])
            size_figures[fmt] = {"network_bytes": n, "classic_bytes": c}
        print(table(["format", "network MiB", "classic MiB", "ratio"], rows, title=f"image size ({version}, {arch})"))
        qcow2 = work / "network" / network_files["qcow2"][0]
        full_qcow2 = work / "classic" / classic_files["qcow2"][0]

        # 2. the first boot's download against the OS tree
        from appbuilder.fs.catalog import Catalog
        from appbuilder.fs.manifest import MANIFEST_NAME, parse
        from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectStore

        repo_dir = www / repo_name
        store = ObjectStore(repo_dir)
        manifest = parse((repo_dir / MANIFEST_NAME).read_bytes()).manifest
        catalog = Catalog(store.get(manifest.catalog, CATALOG_SUFFIX))
        entries = catalog.walk()
        tree_bytes = sum(e.size for e in entries.values() if e.is_file)
        published_bytes = sum(store.path(h).stat().st_size for h in {e.hash for e in entries.values() if e.hash})
        catalog.close()
        server = Server(www)
        disk = work / "disk.qcow2"
        shutil.copy(qcow2, disk)
        first_boot, _ = boot(disk, arch, port=server.port, snapshot=False)
        time.sleep(3)  # what the boot reads after the marker (services) is part of it too
        fetched = server.take()
        print(table(["", "MB"], [["OS tree (files)", f"{tree_bytes / 1e6:.2f}"],
                                 ["OS tree (published objects)", f"{published_bytes / 1e6:.2f}"],
                                 ["fetched by the first boot", f"{fetched / 1e6:.2f}"]],
                    title=f"first boot: {100 * fetched / tree_bytes:.1f} % of the tree's files, "
                          f"{100 * fetched / published_bytes:.1f} % of its published objects"))

        # 3. boot to the marker: network (first and warm) against the classic image, interleaved
        times: dict[str, list[float]] = {"network (first boot)": [], "network (warm cache)": [], "classic": []}
        for _ in range(args.rounds):
            fresh = work / "fresh.qcow2"
            shutil.copy(qcow2, fresh)
            times["network (first boot)"].append(boot(fresh, arch, port=server.port, snapshot=False)[0])
            times["network (warm cache)"].append(boot(disk, arch, port=server.port, snapshot=True)[0])
            times["classic"].append(boot(full_qcow2, arch, port=None, snapshot=True)[0])
        reference = med(times["classic"])
        print(table(["image", "median s", "min s", "vs classic"],
                    [[k, f"{med(v):.2f}", f"{min(v):.2f}", f"{med(v) / reference:.2f}x"] for k, v in times.items()],
                    title=f"boot to the marker ({args.rounds} rounds, TCG)"))
        server.take()

        # 4. an update where one package changed: first a whole boot of the running version (its
        # services, the appliance tool), so the cache holds what the appliance reads anyway
        iso = context_iso(work / "ctx-warm", "appliance status > /dev/console 2>&1\n(sleep 1; poweroff) &", env)
        boot(disk, arch, port=server.port, snapshot=False, iso=iso, until_exit=True)
        server.take()
        changed_tag, package_bytes, written = publish_changed(www, repo_name, version, arch, args.package, work)
        iso = context_iso(work / "ctx-update", f"appliance update {changed_tag} > /dev/console 2>&1\n"
                                               "(sleep 2; reboot) &", env)
        boot(disk, arch, port=server.port, snapshot=False, iso=iso, until_exit=True)
        _, console = boot(disk, arch, port=server.port, snapshot=False)
        time.sleep(3)
        update_fetched = server.take()
        if f"running group-cernvm {changed_tag} " not in console:
            raise SystemExit(f"the boot after 'appliance update {changed_tag}' did not run it:\n{console[-3000:]}")
        server.stop()
        print(table(["", "bytes"], [[f"new objects of {args.package} + catalog, manifest, tag list", written],
                                    [f"of which {args.package}'s objects", package_bytes],
                                    ["fetched by the update and the boot into it", update_fetched]],
                    title=f"update: {args.package} changed ({changed_tag})"))
        emit("micro", {
            "version": version, "arch": arch, "sizes": size_figures,
            "first_boot": {"fetched": fetched, "tree_bytes": tree_bytes, "published_bytes": published_bytes,
                           "ratio_tree": r3(fetched / tree_bytes), "ratio_published": r3(fetched / published_bytes)},
            "boot_seconds": {k: {"median": r3(med(v)), "min": r3(min(v))} for k, v in times.items()},
            "boot_ratio": {k: r3(med(v) / reference) for k, v in times.items()},
            "update": {"package": args.package, "tag": changed_tag, "published_bytes": written,
                       "package_object_bytes": package_bytes, "fetched": update_fetched},
            "publish_output": published.strip().splitlines()[-1],
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def publish_changed(www: Path, repo_name: str, version: str, arch: str, package: str, work: Path):
    """Publish *version*'s OS with every regular file of *package* changed (as a rebuild of it
    would): (tag, bytes of that package's new objects, bytes the publish wrote)."""
    from appbuilder.assemble.image import stage_image
    from appbuilder.core.settings import load_settings
    from appbuilder.cli.common import open_repo
    from appbuilder.fs.catalog import Catalog
    from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectStore
    from appbuilder.fs.publish import publish
    from appbuilder.graph.groups import find_group, staged_troves
    from appbuilder.store.build import device_modules

    settings = load_settings()
    repo = open_repo(settings)
    group = repo.get(find_group(repo, "group-cernvm", arch, version), with_files=False)
    troves = staged_troves(repo, group)
    image = stage_image(repo, group, troves, {"group": "group-cernvm", "source_date_epoch":
                        settings.get("source_date_epoch")}, work / "stage", devices=device_modules(settings, arch),
                        boot="network")
    paths = [f.path for t in troves if t.name.split(":")[0] == package for f in t.files if f.type == "file"]
    if not paths:
        raise SystemExit(f"the group has no package {package} with files")
    data = www / repo_name / "data"
    before = {p for p in data.rglob("*") if p.is_file()}
    for path in paths:
        host = image.staged.directory / path.lstrip("/")
        with open(host, "ab") as f:
            f.write(b"\n")  # a rebuilt package: every file different (ELF files ignore trailing bytes)
    tag = f"{version}.changed"
    report = publish(image.staged.directory, repo_name, www, work / "keys" / f"{repo_name}.key",
                     metadata=image.staged.entries, tag=tag)
    store = ObjectStore(www / repo_name)
    catalog = Catalog(store.get(report.catalog, CATALOG_SUFFIX))
    entries = catalog.walk()
    catalog.close()
    new = {store.path(entries[p].hash) for p in paths if p in entries} - before
    package_bytes = sum(p.stat().st_size for p in new)
    return tag, package_bytes, report.bytes_written


if __name__ == "__main__":
    sys.exit(main())
