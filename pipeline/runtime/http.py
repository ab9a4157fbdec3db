"""The sidecar's HTTP endpoint: /metrics, /healthz (the loop makes progress) and
/readyz (the process is up and configured — never tied to Kafka: an unready
sidecar would take its inference pod out of service)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.runtime.metrics import Metrics

__all__ = ["HealthServer"]


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
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
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

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.alive = alive
        self.ready = ready
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
