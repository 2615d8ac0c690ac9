"""An HTTP proxy on loopback that forwards to an upstream (moto's S3 server) and, while armed,
answers some requests with a fault instead: an S3 500 InternalError, or a reset connection.

    proxy = FaultyProxy("http://127.0.0.1:PORT").start()   # point AWS_ENDPOINT_URL at proxy.url
    proxy.arm("500", every=2, count=20, match=".parquet")  # every 2nd matching request fails, 20 in all
    proxy.arm("reset", match="manifest.json", methods=("PUT", "POST"))  # every upload of it, until healed
    proxy.heal()

The faults are counted (`injected`), so a test can show that they happened.
"""
from __future__ import annotations

import http.client
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
S3_INTERNAL_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
                     b"<Message>We encountered an internal error. Please try again.</Message>"
                     b"<RequestId>faulty-proxy</RequestId></Error>")


class FaultyProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.lock = threading.Lock()
        self.kind, self.every, self.left, self.match, self.methods = None, 1, 0, "", ()
        self.seen = 0  # matching requests since arm()
        self.injected = 0  # faults answered since start
        self.requests = 0  # requests since start
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect

            def log_message(self, *args) -> None:  # quiet
                pass

            def forward(self) -> None:
                body = self.read_body()
                fault = proxy.fault_for(self.command, self.path)
                if fault == "reset":
                    # SO_LINGER 0: close() sends an RST, as a dropped connection would
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "500":
                    self.send_response_only(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(S3_INTERNAL_ERROR)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(S3_INTERNAL_ERROR)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    if body is not None:
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response_only(response.status, response.reason)
                    for k, v in response.getheaders():
                        if k.lower() not in HOP_BY_HOP and not (k.lower() == "content-length" and self.command != "HEAD"):
                            self.send_header(k, v)
                    if self.command != "HEAD":
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            def read_body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else (b"" if self.command in ("PUT", "POST") else None)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FaultyProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def arm(self, kind: str, every: int = 1, count: int = 1 << 30, match: str = "", methods: tuple[str, ...] = ()) -> None:
        """Answer every `every`-th request whose path contains `match` (and whose method is one of
        `methods`, when given) with `kind` ("500" or "reset"), `count` times at most."""
        assert kind in ("500", "reset") and every >= 1
        with self.lock:
            self.kind, self.every, self.left, self.match, self.methods, self.seen = kind, every, count, match, methods, 0

    def heal(self) -> None:
        with self.lock:
            self.kind, self.left = None, 0

    def fault_for(self, method: str, path: str) -> str | None:
        with self.lock:
            self.requests += 1
            if self.kind is None or self.left <= 0 or self.match not in path or (self.methods and method not in self.methods):
                return None
            self.seen += 1
            if self.seen % self.every:
                return None
            self.left -= 1
            self.injected += 1
            return self.kind
