"""``appbuild repo serve``: the repository's export tree over HTTP, kept current.

A threading HTTP server (Python's ``http.server``) that serves the export tree
(export.py) of a repository and nothing else: ``snapshot.json``,
``snapshots/<sha256>.json.zst`` (and the deltas beside them) and ``objects/ab/<sha256>.zst``. Objects and snapshots
never change once written and are sent with ``Cache-Control: immutable``; the pointer
``snapshot.json`` is sent with ``no-cache`` and always in full (never a 304). Dot files
(the export lock, temporary files of a running export) and anything else are never served.

The tree is kept current: before answering a request for ``snapshot.json`` the server
checks whether the repository's index changed since its last export (a cheap query) and
exports again if it did, so a cluster worker opening the repository always sees what the
coordinator has committed. For production a static web server (nginx) or an S3 bucket
serving an exported tree does the same job, with ``appbuild repo export`` run after commits.
"""

from __future__ import annotations

import functools
import http.server
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from appbuilder.core.errors import AppbuildError
from appbuilder.repository import index
from appbuilder.repository.export import IMMUTABLE, NO_CACHE, POINTER, ExportResult, export_repository

_SERVED = re.compile(r"^/(snapshot\.json|snapshots/[0-9a-f]{64}(\.from-[0-9a-f]{64})?\.json\.zst"
                     r"|objects/[0-9a-f]{2}/[0-9a-f]{64}\.zst)$")


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_ref: "RepositoryServer"

    def send_head(self):
        path = self.path.split("?", 1)[0]
        match = _SERVED.match(path)
        if not match or (path.startswith("/objects/") and path[9:11] != path[12:14]):
            self.send_error(404, "not found")
            return None
        try:
            self.server_ref.ready()
        except AppbuildError as exc:  # nothing was ever exported: nothing to serve
            self.send_error(503, f"the repository could not be exported: {exc}")
            return None
        if path == "/" + POINTER:
            try:
                self.server_ref.refresh()
            except AppbuildError as exc:  # serve the last good export, and say why it is not newer
                sys.stderr.write(f"appbuild repo serve: export failed: {exc}\n")
            del self.headers["If-Modified-Since"]
        return super().send_head()

    def guess_type(self, path):
        return "application/json" if str(path).endswith(".json") else "application/zstd"

    def end_headers(self):
        self.send_header("Cache-Control", NO_CACHE if self.path.split("?", 1)[0] == "/" + POINTER else IMMUTABLE)
        super().end_headers()

    def log_message(self, fmt, *args):
        if self.server_ref.log:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


class RepositoryServer:
    """Serves *repo*'s export tree *tree* (a directory) at ``url``; see the module text."""

    def __init__(self, repo, tree: Path, *, bind: str = "127.0.0.1", port: int = 0, signer=None,
                 keep_current: bool = True, log: bool = False, skip_unchanged: bool = False):
        self.repo = repo
        self.skip_unchanged = skip_unchanged  # trust a tree whose pointer names the index's state
        self.tree = Path(tree)
        self.signer = signer
        self.keep_current = keep_current
        self.log = log
        self.last: ExportResult | None = None
        self._mark = None
        self._lock = threading.Lock()
        # exports run on this one thread: the repository keeps one index connection per thread
        self._exporter = ThreadPoolExecutor(1, thread_name_prefix="repo-export")
        self._thread: threading.Thread | None = None
        handler = type("Handler", (_Handler,), {"server_ref": self})
        try:
            self.httpd = http.server.ThreadingHTTPServer(
                (bind, port), functools.partial(handler, directory=str(self.tree.resolve())))
        except OSError as exc:
            self._exporter.shutdown()
            raise AppbuildError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        host, real_port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{real_port}/"
        # the first export runs while the caller goes on (a coordinator plans its first tasks);
        # nothing is served before it is written (ready)
        self._first = self._exporter.submit(self._refresh, True)

    def ready(self) -> ExportResult | None:
        """Wait for the first export (raising its error): from then on the tree is servable."""
        return self._first.result()

    def refresh(self, *, force: bool = False) -> ExportResult | None:
        """Export again if the index changed since the last export (always with *force*)."""
        if not (force or self.keep_current):
            return None
        with self._lock:
            return self._exporter.submit(self._refresh, force).result()

    def _refresh(self, force: bool) -> ExportResult | None:
        mark = index.state(self.repo.db)
        if not force and mark and mark == self._mark:
            return None
        self.last = export_repository(self.repo, self.tree, signer=self.signer, previous=self.last,
                                      skip_unchanged=self.skip_unchanged)
        self._mark = mark
        return self.last

    def start(self, poll_interval: float = 0.5) -> "RepositoryServer":
        """Serve on a background thread (returns at once, the first export may still be under
        way: requests wait for it); :meth:`close` waits up to *poll_interval*."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": poll_interval},
                                        name="repo-serve", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def stop_exports(self) -> None:
        """No export from now on: the thread that exports ends, so that its index connection
        can be closed, while requests are still answered (a server process about to leave)."""
        self._exporter.shutdown()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()
        self._exporter.shutdown()

    def __enter__(self) -> "RepositoryServer":
        try:
            self.ready()
        except BaseException:
            self.close()
            raise
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
