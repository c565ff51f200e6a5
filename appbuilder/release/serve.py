"""``appbuild serve DEST``: serve a published directory over HTTP, for trying a release tree.

Python's threading HTTP server on 127.0.0.1 (``--bind`` to change) with the same cache
rules as ``ci/nginx/appbuild.conf``: release trees (``GROUP/VERSION/...``) are immutable
and may be cached for a year; index files (``*.json``, ``*.html``, the signing key) must
be revalidated, so a rollback shows at once; they are always sent in full (never a
304: their time stamps have one-second resolution, and a rollback within the second a
page was published must not leave browsers on the old page). Dot files (the publish
lock, staging directories) are never served. For production use nginx (or any web server, or the S3
bucket itself).
"""

from __future__ import annotations

import functools
import http.server
import sys
from pathlib import Path

from appbuilder.core.errors import AppbuildError
from appbuilder.release.destinations.base import IMMUTABLE, NO_CACHE, content_type


def is_index_file(url_path: str) -> bool:
    """Files that change when releases are published or rolled back."""
    path = url_path.split("?", 1)[0]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return path.endswith("/") or name.endswith((".json", ".html")) or name == "signing-key.asc"


class ReleaseHandler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):
        if any(part.startswith(".") for part in self.path.split("?", 1)[0].split("/")):
            self.send_error(404, "not found")
            return None
        if is_index_file(self.path):
            del self.headers["If-Modified-Since"]  # answer in full, never 304
        return super().send_head()

    def guess_type(self, path):
        return content_type(Path(str(path)).name)

    def end_headers(self):
        self.send_header("Cache-Control", NO_CACHE if is_index_file(self.path) else IMMUTABLE)
        super().end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


def make_server(root: Path, port: int = 8080, bind: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    root = Path(root)
    if not root.is_dir():
        raise AppbuildError(f"nothing to serve: {root} is not a directory (publish to it first)")
    handler = functools.partial(ReleaseHandler, directory=str(root.resolve()))
    try:
        return http.server.ThreadingHTTPServer((bind, port), handler)
    except OSError as exc:
        raise AppbuildError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}") from None


def serve(root: Path, port: int = 8080, bind: str = "127.0.0.1", say=print) -> None:
    server = make_server(root, port, bind)
    host, real_port = server.server_address[:2]
    say(f"serving {Path(root).resolve()} at http://{host}:{real_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
