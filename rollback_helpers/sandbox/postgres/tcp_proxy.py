"""A real TCP forwarder that behaves like ``flyctl mpg proxy``, for the sandbox.

    python -m rollback_helpers.sandbox.postgres.tcp_proxy --target 127.0.0.1:PORT \\
        --remote "[fdaa:12:a3f1:0:1::7]:5432" -p 0 [-b 127.0.0.1] [--fail MESSAGE]

Once bound it prints ``Proxying localhost:<port> to remote <remote>`` (``-p 0``:
the kernel picks the port), forwards every connection to ``--target`` both ways,
and runs until SIGINT or SIGTERM, then exits 0 and frees the port. ``--remote``
is only what it claims to reach (the cluster's private address), as flyctl
prints it. ``--fail`` prints ``Error: MESSAGE`` to stderr and exits 1 before
binding, as flyctl does when a cluster is still initializing.
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

DEFAULT_PORT = 16380
_CHUNK = 65536
_CONNECT_TIMEOUT = 5.0


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


class Forwarder:
    """Accepts on ``listener`` and pipes each connection to ``target`` until stopped."""

    def __init__(self, listener: socket.socket, target: tuple[str, int], remote: str) -> None:
        self._listener = listener
        self._target = target
        self._remote = remote
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def serve_until(self, wakeup: socket.socket) -> None:
        """Serve until ``wakeup`` becomes readable (a signal arrived)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ, "accept")
            selector.register(wakeup, selectors.EVENT_READ, "stop")
            while True:
                for key, _ in selector.select():
                    if key.data == "stop":
                        return
                    self._accept()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self._target, timeout=_CONNECT_TIMEOUT)
        except OSError as exc:
            print(f"Error: could not reach remote {self._remote}: {exc}", file=sys.stderr,
                  flush=True)
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        pair = _Pair(client, upstream, self._forget)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=pair.pump, args=(src, dst), daemon=True).start()

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            socks, self._open = list(self._open), set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class _Pair:
    """One proxied connection: two pumps; the second to finish closes both sockets."""

    def __init__(self, a: socket.socket, b: socket.socket, forget: Callable[..., None]) -> None:
        self._socks = (a, b)
        self._forget = forget
        self._running = 2
        self._lock = threading.Lock()

    def pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(_CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)  # pass the EOF on
            self._finished()

    def _finished(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self._forget(*self._socks)
            for sock in self._socks:
                sock.close()


def _listen(bind: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tcp_proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--remote", help="what to call the remote in the banner")
    parser.add_argument("-p", "--port", type=int, default=DEFAULT_PORT,
                        help=f"local port (0: any free one; default {DEFAULT_PORT})")
    parser.add_argument("-b", "--bind", default="127.0.0.1", help="local address to bind")
    parser.add_argument("--fail", metavar="MESSAGE", help="print `Error: MESSAGE`, exit 1")
    parser.add_argument("--world", help="the sandbox world this tunnel belongs to (shown by ps)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.fail:
        print(f"Error: {args.fail}", file=sys.stderr, flush=True)
        return 1
    try:
        target = split_host_port(args.target)
        listener = _listen(args.bind, args.port)
    except (ValueError, OSError) as exc:
        print(f"Error: failed to listen on {args.bind}:{args.port}: {exc}", file=sys.stderr,
              flush=True)
        return 1
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    previous = signal.set_wakeup_fd(wake_w.fileno())

    def on_signal(signum: int, frame: FrameType | None) -> None:
        """The wakeup fd does the work; a handler must exist for it to fire."""

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    forwarder = Forwarder(listener, target, args.remote or args.target)
    port = listener.getsockname()[1]
    print(f"Proxying localhost:{port} to remote {args.remote or args.target}", flush=True)
    try:
        forwarder.serve_until(wake_r)
    finally:
        forwarder.close()
        signal.set_wakeup_fd(previous)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        wake_r.close()
        wake_w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
