"""Fixtures of the file system tests: keys, published trees, and the real cvmfs2 client.

The client is cooked by the real ``appbuild cook`` (recipes/cvmfs-client) into the
session appliance's repository, and its runtime closure (the cooked package and the
Debian capsules its sonames resolve to: libc6, libfuse3-3, libsqlite3-0, libsodium23,
zlib1g) is materialized into a directory; cvmfs2 runs from there through that
closure's own dynamic loader, so the tests exercise exactly the bytes the image holds.
Mounting needs root and /dev/fuse: those tests are skipped without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appbuilder.fs import keys
from tests.conftest import run_appbuild
from tests.servers import StaticServer

REPO = "sw.example.org"


@pytest.fixture
def keypair(tmp_path):
    return keys.generate(REPO, tmp_path / "keys")


def make_tree(root: Path, files: dict[str, bytes | str], links: dict[str, str] = ()) -> Path:
    """A directory tree: *files* (path -> content) and *links* (path -> target)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    for rel, target in dict(links).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    return root


@dataclass
class ClientRoot:
    """cvmfs2 and its runtime closure, materialized from the repository."""

    root: Path
    members: list[str]

    def argv(self, *args: str) -> list[str]:
        libs = ":".join(str(self.root / d) for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"))
        return [str(self.root / "lib64/ld-linux-x86-64.so.2"), "--library-path", libs,
                str(self.root / "usr/bin/cvmfs2"), *args]


@pytest.fixture(scope="session")
def cvmfs_client(appliance, tmp_path_factory) -> ClientRoot:
    """cvmfs-client cooked by 'appbuild cook' and its runtime closure materialized (x86_64)."""
    from appbuilder.graph.closure import ClosureResolver
    from appbuilder.repository.checkout import materialize
    from appbuilder.repository.repo import Repository
    from appbuilder.repository.versions import TroveSpec

    s = appliance.settings
    run_appbuild(s, "cook", "recipes/cvmfs-client", "--arch", "all")
    repo = Repository(s.repository, s.label)
    try:
        nvf = repo.find_one(TroveSpec("cvmfs-client:runtime"), arch="x86_64")
        closure = ClosureResolver(repo, "x86_64").resolve([nvf])
        root = tmp_path_factory.mktemp("cvmfs-client-root")
        materialize(repo.store, [repo.get(n) for n in closure.members], root)
        return ClientRoot(root, sorted(n.name for n in closure.members))
    finally:
        repo.close()


def fuse_available() -> str | None:
    if os.geteuid() != 0:
        return "mounting needs root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return None


@dataclass
class Mount:
    """One cvmfs2 mount in the foreground (-f), so the test owns the process."""

    client: ClientRoot
    config: Path
    mountpoint: Path
    repo: str = REPO
    proc: subprocess.Popen | None = None
    stderr: str = ""
    extra: list[str] = field(default_factory=list)

    def start(self, *, expect_failure: bool = False, timeout: float = 30) -> "Mount":
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.client.argv("-f", "-c", str(self.config), *self.extra, self.repo,
                                                      str(self.mountpoint)),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stderr = self.proc.stderr.read()
                if expect_failure:
                    return self
                raise AssertionError(f"cvmfs2 exited with {self.proc.returncode}:\n{self.stderr}")
            if self.mounted():
                if expect_failure:
                    raise AssertionError("cvmfs2 mounted although it should have refused")
                return self
            time.sleep(0.02)
        raise AssertionError(f"cvmfs2 did not mount {self.mountpoint} within {timeout} s")

    def mounted(self) -> bool:
        with open("/proc/mounts") as f:
            return any(line.split()[1] == str(self.mountpoint) and line.split()[2] == "fuse.cvmfs" for line in f)

    def stop(self) -> None:
        if self.mounted():
            subprocess.run(["umount", str(self.mountpoint)], capture_output=True)
            if self.mounted():
                subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr and not self.proc.stderr.closed:
            self.stderr += self.proc.stderr.read()
            self.proc.stderr.close()
            self.proc.stdout.close()


@dataclass
class Setup:
    """A published repository, a server for it, and a client configuration."""

    tmp: Path
    client: ClientRoot
    keypair: keys.KeyPair
    source: Path
    out: Path
    server: StaticServer
    mounts: list[Mount] = field(default_factory=list)

    @property
    def repo_dir(self) -> Path:
        return self.out / REPO

    def configure(self, *, servers: str | None = None, proxy: str = "DIRECT", quota_mb: int = 100,
                  keys_dir: Path | None = None, extra: str = "", name: str = "cfg") -> Path:
        config = self.tmp / name
        (config / "config.d").mkdir(parents=True, exist_ok=True)
        if keys_dir is None:
            keys_dir = config / "keys"
            keys_dir.mkdir(exist_ok=True)
            shutil.copy(self.keypair.public_path, keys_dir / f"{REPO}.pub")
        (config / "default.conf").write_text(
            f"CVMFS_CACHE_BASE={self.tmp / 'cache'}\nCVMFS_QUOTA_LIMIT={quota_mb}\nCVMFS_KEYS_DIR={keys_dir}\n"
            f"CVMFS_USYSLOG={self.tmp / 'client.log'}\nCVMFS_TIMEOUT=3\nCVMFS_TIMEOUT_DIRECT=3\n")
        (config / "default.local").write_text(f"CVMFS_HTTP_PROXY='{proxy}'\n{extra}")
        (config / "config.d" / f"{REPO}.conf").write_text(
            f'CVMFS_SERVER_URL="{servers or self.server.url + "/@fqrn@"}"\n')
        return config

    def mount(self, config: Path | None = None, *, expect_failure: bool = False, name: str = "mnt") -> Mount:
        m = Mount(self.client, config or self.configure(), self.tmp / name)
        self.mounts.append(m)
        return m.start(expect_failure=expect_failure)

    def log(self) -> str:
        path = self.tmp / "client.log"
        return path.read_text() if path.exists() else ""

    def cached_objects(self) -> set[str]:
        data = self.tmp / "cache" / REPO / "data"
        return {p.parent.name + p.name for p in data.glob("*/*")} if data.exists() else set()


@pytest.fixture
def setup(tmp_path, cvmfs_client, keypair):
    """A tree published as sw.example.org, served over HTTP; mounts are undone afterwards."""
    reason = fuse_available()
    if reason:
        pytest.skip(reason)
    from appbuilder.fs.publish import publish

    source = make_tree(tmp_path / "src", {
        "README": "the release\n",
        "bin/run.sh": "#!/bin/sh\necho running\n",
        "lib/data.bin": bytes(range(256)) * 4096,
        "share/doc/empty": b"",
    }, {"current": "bin/run.sh", "share/up": "../bin"})
    os.chmod(source / "bin/run.sh", 0o755)
    out = tmp_path / "www"
    publish(source, REPO, out, keypair.private_path)
    server = StaticServer(out)
    s = Setup(tmp_path, cvmfs_client, keypair, source, out, server)
    yield s
    for m in s.mounts:
        m.stop()
    server.stop()
