"""The health endpoint stays bounded: idle and excess clients cannot exhaust it."""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from pipeline.runtime.http import HealthServer
from pipeline.runtime.metrics import Metrics


@pytest.fixture
def server() -> Iterator[HealthServer]:
    srv = HealthServer(
        Metrics(),
        host="127.0.0.1",
        port=0,
        alive=lambda: True,
        ready=lambda: True,
        max_connections=4,
        timeout_s=2.0,
    ).start()
    yield srv
    srv.stop()


def get(srv: HealthServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def connect(srv: HealthServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    return sock


class TestHealthServer:
    def test_endpoints(self, server: HealthServer) -> None:
        assert get(server, "/healthz") == (200, b"ok\n")
        assert get(server, "/readyz") == (200, b"ready\n")
        assert get(server, "/nope")[0] == 404
        status, body = get(server, "/metrics")
        assert status == 200 and b"driftline_" in body

    def test_idle_clients_are_capped_and_dropped(self, server: HealthServer) -> None:
        before = threading.active_count()
        idle = [connect(server) for _ in range(4)]
        # Wait until the four are being served (each holds a slot and a thread).
        extra = [connect(server) for _ in range(40)]
        busy = [s.recv(200) for s in extra]  # answered at once, not after the idle ones
        assert all(b.startswith(b"HTTP/1.0 503") for b in busy), [b[:12] for b in busy]
        assert threading.active_count() <= before + 4
        # An idle client is disconnected after the timeout: recv sees the close.
        for sock in idle:
            assert sock.recv(10) == b""
        assert get(server, "/healthz") == (200, b"ok\n")
        for sock in idle + extra:
            sock.close()

    def test_a_slow_reader_does_not_block_others(self, server: HealthServer) -> None:
        slow = connect(server)
        slow.sendall(b"GET /metrics HTTP/1.0\r\n")  # never finishes its headers
        assert get(server, "/healthz") == (200, b"ok\n")
        assert slow.recv(10) == b""
        slow.close()
