#!/usr/bin/env python3
"""Replays a shop plan (plan.py) through the real OpenTelemetry Python SDK.

    shop.py --plan PLAN.json --endpoint http://127.0.0.1:PORT/v1/traces --ids IDS.json

One TracerProvider per service (its own Resource, BatchSpanProcessor and OTLP/HTTP protobuf
exporter), every span with its planned start and end time, in the plan's time order. Writes
the trace and span ids the SDK chose to IDS.json, for truth.py. Exits non-zero when the SDK
logs any warning or error (a dropped span, a failed export).
"""

import argparse
import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode

KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
# Spans ended between forced flushes: each provider's queue (2048 by default) never fills.
FLUSH_EVERY = 1024


class Problems(logging.Handler):
    """Everything the SDK logs at warning level or worse is a failure of the run."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen = []

    def emit(self, record):
        self.seen.append(f"{record.levelname.lower()}: {record.name}: {record.getMessage()}")


def exception_class(name):
    """An exception class as the payment service would raise it (exception.type is
    `payment.gateway.NAME`)."""
    return type(name, (Exception,), {"__module__": "payment.gateway", "__qualname__": name})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--ids", required=True)
    a = ap.parse_args()

    problems = Problems()
    logging.getLogger().addHandler(problems)
    logging.getLogger().setLevel(logging.WARNING)

    with open(a.plan) as f:
        plan = json.load(f)
    providers = {}
    tracers = {}
    for service, version in plan["services"].items():
        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": service,
                    "service.version": version,
                    "deployment.environment.name": "bench",
                }
            )
        )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=a.endpoint)))
        providers[service] = provider
        tracers[service] = provider.get_tracer("cartscope.shop", "1.0.0")

    errors = {}
    traces = plan["traces"]
    live = [[None] * len(t) for t in traces]
    contexts = [[None] * len(t) for t in traces]
    ended = 0
    for what, ti, si in plan["events"]:
        s = traces[ti][si]
        if what == 1:
            if s["parent"] >= 0:
                parent = trace.set_span_in_context(NonRecordingSpan(contexts[ti][s["parent"]]), Context())
            else:
                parent = Context()
            attributes = {}
            for k, ty, v in s["attributes"]:
                attributes[k] = float(v) if ty == "double" else int(v) if ty == "int" else v
            span = tracers[s["service"]].start_span(
                s["name"],
                context=parent,
                kind=KINDS[s["kind"]],
                attributes=attributes,
                start_time=int(s["start"]),
            )
            live[ti][si] = span
            contexts[ti][si] = span.get_span_context()
        else:
            span = live[ti][si]
            live[ti][si] = None
            for e in s.get("events", []):
                cls = errors.get(e["type"]) or errors.setdefault(e["type"], exception_class(e["type"]))
                span.record_exception(cls(e["message"]), timestamp=int(e["time"]))
            if "error" in s:
                span.set_status(Status(StatusCode.ERROR, s["error"]))
            span.end(end_time=int(s["end"]))
            ended += 1
            if ended % FLUSH_EVERY == 0:
                for p in providers.values():
                    if not p.force_flush(30_000):
                        problems.seen.append("error: force_flush timed out")
    for p in providers.values():
        p.shutdown()

    ids = {
        "trace_ids": [format(c[0].trace_id, "032x") for c in contexts],
        "span_ids": [[format(x.span_id, "016x") for x in c] for c in contexts],
    }
    with open(a.ids, "w") as f:
        json.dump(ids, f, separators=(",", ":"))
    if problems.seen:
        for p in problems.seen[:10]:
            print(f"shop.py: the SDK said: {p}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
