"""``MetricsExporter``: the head's Prometheus endpoint, ``GET /metrics`` (and ``/``) over HTTP.

Runs in the GCS's process, on daemon threads of the standard library's HTTP server, bound to
the node's address; ``render`` gives the page (the GCS's ``MetricsTable``, under its lock).
Started only when the cluster has a metrics export port; closed when the GCS stops.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from babyray import log

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    render: Callable[[], str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.split("?", 1)[0] not in ("/", "/metrics"):
            self.send_error(404, "only /metrics is served here")
            return
        body = self.server.render().encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        log.get_logger("metrics").debug("metrics_http_request", line=format % args)


class MetricsExporter:
    def __init__(self, host: str, port: int, render: Callable[[], str]) -> None:
        """Listen on ``host:port`` and serve.

        Raises:
            OSError: the port cannot be bound (in use, or not allowed).
        """
        self._server = _Server((host, port), _Handler)
        self._server.render = render
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="babyray-metrics-http",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)
