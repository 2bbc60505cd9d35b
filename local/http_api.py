"""The HTTP API on localhost: serverless.yml's `httpApi` routes, answered by the unmodified handlers.

Each request is turned into the API Gateway HTTP API (payload 2.0) event AWS would send — route
key, path parameters, lower-cased headers, raw query string, body — and the function the route
belongs to in serverless.yml answers it; its `statusCode`, headers and body go back on the wire.
A request no route matches gets API Gateway's own 404 `{"message":"Not Found"}`, and one whose
function raised (or whose runtime died) a 500 `{"message":"Internal Server Error"}`, as API
Gateway answers a failed Lambda integration. Requests are answered concurrently: `invoke` runs
each in its own thread (the live stack's functions answer in worker processes, one invocation
each). The same server serves the status page (`local/page/`) at `/`, so the page polls the API
from its own origin.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from local import serverless
from local.lambda_events import http_event

log = logging.getLogger("local-http-api")
PAGE = Path(__file__).resolve().parent / "page"
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
Invoke = Callable[[str, dict[str, Any]], Any]


class Route:
    def __init__(self, method: str, template: str, function: str) -> None:
        self.method = method
        self.template = template
        self.function = function
        self.key = f"{method} {template}"
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self._regex = re.compile(pattern)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        found = self._regex.fullmatch(path)
        return found.groupdict() if found else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # One thread per connection; the functions answer a few requests at once each (their worker
    # processes, local.http_workers), and the others wait for a free worker. A burst of clients
    # (the bench's 32 POSTs at once) can still outrun the accept loop: the default backlog of 5
    # reset connections, so the backlog is deep.
    request_queue_size = 256
    routes: list[Route]
    invoke: Invoke


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "drs-reconciler-local"

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, QUERY, FOO...) is answered like API Gateway answers a
        request no route matches (404), not with http.server's own 501 page."""
        if name.startswith("do_"):
            return self.do_GET
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _answer(self) -> None:
        server = cast(_Server, self.server)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        if self.command in ("GET", "HEAD") and url.path in _STATIC:
            name, kind = _STATIC[url.path]
            self._send(200, (PAGE / name).read_bytes(), {"Content-Type": kind, "Cache-Control": "no-cache"})
            return
        for route in server.routes:
            parameters = route.match(self.command, url.path)
            if parameters is not None:
                break
        else:
            self._send(404, b'{"message":"Not Found"}', {"Content-Type": "application/json"})
            return
        try:
            body: str | None = raw.decode("utf-8") if raw else None
            encoded = False
        except UnicodeDecodeError:
            body, encoded = base64.b64encode(raw).decode(), True
        event = http_event(
            self.command,
            url.path,
            body=body,
            headers=dict(self.headers.items()),
            route=route.key,
            path_parameters=parameters or None,
            query=url.query,
            source_ip=self.client_address[0],
        )
        event["isBase64Encoded"] = encoded
        try:
            reply = server.invoke(route.function, event)
        except Exception:
            log.exception("%s raised", route.function)
            self._send(500, b'{"message":"Internal Server Error"}', {"Content-Type": "application/json"})
            return
        self._reply(reply)

    def _reply(self, reply: Any) -> None:
        if not isinstance(reply, dict) or "statusCode" not in reply:  # payload 2.0 shorthand
            self._send(200, json.dumps(reply).encode(), {"Content-Type": "application/json"})
            return
        text = reply.get("body") or ""
        payload = base64.b64decode(text) if reply.get("isBase64Encoded") else text.encode()
        self._send(int(reply["statusCode"]), payload, dict(reply.get("headers") or {}))

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() != "content-length":
                self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(payload)


class LocalHttpApi:
    """Serves the routes and the page on 127.0.0.1 (a free port by default) from a daemon thread."""

    def __init__(self, invoke: Invoke, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = _Server((host, port), _Handler)
        self._httpd.routes = [Route(*spec) for spec in serverless.http_routes()]
        self._httpd.invoke = invoke
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # how soon `stop` is noticed (the default is 0.5 s)
            name="http-api",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
