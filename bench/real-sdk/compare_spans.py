#!/usr/bin/env python3
"""Compares what cartscope loaded from an export with the export itself, span by span.

    compare_spans.py EXPORT CARTSCOPE [--show N]

EXPORT is a traces file make.sh wrote (OTLP/JSON lines or length-framed protobuf, optionally
.gz); CARTSCOPE the cartscope binary. Runs `cartscope query --no-replay` for the spans and
the span events, reads EXPORT itself (protobuf with opentelemetry-proto, JSON with the
standard library; ids in hex or base64) and checks every span: parent, name, service, kind,
start and end (to the microsecond, as cartscope's tables keep them), duration, status code and
message, attributes and resource attributes (as the strings cartscope's tables hold: integers
in decimal, doubles in shortest form, booleans as true/false), scope name; and every event:
name, time, attributes. Prints the agreement and the first differences; exits 1 on any.
"""

import argparse
import base64
import gzip
import json
import re
import struct
import subprocess
import sys

HEX = re.compile(r"^[0-9a-fA-F]*$")
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}


def shortest(x):
    r = repr(float(x))
    if "e" in r:
        m, e = r.split("e")
        r = f"{m}e{int(e)}"
    return r[:-2] if r.endswith(".0") else r


def id_hex(v, size):
    if not v:
        return None
    if isinstance(v, bytes):
        return v.hex()
    if len(v) == 2 * size and HEX.match(v):
        return v.lower()
    return base64.b64decode(v).hex()


def enum(v, names, prefix):
    if isinstance(v, int):
        return names.get(v)
    if isinstance(v, str) and v.isdigit():
        return names.get(int(v))
    return v.removeprefix(prefix).lower() if v else names[0]


def json_value(v):
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return str(int(v["intValue"]))
    if "doubleValue" in v:
        return shortest(v["doubleValue"])
    if "boolValue" in v:
        return "true" if v["boolValue"] else "false"
    return json.dumps(v, separators=(",", ":"))


def pb_value(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return shortest(v.double_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    return repr(v)


def open_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_export(path):
    """{(trace, span): span dict} and {(trace, span): [event dict]} read from the file itself."""
    spans, events = {}, {}
    data = open_bytes(path)
    if data[:1] == b"{":
        for line in data.decode().splitlines():
            if not line.strip():
                continue
            for rs in json.loads(line).get("resourceSpans", []):
                res = {kv["key"]: json_value(kv["value"]) for kv in rs.get("resource", {}).get("attributes", [])}
                for ss in rs.get("scopeSpans", []):
                    scope = ss.get("scope", {}).get("name")
                    for s in ss.get("spans", []):
                        key = (id_hex(s["traceId"], 16), id_hex(s["spanId"], 8))
                        st = s.get("status", {})
                        start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
                        spans[key] = {
                            "parent_span_id": id_hex(s.get("parentSpanId"), 8),
                            "operation_name": s["name"],
                            "service_name": res.get("service.name"),
                            "span_kind": enum(s.get("kind", 0), KINDS, "SPAN_KIND_"),
                            "start_us": start // 1000,
                            "end_us": end // 1000,
                            "duration_ms": (end - start) / 1e6,
                            "status_code": enum(st.get("code", 0), STATUS, "STATUS_CODE_"),
                            "status_message": st.get("message") or None,
                            "attributes": {kv["key"]: json_value(kv["value"]) for kv in s.get("attributes", [])},
                            "resource_attributes": res,
                            "scope_name": scope,
                        }
                        events[key] = [
                            {
                                "name": e.get("name"),
                                "time_us": int(e["timeUnixNano"]) // 1000,
                                "attributes": {kv["key"]: json_value(kv["value"]) for kv in e.get("attributes", [])},
                            }
                            for e in s.get("events", [])
                        ]
        return spans, events
    from opentelemetry.proto.trace.v1 import trace_pb2

    off = 0
    while off < len(data):
        (n,) = struct.unpack(">I", data[off : off + 4])
        msg = trace_pb2.TracesData()
        msg.ParseFromString(data[off + 4 : off + 4 + n])
        off += 4 + n
        for rs in msg.resource_spans:
            res = {kv.key: pb_value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    key = (s.trace_id.hex(), s.span_id.hex())
                    spans[key] = {
                        "parent_span_id": s.parent_span_id.hex() or None,
                        "operation_name": s.name,
                        "service_name": res.get("service.name"),
                        "span_kind": KINDS[s.kind],
                        "start_us": s.start_time_unix_nano // 1000,
                        "end_us": s.end_time_unix_nano // 1000,
                        "duration_ms": (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6,
                        "status_code": STATUS[s.status.code],
                        "status_message": s.status.message or None,
                        "attributes": {kv.key: pb_value(kv.value) for kv in s.attributes},
                        "resource_attributes": res,
                        "scope_name": ss.scope.name or None,
                    }
                    events[key] = [
                        {
                            "name": e.name,
                            "time_us": e.time_unix_nano // 1000,
                            "attributes": {kv.key: pb_value(kv.value) for kv in e.attributes},
                        }
                        for e in s.events
                    ]
    return spans, events


def micros(t):
    import calendar
    import datetime

    day, _, rest = t.rstrip("Z").partition("T")
    hms, _, frac = rest.partition(".")
    d = datetime.datetime.strptime(day + "T" + hms, "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(d.timetuple()) * 1_000_000 + int((frac + "000000")[:6])


def query(binary, path, sql):
    out = subprocess.run(
        [binary, "query", "--no-replay", "--strict", "--no-progress", "--format", "ndjson", "--data", path, "-e", sql],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        sys.exit(f"compare_spans.py: cartscope query failed:\n{out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export")
    ap.add_argument("cartscope")
    ap.add_argument("--show", type=int, default=20)
    a = ap.parse_args()
    want_spans, want_events = read_export(a.export)
    got_spans = {}
    for r in query(a.cartscope, a.export, "SELECT trace_id, span_id, parent_span_id, operation_name, service_name, "
                   "span_kind, start_time, end_time, duration_ms, status_code, status_message, attributes, "
                   "resource_attributes, scope_name FROM observed_traces"):
        key = (r["trace_id"], r["span_id"])
        got_spans[key] = {
            "parent_span_id": r.get("parent_span_id") or None,
            "operation_name": r.get("operation_name"),
            "service_name": r.get("service_name"),
            "span_kind": r.get("span_kind"),
            "start_us": micros(r["start_time"]),
            "end_us": micros(r["end_time"]),
            "duration_ms": r.get("duration_ms"),
            "status_code": r.get("status_code"),
            "status_message": r.get("status_message") or None,
            "attributes": r.get("attributes") or {},
            "resource_attributes": r.get("resource_attributes") or {},
            "scope_name": r.get("scope_name"),
        }
    got_events = {}
    for r in query(a.cartscope, a.export, "SELECT trace_id, span_id, timestamp, name, attributes FROM span_events"):
        got_events.setdefault((r["trace_id"], r["span_id"]), []).append(
            {"name": r.get("name"), "time_us": micros(r["timestamp"]), "attributes": r.get("attributes") or {}}
        )
    diffs = []
    per_field = {}
    for key, w in want_spans.items():
        g = got_spans.pop(key, None)
        if g is None:
            diffs.append(f"{key}: not loaded")
            continue
        for field, wv in w.items():
            gv = g[field]
            ok = abs(gv - wv) <= 1e-6 if field == "duration_ms" and gv is not None else gv == wv
            if not ok:
                per_field[field] = per_field.get(field, 0) + 1
                diffs.append(f"{key[0]}/{key[1]} {w['operation_name']}: {field} export {wv!r} cartscope {gv!r}")
        we = sorted(want_events.get(key, []), key=lambda e: (e["time_us"], e["name"] or ""))
        ge = sorted(got_events.pop(key, []), key=lambda e: (e["time_us"], e["name"] or ""))
        if we != ge:
            per_field["events"] = per_field.get("events", 0) + 1
            diffs.append(f"{key[0]}/{key[1]} {w['operation_name']}: events export {we!r} cartscope {ge!r}")
    for key in got_spans:
        diffs.append(f"{key}: loaded, not in the export")
    for key in got_events:
        diffs.append(f"{key}: events loaded for a span not in the export")
    bad = {d.split(" ")[0] for d in diffs}
    n = len(want_spans)
    print(f"{n - len(bad & {f'{k[0]}/{k[1]}' for k in want_spans})} of {n} spans loaded as exported "
          f"({sum(len(v) for v in want_events.values())} events)")
    for k, v in sorted(per_field.items()):
        print(f"  {k}: {v} differ")
    for d in diffs[: a.show]:
        print(f"  {d}")
    if len(diffs) > a.show:
        print(f"  ... {len(diffs)} differences in all")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
