"""``ServerProcess``: the repository's export served from a process of its own, as a coordinator runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from appbuilder.core.errors import AppbuildError
from appbuilder.repository.keys import TrustedKeys, generate
from appbuilder.repository.remote import open_remote
from appbuilder.repository.repo import Repository
from appbuilder.repository.serve_process import ServerProcess
from tests.repository.conftest import commit_synthetic


def _pointer(url: str) -> dict:
    with urllib.request.urlopen(url + "snapshot.json", timeout=30) as answer:
        return json.loads(answer.read())


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as stat:  # a zombie (not reaped yet) is gone too
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:  # reaped meanwhile
            return True
        time.sleep(0.05)
    return False


def test_it_serves_the_signed_export_and_exports_again_when_told(tmp_path):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"first"])
    private, public, _ = generate(tmp_path / "keys", "repository")
    server = ServerProcess(repo.path, repo.label, tmp_path / "tree", signing_key=private, skip_unchanged=True)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.ready() == 1
        assert _pointer(server.url)["serial"] == 1
        commit_synthetic(repo, "two", [b"second"])
        assert _pointer(server.url)["serial"] == 1  # exported when told, not on a request
        assert server.refresh() == 2
        remote = open_remote(server.url, tmp_path / "cache", trusted=TrustedKeys.load([public]))
        assert remote.find("two") and remote.find("one")
        assert server.refresh() == 2  # nothing changed: nothing new
    finally:
        server.close()
    assert server.proc.returncode == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "snapshot.json", timeout=5)


def test_a_port_in_use_and_an_export_that_fails_are_clear_errors(tmp_path):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"first"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = ServerProcess(repo.path, repo.label, tmp_path / "tree", port=busy.getsockname()[1])
        try:
            for _ in range(2):  # said again, not as a server that stopped
                with pytest.raises(AppbuildError, match=r"cannot listen on 127\.0\.0\.1:\d+"):
                    server.ready()
        finally:
            server.close()
    (tmp_path / "file").write_text("not a directory\n")
    server = ServerProcess(repo.path, repo.label, tmp_path / "file" / "tree")
    try:
        with pytest.raises(AppbuildError, match="could not be exported.*Not a directory"):
            server.ready()
    finally:
        server.close()


def test_a_server_that_died_is_said_and_one_whose_coordinator_died_leaves(tmp_path):
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    commit_synthetic(repo, "one", [b"first"])
    server = ServerProcess(repo.path, repo.label, tmp_path / "tree")
    try:
        server.ready()
        server.proc.send_signal(signal.SIGKILL)
        with pytest.raises(AppbuildError, match=r"the repository server stopped unexpectedly \(exit status -9\)"):
            server.refresh()
    finally:
        server.close()
    # a coordinator killed -9: its server sees the end of its input and leaves
    script = ("import sys, time\nfrom pathlib import Path\nfrom appbuilder.repository.serve_process import ServerProcess\n"
              f"s = ServerProcess(Path({str(repo.path)!r}), 'cernvm@cvm:2', Path({str(tmp_path / 'tree2')!r}))\n"
              "s.ready(); print(s.proc.pid, flush=True); time.sleep(600)\n")
    coordinator = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                                   cwd=Path(__file__).resolve().parents[2])
    try:
        child = int(coordinator.stdout.readline())
        coordinator.kill()
        coordinator.wait()
        assert _gone(child)
    finally:
        coordinator.kill()
        coordinator.stdout.close()
