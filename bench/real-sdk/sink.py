#!/usr/bin/env python3
"""A local OTLP/HTTP sink: keeps what real exporters POST, in forms cartscope reads.

    sink.py --out-dir DIR --port-file FILE [--proto-json FILE] [--timeout SECONDS]

Binds 127.0.0.1 on a free port, writes the port to FILE once it listens, and accepts POSTs to
/v1/traces (and /v1/metrics and /v1/logs, kept beside them as metrics.* and logs.*, in the
same forms). Each request body, after undoing gzip or deflate Content-Encoding and chunked
transfer encoding, is appended to:

- DIR/traces.jsonl for JSON bodies: one body per line, compact (a body with a newline in it
  is re-serialised compactly);
- DIR/traces.binpb for protobuf bodies: the raw bytes, each preceded by its length as a
  4-byte big-endian integer (the Collector file exporter's framed form);
- with --proto-json, also FILE: each protobuf body converted to protobuf's JSON mapping with
  google.protobuf.json_format (opentelemetry-proto's ExportTraceServiceRequest), one message
  per line; metrics and logs bodies (ExportMetricsServiceRequest, ExportLogsServiceRequest)
  go the same way to metrics.jsonl and logs.jsonl in FILE's folder.

Answers 200 with an empty Export*ServiceResponse (an empty body for protobuf, `{}` for JSON).
Stops on SIGTERM or SIGINT, or after --timeout seconds, flushing its files. Only the standard
library, plus opentelemetry-proto for --proto-json.
"""

import argparse
import gzip
import http.server
import json
import os
import signal
import socketserver
import struct
import sys
import threading
import zlib


class Sink:
    def __init__(self, out_dir, proto_json):
        self.out_dir = out_dir
        self.lock = threading.Lock()
        self.files = {}
        self.proto_json = proto_json
        self.requests = 0
        self.errors = []
        self.to_json = None
        if proto_json:
            from google.protobuf import json_format
            from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
            from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

            def to_json(signal_name, body):
                cls = {
                    "traces": trace_service_pb2.ExportTraceServiceRequest,
                    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
                    "logs": logs_service_pb2.ExportLogsServiceRequest,
                }[signal_name]
                msg = cls()
                msg.ParseFromString(body)
                text = json_format.MessageToJson(msg, indent=None)
                # MessageToJson writes one line with ", " and ": "; the same document, compact.
                return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)

            self.to_json = to_json

    def file(self, name):
        f = self.files.get(name)
        if f is None:
            path = name if os.path.isabs(name) else os.path.join(self.out_dir, name)
            f = self.files[name] = open(path, "ab")
        return f

    def keep(self, signal_name, content_type, body):
        """Appends one request body; returns (response content type, response body)."""
        if "json" in content_type:
            if b"\n" in body or b"\r" in body:
                body = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
            else:
                json.loads(body)  # refuse what is not JSON
            with self.lock:
                self.file(f"{signal_name}.jsonl").write(body + b"\n")
                self.requests += 1
            return "application/json", b"{}"
        if "protobuf" in content_type:
            line = self.to_json(signal_name, body).encode() + b"\n" if self.to_json else None
            with self.lock:
                self.file(f"{signal_name}.binpb").write(struct.pack(">I", len(body)) + body)
                if line is not None:
                    target = self.proto_json
                    if signal_name != "traces":
                        target = os.path.join(os.path.dirname(self.proto_json), f"{signal_name}.jsonl")
                    self.file(target).write(line)
                self.requests += 1
            return "application/x-protobuf", b""
        raise ValueError(f"unsupported Content-Type {content_type!r}")

    def close(self):
        with self.lock:
            for f in self.files.values():
                f.close()
            self.files = {}


def read_body(h):
    """The request body: Content-Length or chunked, then Content-Encoding undone."""
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        parts = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            parts.append(h.rfile.read(size))
            h.rfile.readline()
        body = b"".join(parts)
    else:
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
    enc = h.headers.get("Content-Encoding", "identity").lower().strip()
    if enc == "gzip":
        body = gzip.decompress(body)
    elif enc == "deflate":
        try:
            body = zlib.decompress(body)
        except zlib.error:
            body = zlib.decompress(body, -zlib.MAX_WBITS)
    elif enc not in ("", "identity"):
        raise ValueError(f"unsupported Content-Encoding {enc!r}")
    return body


def handler_for(sink):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 15  # an idle keep-alive connection is closed after this, so stopping is bounded

        def reply(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            path = self.path.split("?")[0]
            signal_name = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}.get(path)
            try:
                body = read_body(self)
            except Exception as e:  # noqa: BLE001 - a bad request is reported, not fatal
                sink.errors.append(f"{path}: {e}")
                self.reply(400, "text/plain", str(e).encode())
                return
            if signal_name is None:
                self.reply(404, "text/plain", b"not found")
                return
            try:
                ctype, out = sink.keep(signal_name, self.headers.get("Content-Type", ""), body)
            except Exception as e:  # noqa: BLE001
                sink.errors.append(f"{path}: {e}")
                self.reply(400, "text/plain", str(e).encode())
                return
            self.reply(200, ctype, out)

        def log_message(self, fmt, *args):
            pass  # quiet on success

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    # server_close() waits for the requests in flight, so nothing is cut off mid-write.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--proto-json")
    ap.add_argument("--timeout", type=float, default=3600.0)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    sink = Sink(a.out_dir, a.proto_json)
    server = Server(("127.0.0.1", 0), handler_for(sink))
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, a.port_file)
    timed_out = not stop.wait(a.timeout)
    server.shutdown()
    server.server_close()
    sink.close()
    if sink.errors:
        for e in sink.errors[:10]:
            print(f"sink.py: bad request: {e}", file=sys.stderr)
        sys.exit(1)
    if timed_out:
        print(f"sink.py: stopped after its {a.timeout:.0f} s timeout", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
