"""``appbuild repo keygen | export | serve``: the repository shared over HTTP, through the real command line."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from appbuilder.repository.keys import TrustedKeys
from appbuilder.repository.remote import open_remote
from appbuilder.repository.repo import Repository
from tests.conftest import VENV_BIN, env_for, free_port, run_appbuild
from tests.repository.conftest import commit_synthetic


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, b""


@pytest.fixture
def signed_workspace(workspace):
    """A scratch workspace with a repository key configured and one package committed."""
    proc = run_appbuild(workspace, "repo", "keygen", "-o", str(workspace.workspace / "keys"))
    assert "keys/repository.key" in proc.stdout and (workspace.workspace / "keys" / "repository.pub").is_file()
    assert (workspace.workspace / "keys" / "repository.key").stat().st_mode & 0o077 == 0
    config = workspace.workspace / "repo" / "config.yaml"
    config.write_text(config.read_text() + "repository:\n  signing_key: keys/repository.key\n"
                      "  trusted_keys: [keys/repository.pub]\n")
    repo = Repository(workspace.repository, workspace.label)
    commit_synthetic(repo, "first", [b"first content"])
    return workspace, repo


def test_export_writes_a_signed_tree_where_configured(signed_workspace, tmp_path):
    settings, repo = signed_workspace
    proc = run_appbuild(settings, "repo", "export")
    assert "exported snapshot 1" in proc.stdout and "unsigned" not in proc.stdout
    tree = settings.workspace / "repo" / "export"
    pointer = json.loads((tree / "snapshot.json").read_text())
    assert pointer["signature"]["key_id"] and pointer["troves"] == 2
    proc = run_appbuild(settings, "repo", "export", "--to", str(tmp_path / "elsewhere"))
    assert (tmp_path / "elsewhere" / "snapshot.json").is_file()
    proc = run_appbuild(settings, "repo", "export", "--to", "ftp://example.org/repo", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: cannot export to ftp://")
    assert "Traceback" not in proc.stderr


def test_serve_keeps_the_tree_current_and_serves_nothing_else(signed_workspace, tmp_path):
    settings, repo = signed_workspace
    port = free_port()
    server = subprocess.Popen([str(VENV_BIN / "appbuild"), "repo", "serve", "--port", str(port)],
                              env=env_for(settings), cwd=settings.workspace, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        lines = []
        deadline = time.monotonic() + 60
        while not any(url in line for line in lines):
            line = server.stdout.readline()
            assert line and time.monotonic() < deadline, (lines, server.stderr.read() if server.poll() else "")
            lines.append(line)
        status, headers, body = get(url + "snapshot.json")
        assert status == 200 and headers["Cache-Control"] == "no-cache"
        pointer = json.loads(body)
        digest = next(iter(Repository(settings.repository, settings.label).referenced_contents()))
        status, headers, _ = get(f"{url}objects/{digest[:2]}/{digest}.zst")
        assert status == 200 and "immutable" in headers["Cache-Control"]
        status, headers, _ = get(url + pointer["snapshot"])
        assert status == 200 and "immutable" in headers["Cache-Control"]
        tree = settings.workspace / "repo" / "export"
        assert (tree / ".lock").exists()
        for path in (".lock", "objects/", "snapshots/", "", "../config.yaml", "%2e%2e/config.yaml",
                     f"objects/{digest[:2]}/.{digest}.tmp", "index.sqlite"):
            assert get(url + path)[0] == 404, path
        commit_synthetic(repo, "second", [b"committed while serving"])
        trusted = TrustedKeys.load([settings.workspace / "keys" / "repository.pub"])
        remote = open_remote(url, tmp_path / "cache", trusted=trusted)
        assert remote.serial == 2 and [n.name for n in remote.packages()] == ["first", "second"]
        (nvf,) = remote.find("second:runtime")
        assert remote.store.read(remote.get(nvf).files[0].sha256) == b"committed while serving"
    finally:
        server.terminate()
        assert server.wait(30) in (130, 0, -15)
