"""HTTP plumbing for the REST API on Tornado's HTTP server: limits, TLS, bearer token.

Tornado reads requests on one event loop: a body, chunked or not, is buffered
there in full (as TF Serving buffers it before taking a worker), so clients that
stall mid-upload hold a socket, not a worker, and are dropped after
``BODY_SECONDS``. Only a complete request takes one of the ``max_in_flight``
slots and runs ``rest_api.handle`` on a worker thread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from genimg_serving import rest_json
from genimg_serving.configs import PROMETHEUS_PATH
from genimg_serving.server import rest_api

log = logging.getLogger("genimg_serving")

BODY_SECONDS = 60.0  # a request body must arrive within this
IDLE_SECONDS = 120.0  # a keep-alive connection may stay silent this long
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "Content-Type, Authorization"}


class _Front:
    """What every request needs: the manager, metrics, limits and the worker pool."""

    def __init__(self, manager, metrics, max_body_bytes: int, max_in_flight: int, auth_token):
        self.manager, self.metrics = manager, metrics
        self.max_body_bytes, self.max_in_flight = max_body_bytes, max_in_flight
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="genimg-rest")
        self.expected_auth = f"Bearer {auth_token}".encode() if auth_token else None


@tornado.web.stream_request_body
class _Handler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")

    def initialize(self, front: _Front):
        self.front = front
        self.chunks: list[bytes] = []
        self.size = 0
        self.refused = False

    def prepare(self):
        # Checked on the headers, before any of the body is read.
        self.request.connection.set_max_body_size(2**63 - 1)  # our own limit, with a JSON reply
        front = self.front
        if front.expected_auth and not hmac.compare_digest(
                (self.request.headers.get("Authorization") or "").encode(), front.expected_auth):
            return self._refuse(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
        length = int(self.request.headers.get("Content-Length") or 0)
        if length > front.max_body_bytes:
            return self._refuse(413, self._too_large(length))

    def data_received(self, chunk: bytes):
        if self.refused:
            return
        self.size += len(chunk)
        if self.size > self.front.max_body_bytes:  # chunked bodies have no Content-Length
            return self._refuse(413, self._too_large(self.size))
        self.chunks.append(chunk)

    def _too_large(self, size: int) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.front.max_body_bytes} bytes"

    def _refuse(self, status: int, message: str, headers: dict | None = None) -> None:
        self.refused = True
        self.set_header("Connection", "close")  # the rest of the body is not read
        self._reply(status, rest_json.dumps({"error": message}), headers=headers)

    async def get(self):
        await self._serve("GET")

    async def post(self):
        await self._serve("POST")

    async def put(self):
        await self._serve("PUT")

    async def delete(self):
        await self._serve("DELETE")

    async def patch(self):
        await self._serve("PATCH")

    async def head(self):
        await self._serve("HEAD")

    async def options(self):
        if self.request.headers.get("Origin"):  # a CORS preflight: allowed, as TF Serving allows it
            return self._reply(200, b"", headers=CORS_HEADERS)
        await self._serve("OPTIONS")

    async def _serve(self, method: str) -> None:
        if self.refused:
            return
        front, path = self.front, self.request.path
        if not front.slots.acquire(blocking=False):
            return self._reply(429, rest_json.dumps({"error": (
                f"too many requests in flight (limit {front.max_in_flight}); retry with backoff")}))
        try:
            if method == "GET" and path == PROMETHEUS_PATH:
                text = await self._in_pool(front.metrics.prometheus_text)
                return self._reply(200, text.encode(), "text/plain; version=0.0.4")
            if not path.lower().startswith("/v1/"):
                return self._reply(404, rest_json.dumps({"error": f"Not found: {path}"}))
            body = b"".join(self.chunks)
            status, payload = await self._in_pool(
                rest_api.handle, front.manager, front.metrics, method, path, body)
            self._reply(status, payload)
        finally:
            front.slots.release()

    def _in_pool(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self.front.pool, fn, *args)

    def _reply(self, status: int, body: bytes, content_type: str = "application/json",
               headers: dict | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.set_header(key, value)
        self.finish(body)

    def log_exception(self, typ, value, tb):
        if isinstance(value, tornado.web.HTTPError):  # e.g. 405 for TRACE: the client's doing
            log.debug("REST %s %s: %s", self.request.method, self.request.path, value)
        else:  # a bug: keep serving, log it once
            log.error("REST request failed", exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs):  # JSON, never Tornado's HTML page
        self.set_header("Content-Type", "application/json")
        self.finish(rest_json.dumps({"error": self._reason}))


class RestServer:
    """Tornado's HTTPServer on its own event loop thread."""

    def __init__(self, front: _Front, sockets, ssl_context):
        self.front, self.slots = front, front.slots
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sockets, ssl_context),
                                        name="genimg-rest", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self, sockets, ssl_context) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        app = tornado.web.Application([(r".*", _Handler, {"front": self.front})])
        self._http = tornado.httpserver.HTTPServer(
            app, ssl_options=ssl_context, body_timeout=BODY_SECONDS,
            idle_connection_timeout=IDLE_SECONDS, max_buffer_size=self.front.max_body_bytes + 65536)
        self._http.add_sockets(sockets)
        self._loop = tornado.ioloop.IOLoop.current()
        self._ready.set()
        self._loop.start()
        self._loop.close(all_fds=True)

    def stop(self) -> None:
        async def shut():
            self._http.stop()
            await self._http.close_all_connections()
            self._loop.stop()

        self._loop.add_callback(shut)
        self._thread.join(timeout=30)
        self.front.pool.shutdown(wait=False, cancel_futures=True)


def start_rest(manager, metrics, host: str, port: int, *, max_body_bytes: int,
               max_in_flight: int, ssl_context: ssl.SSLContext | None = None,
               auth_token: str | None = None):
    """Start the REST server in a thread; returns (server, bound port)."""
    try:
        sockets = tornado.netutil.bind_sockets(port, address=host)
    except OSError as e:
        raise OSError(f"cannot listen for REST on {host}:{port}: {e.strerror}") from e
    front = _Front(manager, metrics, max_body_bytes, max_in_flight, auth_token)
    server = RestServer(front, sockets, ssl_context)
    return server, sockets[0].getsockname()[1]
