"""Real HTTP/1.1 (keep-alive) on a loopback address, one thread per connection, in a background thread.

`dispatch(Request) -> Response | None` does the work; None closes the socket with an RST and no response
(a "connection reset" fault).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .routes import Request, Response

Dispatch = Callable[[Request], Response | None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end instead of holding a thread forever

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in one segment anyway, but never let Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return "GitHub.com"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the fake keeps its own request log

    def _serve(self) -> None:
        dispatch: Dispatch = self.server.dispatch  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()}, body=body,
            client=self.client_address[0],
        )
        response = dispatch(request)
        if response is None:
            self._reset()
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        # One write for status line, headers and body (end_headers() would flush the headers on their own).
        payload = b"" if self.command == "HEAD" else response.body
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()

    def _reset(self) -> None:
        self.close_connection = True
        try:
            # SO_LINGER 0: close() sends RST, so the client sees a reset rather than a clean EOF.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    do_GET = do_DELETE = do_POST = do_PUT = do_PATCH = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class LoopbackServer:
    def __init__(self, host: str, dispatch: Dispatch, port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.dispatch = dispatch  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-http-{host}", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
