#!/usr/bin/env python3
"""truth.json for one SDK run: the plan's truth with the trace ids that SDK chose.

    truth.py --plan PLAN.json --ids IDS.json --export FILE --out truth.json [--logs LOGS]
             [--metrics METRICS]

First checks the export against the plan, independently of cartscope: every span the plan
says was exported is in FILE exactly once, under the ids the driver captured, with its planned
name and its start and end time to the nanosecond, and nothing else is there. Any difference
fails the run. Then writes the truth in `cartscope generate`'s format (version 1: generator,
carts, totals).

FILE is OTLP/JSON lines (ids in hex, or base64 as protobuf's JSON mapping writes them) or
length-framed OTLP protobuf (.binpb; needs opentelemetry-proto).

With --logs (the log records shop.py --logs-endpoint wrote, in the same forms), also checks
them against the lines planned from the plan (shoplogs.py): every planned line exactly once,
in the span it was written in (its trace and span ids as the driver captured them), with its
time to the nanosecond, service, scope (the Python logger's name), severity text and number
and body; nothing else. Then each cart's line in truth.json ends with `log_count` (the log
records written in the cart's traces) and `last_log` (for an abandoned cart, its last warning
or error line up to its abandonment, `{"time", "severity", "body"}`; null when it has none and
for every cart not abandoned), and the totals with `log_records` and `log_severities` (records
by severity text).

When the SDK sampled the traces (IDS.json says which were), only the sampled traces' spans are
expected; the truth still describes every cart, with `exported_spans` in its totals. With
--metrics (shop.py --metrics-endpoint's counter, as OTLP/JSON lines), also checks that each
stage's points form one cumulative series ending at the plan's number of transitions into it,
and writes `transitions` (by stage) in the totals.
"""

import argparse
import base64
import datetime
import json
import math
import os
import re
import struct
import sys

import shoplogs

HEX = re.compile(r"^[0-9a-fA-F]*$")


def id_hex(v, size):
    if isinstance(v, bytes):
        return v.hex()
    if len(v) == 2 * size and HEX.match(v):
        return v.lower()
    return base64.b64decode(v).hex()


def json_docs(path):
    """Each JSON document of a file of JSON lines."""
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def frames(path):
    """Each body of a file of length-framed messages (4-byte big-endian length first)."""
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off < len(data):
        if off + 4 > len(data):
            raise ValueError(f"{path}: a truncated length at byte {off}")
        (n,) = struct.unpack(">I", data[off : off + 4])
        body = data[off + 4 : off + 4 + n]
        if len(body) != n:
            raise ValueError(f"{path}: a truncated frame at byte {off}")
        off += 4 + n
        yield body


def service_of_json(resource):
    for kv in resource.get("attributes", []):
        if kv["key"] == "service.name":
            return kv["value"].get("stringValue")
    return None


def service_of_proto(resource):
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return None


def spans_of_json(path):
    for doc in json_docs(path):
        for rs in doc.get("resourceSpans", []):
            service = service_of_json(rs.get("resource", {}))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    yield (
                        id_hex(s["traceId"], 16),
                        id_hex(s["spanId"], 8),
                        s["name"],
                        service,
                        int(s["startTimeUnixNano"]),
                        int(s["endTimeUnixNano"]),
                    )


def spans_of_framed(path):
    from opentelemetry.proto.trace.v1 import trace_pb2

    for body in frames(path):
        msg = trace_pb2.TracesData()
        msg.ParseFromString(body)
        for rs in msg.resource_spans:
            service = service_of_proto(rs.resource)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    yield (
                        s.trace_id.hex(),
                        s.span_id.hex(),
                        s.name,
                        service,
                        s.start_time_unix_nano,
                        s.end_time_unix_nano,
                    )


# protobuf's JSON mapping writes severityNumber as its enum name
SEVERITY_NUMBERS = {"SEVERITY_NUMBER_UNSPECIFIED": 0}
for _i, _name in enumerate(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]):
    for _j, _suffix in enumerate(["", "2", "3", "4"]):
        SEVERITY_NUMBERS[f"SEVERITY_NUMBER_{_name}{_suffix}"] = 4 * _i + _j + 1


def body_text(v):
    if "stringValue" not in v:
        raise ValueError(f"a log body that is not a string: {v}")
    return v["stringValue"]


def logs_of_json(path):
    """(trace id, span id, time, service, scope, severity text, severity number, body)."""
    for doc in json_docs(path):
        for rl in doc.get("resourceLogs", []):
            service = service_of_json(rl.get("resource", {}))
            for sl in rl.get("scopeLogs", []):
                scope = sl.get("scope", {}).get("name")
                for r in sl.get("logRecords", []):
                    n = r.get("severityNumber", 0)
                    yield (
                        id_hex(r.get("traceId", ""), 16),
                        id_hex(r.get("spanId", ""), 8),
                        int(r.get("timeUnixNano", 0)),
                        service,
                        scope,
                        r.get("severityText"),
                        SEVERITY_NUMBERS[n] if isinstance(n, str) else int(n),
                        body_text(r.get("body", {})),
                    )


def logs_of_framed(path):
    from opentelemetry.proto.logs.v1 import logs_pb2

    for body in frames(path):
        msg = logs_pb2.LogsData()
        msg.ParseFromString(body)
        for rl in msg.resource_logs:
            service = service_of_proto(rl.resource)
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    if r.body.WhichOneof("value") != "string_value":
                        raise ValueError(f"a log body that is not a string: {r.body}")
                    yield (
                        r.trace_id.hex(),
                        r.span_id.hex(),
                        r.time_unix_nano,
                        service,
                        sl.scope.name,
                        r.severity_text,
                        r.severity_number,
                        r.body.string_value,
                    )


def check_logs(plan, ids, logs, path):
    """Problems found comparing the exported log records with the planned lines."""
    want = {}
    for r in logs:
        key = (ids["trace_ids"][r["trace"]], ids["span_ids"][r["trace"]][r["span"]], r["time"])
        if key in want:
            raise ValueError(f"two planned log lines at {key}")
        want[key] = (r["service"], r["logger"], r["severity"], shoplogs.SEVERITIES[r["severity"]][1], r["body"])
    read = logs_of_framed if path.endswith(".binpb") else logs_of_json
    seen = set()
    problems = []
    planned, exported = {}, {}
    for w in want.values():
        planned[w[2]] = planned.get(w[2], 0) + 1
    for tid, sid, t, *got in read(path):
        exported[got[2]] = exported.get(got[2], 0) + 1
        key = (tid, sid, t)
        if key in seen:
            problems.append(f"log record {key} exported twice")
        seen.add(key)
        w = want.get(key)
        if w is None:
            problems.append(f"log record {key} {got} is not in the plan (or not in its span)")
        elif w != tuple(got):
            problems.append(f"log record {key}: exported {tuple(got)}, planned {w}")
    missing = [k for k in want if k not in seen]
    if missing:
        problems.append(f"{len(missing)} of {len(want)} planned log lines are not in the export, e.g. {missing[0]}")
    if planned != exported:
        problems.append(f"log records by severity text: exported {dict(sorted(exported.items()))}, planned {dict(sorted(planned.items()))}")
    return problems


def check_export(plan, ids, path):
    """Problems found comparing the export with the plan (empty: they agree)."""
    want = {}
    sampled = ids.get("sampled")
    for ti, spans in enumerate(plan["traces"]):
        tid = ids["trace_ids"][ti]
        if sampled is not None and not sampled[ti]:
            continue  # the SDK's sampler dropped this trace
        for si, s in enumerate(spans):
            if s["exported"]:
                want[(tid, ids["span_ids"][ti][si])] = (s["name"], s["service"], int(s["start"]), int(s["end"]))
    read = spans_of_framed if path.endswith(".binpb") else spans_of_json
    seen = set()
    problems = []
    for tid, sid, name, service, start, end in read(path):
        key = (tid, sid)
        if key in seen:
            problems.append(f"span {tid}/{sid} ({name}) exported twice")
        seen.add(key)
        w = want.get(key)
        if w is None:
            problems.append(f"span {tid}/{sid} ({name}) is not in the plan")
        elif w != (name, service, start, end):
            problems.append(f"span {tid}/{sid}: exported {(name, service, start, end)}, planned {w}")
    missing = [k for k in want if k not in seen]
    if missing:
        problems.append(f"{len(missing)} of {len(want)} planned spans are not in the export, e.g. {missing[0]}")
    return problems, len(seen)


def metric_points_of_json(path):
    """(stage, start, time, value) of each `cart.state.transitions` point of OTLP/JSON lines."""
    for doc in json_docs(path):
        for rm in doc.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    if m.get("name") != "cart.state.transitions":
                        continue
                    for p in m["sum"]["dataPoints"]:
                        stage = next(a["value"]["stringValue"] for a in p["attributes"] if a["key"] == "cart.stage")
                        value = int(p.get("asInt", 0)) if "asInt" in p else p["asDouble"]
                        yield stage, int(p.get("startTimeUnixNano", 0)), int(p["timeUnixNano"]), value


def check_metrics(plan, path):
    """Problems found comparing the counter's cumulative points with the plan's transitions
    (each stage's last value is its transitions; values never fall), and the counts."""
    want = {}
    for spans in plan["traces"]:
        for s in spans:
            if s["exported"] and s.get("transition"):
                want[s["transition"]] = want.get(s["transition"], 0) + 1
    last = {}
    problems = []
    for stage, start, t, v in metric_points_of_json(path):
        p = last.get(stage)
        if p is not None and (t < p[1] or v < p[2] or start != p[0]):
            problems.append(f"{stage}: a point at {t} ({v}) after one at {p[1]} ({p[2]}): not one cumulative series")
        last[stage] = (start, t, v)
    got = {k: v[2] for k, v in last.items()}
    if got != want:
        problems.append(f"transitions by stage: the counter says {dict(sorted(got.items()))}, the plan {dict(sorted(want.items()))}")
    return problems, want


def shortest(x):
    """A double in its shortest form, as cartscope's truth writes it: 30, not 30.0."""
    r = repr(float(x))
    if "e" in r:
        m, e = r.split("e")
        r = f"{m}e{int(e)}"
    return r[:-2] if r.endswith(".0") else r


def time_of(ns):
    """RFC 3339 with microseconds (truncated) and Z, as cartscope writes times."""
    s, rest = divmod(ns, 1_000_000_000)
    t = datetime.datetime.fromtimestamp(s, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (rest // 1000)


def round6(x):
    return math.floor(x * 1e6 + 0.5) / 1e6


def cart_line(t, trace_id, logs=None):
    # Field by field as cartscope's Truth serialises (the order of its struct).
    parts = [
        ("cart_id", json.dumps(t["cart_id"])),
        ("user_id", json.dumps(t["user_id"])),
        ("outcome", json.dumps(t["outcome"])),
        ("last_stage", json.dumps(t["last_stage"])),
        ("item_count", str(int(t["item_count"]))),
        ("value", shortest(t["value"])),
        ("first_seen", json.dumps(time_of(t["first_seen"]))),
        ("last_activity", json.dumps(time_of(t["last_activity"]))),
        ("last_operation", json.dumps(t["last_operation"])),
        ("last_op_duration_ms", shortest(t["last_op_duration_ms"])),
        ("last_op_status", json.dumps(t["last_op_status"])),
        ("last_trace_id", json.dumps(trace_id)),
        ("suspected_cause", json.dumps(t["suspected_cause"])),
        ("span_count", str(int(t["span_count"]))),
    ]
    if logs is not None:
        count, last = logs[t["cart_id"]]
        parts.append(("log_count", str(count)))
        if last is None:
            parts.append(("last_log", "null"))
        else:
            line = {"time": time_of(last["time"]), "severity": last["severity"], "body": last["body"]}
            parts.append(("last_log", json.dumps(line, separators=(",", ":"), ensure_ascii=False)))
    return "{" + ",".join(f'"{k}":{v}' for k, v in parts) + "}"


def write_truth(plan, ids, out, logs=None, transitions=None):
    totals = {"carts": 0, "converted": 0, "abandoned": 0, "active": 0, "recovered": 0}
    abandoned_value = 0.0
    causes = {}
    spans = 0
    lines = []
    per_cart = shoplogs.last_logs(plan, logs) if logs is not None else None
    for t in plan["truth"]:
        totals["carts"] += 1
        totals[t["outcome"]] += 1
        if t["outcome"] == "abandoned":
            abandoned_value += t["value"]
            causes[t["suspected_cause"]] = causes.get(t["suspected_cause"], 0) + 1
        spans += t["span_count"]
        lines.append(cart_line(t, ids["trace_ids"][t["last_trace"]], per_cart))
    decided = totals["abandoned"] + totals["converted"]
    totals["abandonment_rate"] = round6(totals["abandoned"] / decided) if decided else 0.0
    totals["abandoned_value"] = round(abandoned_value * 100.0) / 100.0
    totals["causes"] = dict(sorted(causes.items()))
    totals["spans"] = spans
    totals["noise_spans"] = plan["noise_spans"]
    totals["metric_points"] = 0
    if transitions is not None:
        totals["transitions"] = dict(sorted(transitions.items()))
    if ids.get("sampled") is not None:
        kept = [ti for ti, k in enumerate(ids["sampled"]) if k]
        totals["exported_spans"] = sum(1 for ti in kept for s in plan["traces"][ti] if s["exported"])
    if logs is not None:
        totals["log_records"] = len(logs)
        severities = {}
        for r in logs:
            severities[r["severity"]] = severities.get(r["severity"], 0) + 1
        totals["log_severities"] = dict(sorted(severities.items()))
    generator = {
        k: (plan["generator"][k] if k != "end" else time_of(int(plan["end_ns"])))
        for k in sorted(plan["generator"])
    }
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write('{"version":1,"generator":')
        f.write(json.dumps(generator, separators=(",", ":")))
        f.write(',"carts":[')
        for i, line in enumerate(lines):
            f.write("\n" if i == 0 else ",\n")
            f.write(line)
        f.write('\n],"totals":')
        f.write(json.dumps(totals, separators=(",", ":")))
        f.write("}\n")
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--export", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--logs")
    ap.add_argument("--metrics", help="the counter's points, OTLP/JSON lines")
    a = ap.parse_args()
    with open(a.plan) as f:
        plan = json.load(f)
    with open(a.ids) as f:
        ids = json.load(f)
    problems, _ = check_export(plan, ids, a.export)
    problems = [f"{a.export}: {p}" for p in problems]
    logs = None
    if a.logs:
        logs = shoplogs.plan_logs(plan)
        problems += [f"{a.logs}: {p}" for p in check_logs(plan, ids, logs, a.logs)]
    transitions = None
    if a.metrics:
        found, transitions = check_metrics(plan, a.metrics)
        problems += [f"{a.metrics}: {p}" for p in found]
    if problems:
        for p in problems[:10]:
            print(f"truth.py: {p}", file=sys.stderr)
        if len(problems) > 10:
            print(f"truth.py: ... {len(problems)} problems in all", file=sys.stderr)
        sys.exit(1)
    write_truth(plan, ids, a.out, logs, transitions)


if __name__ == "__main__":
    main()
