"""Fixtures of the repository-over-HTTP tests: keys, an exported tree of real cooks, static servers."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from appbuilder.repository.export import export_repository
from appbuilder.repository.keys import Signer, TrustedKeys, generate
from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.versions import Flavor


@pytest.fixture(scope="session")
def repo_keys(tmp_path_factory):
    """A signing key, the readers' trust in it, and a second key nobody trusts."""
    root = tmp_path_factory.mktemp("repo-keys")
    private, public, _ = generate(root, "repository")
    other, _, _ = generate(root, "stranger")
    return Signer.load(private), TrustedKeys.load([public]), Signer.load(other), public


def open_repository(settings) -> Repository:
    return Repository(settings.repository, settings.label)


@pytest.fixture(scope="session")
def hello_export(hello_repo, repo_keys, tmp_path_factory):
    """hello_repo (the toolchain, libhello and hello cooked for both arches) exported, signed."""
    tree = tmp_path_factory.mktemp("hello-export") / "tree"
    repo = open_repository(hello_repo)
    result = export_repository(repo, tree, signer=repo_keys[0])
    repo.close()
    return tree, result


def copy_tree(source: Path, dest: Path) -> Path:
    """A copy of an export tree whose files may be replaced (hard links: replace by rename, never in place)."""
    subprocess.run(["cp", "-a", "--link", str(source), str(dest)], check=True)
    return dest


def replace_file(path: Path, data: bytes) -> None:
    """Give *path* new content without touching the inode it may share with other copies."""
    path.unlink()
    path.write_bytes(data)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def static_server(root: Path, handler=_Quiet):
    """A plain static HTTP server (what nginx would be) for *root* on 127.0.0.1, on a thread."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


def commit_synthetic(repo: Repository, name: str, contents: list[bytes], *, source: str = "s1",
                     arch: str = "x86_64") -> object:
    """Commit a package whose one component holds *contents* (a stand-in for a cook's output)."""
    files = []
    for i, data in enumerate(contents):
        digest = repo.store.put_bytes(data)
        files.append(FileEntry(f"/usr/share/{name}/{i}", "file", 0o644, size=len(data), sha256=digest))
    log = repo.store.put_bytes(f"build log of {name} {source}".encode())
    return repo.commit_package(PackageBuild(
        name, "1.0", Flavor(arch), source, [ComponentContents(f"{name}:runtime", files)],
        input_hash=hashlib.sha256(f"{name} {source} {arch}".encode()).hexdigest(),
        build_log=log))


@pytest.fixture
def fresh_tree(tmp_path):
    """A scratch directory for an export tree."""
    path = tmp_path / "tree"
    yield path
    shutil.rmtree(path, ignore_errors=True)
