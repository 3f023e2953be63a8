"""``backprop-bench live``: a local web page that trains on the project's kernels as you watch.

A small server from the standard library (``http.server``; server-sent events need nothing
more): ``GET /`` is the page, one self-contained document assembled from the package's
``live_assets`` (no file from another host); ``GET /events`` opens a page's session and streams
its snapshots; ``POST /command`` carries play, pause, step, reset, a new setup or a net to
display. Each page has its own :class:`Session`, ended when its stream closes.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qsl, urlsplit

from .live_session import Session

PROG = "backprop-bench"
MAX_BODY = 64 * 1024


def page() -> str:
    """The page: index.html with its stylesheet and script inlined, one self-contained file."""
    assets = resources.files("backprop_bench.bench") / "live_assets"
    html = (assets / "index.html").read_text(encoding="utf-8")
    css = (assets / "live.css").read_text(encoding="utf-8")
    js = (assets / "live.js").read_text(encoding="utf-8")
    return html.replace("/*LIVE_CSS*/", css).replace("//LIVE_JS", js)


class LiveServer(ThreadingHTTPServer):
    daemon_threads = True  # a page's stream never holds the process open

    def __init__(self, address, backend: str):
        if ":" in address[0]:  # an IPv6 address (::1, ::)
            self.address_family = socket.AF_INET6
        self.backend = backend
        self.sessions: dict[str, Session] = {}
        self.sessions_lock = threading.Lock()
        self.page = page().encode("utf-8")
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: LiveServer

    def log_message(self, format, *args):  # the terminal shows the URL, not every request
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: dict) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send(200, self.server.page, "text/html; charset=utf-8")
        elif url.path == "/events":
            self._stream(dict(parse_qsl(url.query, keep_blank_values=True)))
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self):
        if urlsplit(self.path).path != "/command":
            return self._send(404, b"not found", "text/plain")
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 < length <= MAX_BODY:
                raise ValueError(f"a command is a JSON object of at most {MAX_BODY} bytes")
            doc = json.loads(self.rfile.read(length))
            if not isinstance(doc, dict):
                raise ValueError("a command is a JSON object")
            with self.server.sessions_lock:
                session = self.server.sessions.get(str(doc.get("session")))
            if session is None:
                raise ValueError("this page's session has ended; reload the page")
            setup = doc.get("setup", {})
            if not isinstance(setup, dict):
                raise ValueError("setup must be an object of settings")
            session.command(str(doc.get("action")), {"setup": setup, "net": doc.get("net", "")})
        except ValueError as error:  # json.JSONDecodeError is one
            # a refused setting is an answer, not a failed request (which browsers log as errors)
            return self._json(200, {"ok": False, "error": str(error)})
        self._json(200, {"ok": True})

    def _stream(self, query: dict) -> None:
        session = Session(query, self.server.backend)
        session_id = secrets.token_hex(8)
        with self.server.sessions_lock:
            self.server.sessions[session_id] = session
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            for name, payload in session.events():
                if name == "ping":
                    data = ": ping\n\n"
                else:
                    if name == "setup":
                        payload = {**payload, "session": session_id}
                    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
                    data = f"event: {name}\ndata: {text}\n\n"
                self.wfile.write(data.encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the page went: its training ends with it
        finally:
            session.close()
            with self.server.sessions_lock:
                self.server.sessions.pop(session_id, None)


def default_backend() -> str:
    """numba when it imports, NumPy otherwise."""
    try:
        from backprop_bench.kernels import backend

        backend("numba")
    except ImportError:
        return "numpy"
    return "numba"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "live",
        help="train in a local web page: watch one net and a thousand seeded nets learn",
        description="Serve a page on this machine that trains on the project's kernels and "
        "shows the net, its decision boundary, its curves and a population of seeded nets as "
        "they learn. Prints the page's URL as its first line; Ctrl-C stops the server.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.add_argument("--backend", choices=("numba", "numpy"), help="kernels (default numba if it "
                   "imports, else numpy)")  # fmt: skip
    p.set_defaults(command=run)


def run(args) -> int:
    """Serve until Ctrl-C, which ends the process with status 130."""
    if not 0 <= args.port <= 65535:
        message = f"--port must be between 0 and 65535, got {args.port}"
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    if not args.host.strip():
        # an empty host is every interface of the machine: never a silent default (an unset
        # shell variable would put the trainer on the network)
        print(f"{PROG}: error: --host is empty; give 127.0.0.1 (this machine only, the "
              "default) or 0.0.0.0 to listen on every interface", file=sys.stderr)  # fmt: skip
        return 2
    try:
        server = LiveServer((args.host, args.port), args.backend or default_backend())
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {reason}; choose "
              "another --port, or a --host of this machine", file=sys.stderr)  # fmt: skip
        return 2
    host, port = server.server_address[:2]
    url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    print(url, flush=True)
    print(f"training with the {server.backend} kernels; Ctrl-C stops the server", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        server.server_close()
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Nothing is left to write, and the interpreter's teardown (matplotlib, scipy, training
        # threads in the middle of a kernel) takes about half a second: Ctrl-C ends it now.
        os._exit(130)
    server.server_close()
    return 0
