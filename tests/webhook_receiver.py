"""A real HTTP webhook receiver on loopback, for the notification tests.

It listens on ``127.0.0.1`` (a free port), keeps every JSON body it is sent, and
answers as told: ``ok`` (200), ``fail`` (500) or ``slow`` (holds the request
until the test ends, so a sender's deadline is what ends the wait).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def url(self, scheme: str = "json", path: str = "/hook/s3cr3t-path-token") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def events(self) -> list[str]:
        return [str(b.get("event")) for b in self.bodies]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            receiver.bodies.append(body)
            receiver.paths.append(self.path)
            if receiver.mode == "slow":
                receiver.release.wait(30)  # released when the test ends
            code = 500 if receiver.mode == "fail" else 200
            self.send_response(code)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler


@contextmanager
def receiver(mode: str = "ok") -> Iterator[Receiver]:
    rec = Receiver(mode)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()
