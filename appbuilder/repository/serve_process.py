"""The repository's HTTP server (serve.py) run in a process of its own, for a coordinator.

A cluster coordinator serves its repository's export to the workers while it schedules
their tasks. In the coordinator's own process the server's work (exporting the index
after each commit: reading it, hashing and compressing the snapshot; sending objects to
every worker that asks) would share one interpreter lock with the scheduling: the Dask
client, the commits of the workers' changesets. In a process of its own it runs on
another processor: the first export of a run is made while the coordinator is still
connecting to the cluster, and fifty workers fetching their build roots at once do not
slow the commits down.

:class:`ServerProcess` starts ``python -m appbuilder.repository.serve_process`` and talks
to it over its standard input and output, one JSON line each way: the server answers
``{"url": ...}`` once it listens, ``{"ready": SERIAL}`` after its first export, and to
each ``refresh`` line the serial it exported (or ``{"error": ...}``). The end of its
input (the coordinator done, or killed) ends it: it stops serving, closes the index and
leaves. It never writes the repository (only the export tree).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import appbuilder
from appbuilder.core.errors import AppbuildError

WAIT_EXIT = 10.0  # seconds a server told to stop may take before it is killed


class ServerProcess:
    """Serves the export tree *tree* of the repository at *repository* (its label *label*)
    from a child process; the same calls as :class:`appbuilder.repository.serve.RepositoryServer`
    started with ``keep_current=False``: :attr:`url`, :meth:`ready`, :meth:`refresh`, :meth:`close`."""

    def __init__(self, repository: Path, label: str, tree: Path, *, bind: str = "127.0.0.1", port: int = 0,
                 signing_key: Path | None = None, skip_unchanged: bool = False):
        config = {"repository": str(repository), "label": label, "tree": str(tree), "bind": bind, "port": port,
                  "signing_key": str(signing_key) if signing_key else None, "skip_unchanged": skip_unchanged}
        env = dict(os.environ)
        package_root = str(Path(appbuilder.__file__).resolve().parent.parent)  # this appbuild, however installed
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._errors = tempfile.TemporaryFile()  # what the process says on its standard error, for a failure
        self._lock = threading.Lock()
        self._url: str | None = None
        self._ready: int | None = None
        self._failed: AppbuildError | None = None  # said once, raised again on every later call
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", __name__, json.dumps(config)], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors,
                                         close_fds=True)
        except OSError as exc:
            self._errors.close()
            raise AppbuildError(f"cannot start the repository server ({sys.executable}): {exc.strerror or exc}") \
                from None

    @property
    def url(self) -> str:
        """The URL the tree is served at (waits until the server listens)."""
        with self._lock:
            if self._url is None:
                self._url = str(self._answer("url"))
            return self._url

    def ready(self) -> int:
        """Wait for the first export (raising its error); its serial."""
        self.url
        with self._lock:
            if self._ready is None:
                self._ready = int(self._answer("ready"))
            return self._ready

    def refresh(self, *, force: bool = True) -> int:
        """Export the repository again (the server reads the index as it is now); the serial
        of the export (the same as before when nothing exported changed)."""
        self.ready()
        with self._lock:
            try:
                self.proc.stdin.write(b"refresh\n")
                self.proc.stdin.flush()
            except OSError:  # the server is gone: _answer says why
                pass
            return int(self._answer("done"))

    def _answer(self, key: str):
        if self._failed is not None:
            raise self._failed
        line = self.proc.stdout.readline()
        try:
            reply = json.loads(line) if line else {}
        except ValueError:
            reply = {}
        if key in reply:
            return reply[key]
        if "error" in reply:
            self._failed = AppbuildError(str(reply["error"]))
        else:
            self._failed = AppbuildError(f"the repository server stopped unexpectedly ({self._why()})")
        raise self._failed

    def _why(self) -> str:
        try:
            status = self.proc.wait(WAIT_EXIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        self._errors.seek(0)
        said = self._errors.read().decode(errors="replace").strip().splitlines()
        return f"exit status {status}" + (f": {said[-1]}" if said else "")

    def close(self) -> None:
        """Stop serving: the server is told to leave (the end of its input) and waited for."""
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(WAIT_EXIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._errors.close()


def _say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _serve(config: dict) -> None:
    """The server process: serve, export when told, leave at the end of the input."""
    from appbuilder.repository import index
    from appbuilder.repository.keys import Signer
    from appbuilder.repository.repo import Repository
    from appbuilder.repository.serve import RepositoryServer

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle: it closes our input
    try:
        signer = Signer.load(Path(config["signing_key"])) if config["signing_key"] else None
        repo = Repository(Path(config["repository"]), config["label"])
        server = RepositoryServer(repo, Path(config["tree"]), bind=config["bind"], port=int(config["port"]),
                                  signer=signer, keep_current=False, skip_unchanged=bool(config["skip_unchanged"]))
    except AppbuildError as exc:
        _say({"error": str(exc)})
        return
    server.start()  # never shut down: the process leaves (os._exit) with its serving thread
    _say({"url": server.url})
    try:
        try:
            _say({"ready": server.ready().serial})
        except AppbuildError as exc:
            _say({"error": f"the repository could not be exported: {exc}"})
            return
        for line in sys.stdin:
            if line.strip() != "refresh":
                continue
            try:
                _say({"done": server.refresh(force=True).serial})
            except AppbuildError as exc:
                _say({"error": f"the repository could not be exported: {exc}"})
    finally:
        server.stop_exports()
        index.close_all()  # the last connection to close tidies the index's write-ahead log


def main(argv: list[str]) -> int:
    try:
        config = json.loads(argv[1])
    except (IndexError, ValueError):
        sys.stderr.write(f"usage: python -m {__name__} CONFIG-JSON (started by a cluster coordinator)\n")
        return 2
    try:
        _serve(config)
    except Exception as exc:  # said on the one channel the coordinator reads, in one line
        _say({"error": f"the repository server failed: {type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    status = main(sys.argv)
    sys.stdout.flush()
    os._exit(status)  # the index is closed; no interpreter teardown for a process that only served
