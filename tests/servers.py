"""Real HTTP servers for the tests: a static file server (what serves a published
repository, a mirror, an rpm-md repository) and a forward proxy (what a site's squid
is), both on 127.0.0.1, threaded, stoppable, counting what they were asked."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path

from tests.conftest import free_port


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()


class _LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 serving with *handler* until :meth:`stop`;
    every request path is recorded in :attr:`requests`."""

    def __init__(self, handler, port: int = 0, **attributes):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.requests = []
        for name, value in attributes.items():  # what the handler reads from self.server
            setattr(self.httpd, name, value)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


class StaticServer(_LoopbackServer):
    """Serves *directory* on 127.0.0.1 (any plain web server would do)."""

    def __init__(self, directory: Path, port: int = 0):
        self.directory = Path(directory)
        super().__init__(partial(_Quiet, directory=str(directory)), port)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        # an absolute-form request; the origin is whatever the proxy was told to use
        path = "/" + self.path.split("/", 3)[3] if self.path.startswith("http://") else self.path
        try:
            with urllib.request.urlopen(f"{self.server.origin}{path}", timeout=10) as resp:
                body, status = resp.read(), 200
        except urllib.error.HTTPError as exc:
            body, status = b"", exc.code
        except OSError:
            body, status = b"", 502  # the origin cannot be reached
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ForwardProxy(_LoopbackServer):
    """An HTTP proxy on 127.0.0.1 that sends every request to *origin* (http://host:port)."""

    def __init__(self, origin: str):
        super().__init__(_ProxyHandler, origin=origin)


closed_port = free_port  # a dead proxy or server: a loopback port nothing listens on
