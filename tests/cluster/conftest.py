"""A real Dask cluster on 127.0.0.1 for the cluster tests: ``dask scheduler`` and two
``dask worker`` processes (one thread each), each worker in its own empty directory,
started without any APPBUILD_* variable of the tests: a worker reaches the coordinator's
repository over HTTP only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, free_port


def worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("APPBUILD_")}


@dataclass
class DaskCluster:
    address: str
    root: Path
    scheduler: subprocess.Popen
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)  # name -> process (its own group)
    logs: list[Path] = field(default_factory=list)

    def start_worker(self, name: str) -> subprocess.Popen:
        home = self.root / name
        home.mkdir()
        log = self.root / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(VENV_BIN / "dask"), "worker", self.address, "--name", name, "--nworkers", "1", "--nthreads", "1",
                 "--host", "127.0.0.1", "--local-directory", str(home), "--no-dashboard"],
                cwd=home, env=worker_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers[name] = proc
        return proc

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=10, set_as_default=False)

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=timeout)

    def address_of(self, name: str) -> str | None:
        with self.client() as c:
            for address, info in c.scheduler_info(n_workers=-1)["workers"].items():
                if str(info.get("name", "")).startswith(name):
                    return address
        return None

    def kill(self, name: str) -> None:
        """SIGKILL the worker's whole process group (its nanny, the worker, its builds)."""
        proc = self.workers.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop(self) -> None:
        for name in list(self.workers):
            proc = self.workers.pop(name)
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        self.scheduler.terminate()
        try:
            self.scheduler.wait(20)
        except subprocess.TimeoutExpired:
            self.scheduler.kill()
            self.scheduler.wait()

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:] for log in self.logs
                         if log.exists())


def start_cluster(root: Path, workers: int = 2) -> DaskCluster:
    port = free_port()
    log = root / "scheduler.log"
    with open(log, "wb") as out:
        scheduler = subprocess.Popen(
            [str(VENV_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            cwd=root, env=worker_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    cluster = DaskCluster(f"tcp://127.0.0.1:{port}", root, scheduler, logs=[log])
    deadline = time.monotonic() + 60
    while True:  # the scheduler listens
        import socket

        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if scheduler.poll() is not None or time.monotonic() > deadline:
            cluster.stop()
            pytest.fail(f"dask scheduler did not start:\n{log.read_text()}")
        time.sleep(0.2)
    for i in range(workers):
        cluster.start_worker(f"w{i}")
    try:
        cluster.wait_for_workers(workers)
    except Exception:
        tail = cluster.tail()
        cluster.stop()
        pytest.fail(f"dask workers did not join:\n{tail}")
    return cluster


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two workers for the test module (a test may kill a worker: it gets its own)."""
    cluster = start_cluster(tmp_path_factory.mktemp("dask"))
    yield cluster
    cluster.stop()
