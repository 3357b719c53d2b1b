"""HTTP plumbing for the REST API: threads, limits, TLS, bearer token."""

from __future__ import annotations

import hmac
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from genimg_serving import rest_json
from genimg_serving.configs import PROMETHEUS_PATH
from genimg_serving.server import rest_api

log = logging.getLogger("genimg_serving")

CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "Content-Type, Authorization"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a busy port is an error

    def __init__(self, address, manager, metrics, *, max_body_bytes, max_in_flight, auth_token):
        super().__init__(address, _Handler)
        self.manager, self.metrics = manager, metrics
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.expected_auth = f"Bearer {auth_token}".encode() if auth_token else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client
    timeout = 120  # seconds a silent connection may hold a thread
    server_version = "genimg-serving"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    # Other methods get TF Serving's JSON "Malformed request", not http.server's HTML 501.
    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_OPTIONS(self):
        if self.headers.get("Origin"):  # a CORS preflight: allowed, as TF Serving allows it
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            return self._reply(200, b"", headers=CORS_HEADERS)
        self._serve("OPTIONS")

    def _serve(self, method: str) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        if self.server.expected_auth and not hmac.compare_digest(
            (self.headers.get("Authorization") or "").encode(), self.server.expected_auth
        ):
            return self._error(401, "missing or invalid bearer token", length)
        if length > self.server.max_body_bytes:
            return self._error(
                413, f"request body of {length} bytes exceeds the limit of"
                f" {self.server.max_body_bytes} bytes", length)
        if not self.server.slots.acquire(blocking=False):
            return self._error(
                429, f"too many requests in flight (limit {self.server.max_in_flight});"
                " retry with backoff", length)
        try:
            body = self.rfile.read(length) if length else b""
            if method == "GET" and path == PROMETHEUS_PATH:
                return self._reply(200, self.server.metrics.prometheus_text().encode(), "text/plain")
            if not path.lower().startswith("/v1/"):
                return self._reply(404, rest_json.dumps({"error": f"Not found: {path}"}))
            status, payload = rest_api.handle(self.server.manager, self.server.metrics,
                                              method, path, body)
            self._reply(status, payload)
        finally:
            self.server.slots.release()

    def _error(self, status: int, message: str, unread: int) -> None:
        if unread:  # the body is not read: do not reuse the connection
            self.close_connection = True
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        self._reply(status, rest_json.dumps({"error": message}), headers=headers)

    def _reply(self, status: int, body: bytes, content_type: str = "application/json",
               headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # route http.server's stderr lines to logging
        log.debug("%s %s", self.address_string(), format % args)


def start_rest(manager, metrics, host: str, port: int, *, max_body_bytes: int,
               max_in_flight: int, ssl_context: ssl.SSLContext | None = None,
               auth_token: str | None = None):
    """Start the REST server in a thread; returns (server, bound port)."""
    try:
        server = _Server((host, port), manager, metrics, max_body_bytes=max_body_bytes,
                         max_in_flight=max_in_flight, auth_token=auth_token)
    except OSError as e:
        raise OSError(f"cannot listen for REST on {host}:{port}: {e.strerror}") from e
    if ssl_context is not None:
        # The handshake happens in the request thread, not in the accept loop.
        server.socket = ssl_context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name="genimg-rest", daemon=True)
    thread.start()
    return server, server.server_address[1]
