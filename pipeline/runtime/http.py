"""The sidecar's HTTP endpoint: /metrics, /healthz (the loop makes progress) and
/readyz (the process is up and configured — never tied to Kafka: an unready
sidecar would take its inference pod out of service). /healthz also fails, naming it,
while Kafka refuses the configuration or an ACL is missing (retrying cannot fix that).

Bounded, so that idle or slow clients cannot exhaust the process: at most
``max_connections`` are served at once (one thread each; a connection beyond that is
answered ``503`` and closed at once), every socket operation times out after
``timeout_s``, and one request is served per connection (HTTP/1.0, no keep-alive)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.runtime.metrics import Metrics

__all__ = ["HealthServer", "liveness"]

_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n"


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # listen backlog: a burst waits to be accepted (then served or 503)

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HealthServer:
    """Serves the endpoints on a daemon thread."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        alive: Callable[[], bool],
        ready: Callable[[], bool],
        problem: Callable[[], str | None] = lambda: None,
        max_connections: int = 16,
        timeout_s: float = 5.0,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = timeout_s  # applied to the socket: reads and writes both

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    if (trouble := problem()) is not None:
                        self._reply(503, f"{trouble}\n".encode())
                    else:
                        ok = outer.alive()
                        self._reply(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
                elif path == "/readyz":
                    ok = outer.ready()
                    self._reply(200 if ok else 503, b"ready\n" if ok else b"starting\n")
                else:
                    self._reply(404, b"not found\n")

            def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle(self) -> None:
                try:
                    super().handle()
                except (TimeoutError, ConnectionError):
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.alive = alive
        self.ready = ready
        self._server = _BoundedServer((host, port), Handler, max_connections)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="driftline-http", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def liveness(metrics: Metrics, timeout_s: float) -> Callable[[], bool]:
    """Alive while the poll loop completed an iteration within ``timeout_s``."""

    def alive() -> bool:
        last = metrics.progress_at
        return last == 0 or time.time() - last < timeout_s

    return alive
