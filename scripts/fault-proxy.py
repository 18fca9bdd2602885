#!/usr/bin/env python3
"""Test helper (see `through_fault_proxy` in storage/tests/object_store.rs): an HTTP proxy in
front of an S3 server that forwards every request, but for a PUT (or multipart completion) whose
path contains `once500` answers the first one with 500 after the server applied it, and for
`always500` answers every one with 500 after forwarding it. Prints its port.

    python3 scripts/fault-proxy.py 127.0.0.1 <S3 server port> &   # prints the proxy's port
    STRATA_TEST_FAULT_PROXY=http://127.0.0.1:<proxy port> cargo test -p strata-storage s3_fault
"""
import http.client
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

upstream_host, upstream_port = sys.argv[1], int(sys.argv[2])
seen = set()
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        sys.stderr.write("proxy: %s %s\n" % (self.command, self.path))

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(upstream_host, upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items()}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        fail = False
        if self.command == "PUT" or (self.command == "POST" and "uploadId" in self.path):
            with lock:
                if "always500" in self.path:
                    fail = True
                elif "once500" in self.path and self.path not in seen:
                    seen.add(self.path)
                    fail = True
        if fail:
            err = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            self.send_response(500)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(err)))
            self.end_headers()
            self.wfile.write(err)
            return
        self.send_response(resp.status)
        length = str(len(data))
        for k, v in resp.getheaders():
            if k.lower() in ("transfer-encoding", "connection", "content-length"):
                if self.command == "HEAD" and k.lower() == "content-length":
                    length = v  # a HEAD has no body; its length is the object's
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
