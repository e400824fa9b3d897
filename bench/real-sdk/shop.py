#!/usr/bin/env python3
"""Replays a shop plan (plan.py) through the real OpenTelemetry Python SDK.

    shop.py --plan PLAN.json --endpoint http://127.0.0.1:PORT/v1/traces --ids IDS.json
            [--logs-endpoint http://127.0.0.1:PORT/v1/logs]
            [--metrics-endpoint http://127.0.0.1:PORT/v1/metrics] [--sample-rate P]

One TracerProvider per service (its own Resource, BatchSpanProcessor and OTLP/HTTP protobuf
exporter), every span with its planned start and end time, in the plan's time order. Writes
the trace and span ids the SDK chose to IDS.json, for truth.py. Exits non-zero when the SDK
logs any warning or error (a dropped span, a failed export).

With --logs-endpoint, the services also log as a shop's would (shoplogs.py: an error when an
operation fails, a warning when it is slow, `order placed` on checkout completion), through
Python's standard `logging`: one logger per service (`shop.<service>`) whose handler is the
SDK's LoggingHandler on a LoggerProvider per service (the same Resource as its traces, a
BatchLogRecordProcessor with default settings, the OTLP/HTTP protobuf log exporter). Each
line is logged inside its span (the span is the current one), so the SDK writes that span's
trace and span ids on the record, at the line's planned time (a filter on the handler sets
the record's `created`; the SDK reads its timestamp from there).

With --metrics-endpoint, the cart service counts its carts' stage transitions as the reference
instrumentation does: a counter `cart.state.transitions` (unit `{transition}`) with attribute
`cart.stage`, +1 when the span that moves a cart into a stage ends (the plan marks them: the
first add, the start of checkout, the completion). A MeterProvider with the cart service's
Resource, a PeriodicExportingMetricReader over the OTLP/HTTP protobuf metric exporter, the
SDK's default (cumulative) temporality; the reader is flushed at every minute of the shop's
time. The SDK stamps points with time.time_ns(), so its metrics modules are given the shop's
clock instead (the aggregation, temporality and encoding are the SDK's own).

With --sample-rate P, every TracerProvider samples with the SDK's
ParentBased(TraceIdRatioBased(P)) (as `OTEL_TRACES_SAMPLER=parentbased_traceidratio`): unsampled traces are not exported. IDS.json then says
which traces were sampled. Metrics and logs are not sampled.
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
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode

import shoplogs

KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
MINUTE_NS = 60 * 1_000_000_000
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


class Clock(logging.Filter):
    """Stamps each record with the shop's time (ns) instead of the wall clock."""

    def __init__(self):
        super().__init__()
        self.now_ns = 0

    def filter(self, record):
        record.created = self.now_ns / 1e9
        return True


def log_pipelines(plan, resources, endpoint):
    """Per service: a Python logger whose handler is the SDK's LoggingHandler on its own
    LoggerProvider. Returns (loggers by service, providers, clock)."""
    import warnings

    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    clock = Clock()
    loggers = {}
    providers = {}
    for service in plan["services"]:
        provider = LoggerProvider(resource=resources[service])
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint)))
        with warnings.catch_warnings():
            # 1.45: "LoggingHandler in opentelemetry-sdk is deprecated" (for the one in
            # opentelemetry-instrumentation-logging); it still works as before.
            warnings.simplefilter("ignore", DeprecationWarning)
            handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
        handler.addFilter(clock)
        log = logging.getLogger("shop." + service)
        log.setLevel(logging.INFO)
        log.propagate = False  # the shop's own warnings are not the SDK's problems
        log.addHandler(handler)
        loggers[service] = log
        providers[service] = provider
    return loggers, providers, clock


class ShopClock:
    """The shop's time, in ns, for the SDK's metrics modules."""

    def __init__(self, ns):
        self.now_ns = ns

    def __call__(self):
        return self.now_ns


def metric_pipeline(resource, endpoint, start_ns):
    """The cart service's MeterProvider, its transition counter, and the shop's clock."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics._internal import (
        _view_instrument_match,
        instrument,
        metric_reader_storage,
    )
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    clock = ShopClock(start_ns)
    # Where the SDK reads the time of a measurement and of a collection (not its deadlines).
    for module in (instrument, metric_reader_storage, _view_instrument_match):
        module.time_ns = clock
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint), export_interval_millis=10**9
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    counter = provider.get_meter("cartscope.shop", "1.0.0").create_counter(
        "cart.state.transitions", unit="{transition}", description="Cart lifecycle state transitions"
    )
    return provider, counter, clock


def write_log(log, r):
    """One line, as the service's code would log it."""
    if r["kind"] == "failed":
        log.error("%s failed: %s", *r["args"])
    elif r["kind"] == "slow":
        log.warning("%s slow: took %d ms", *r["args"])
    else:
        log.info("order placed")


def event_time(traces, what, ti, si):
    s = traces[ti][si]
    return int(s["start"] if what == 1 else s["end"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--logs-endpoint")
    ap.add_argument("--metrics-endpoint")
    ap.add_argument("--sample-rate", type=float)
    a = ap.parse_args()

    problems = Problems()
    logging.getLogger().addHandler(problems)
    logging.getLogger().setLevel(logging.WARNING)

    with open(a.plan) as f:
        plan = json.load(f)
    providers = {}
    tracers = {}
    resources = {}
    for service, version in plan["services"].items():
        resources[service] = Resource.create(
            {
                "service.name": service,
                "service.version": version,
                "deployment.environment.name": "bench",
            }
        )
        sampler = None
        if a.sample_rate is not None:
            sampler = ParentBased(TraceIdRatioBased(a.sample_rate))
        provider = TracerProvider(resource=resources[service], sampler=sampler)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=a.endpoint)))
        providers[service] = provider
        tracers[service] = provider.get_tracer("cartscope.shop", "1.0.0")

    errors = {}
    traces = plan["traces"]
    live = [[None] * len(t) for t in traces]
    contexts = [[None] * len(t) for t in traces]
    ended = 0
    log_providers = {}
    logs = []
    if a.logs_endpoint:
        loggers, log_providers, clock = log_pipelines(plan, resources, a.logs_endpoint)
        logs = shoplogs.plan_logs(plan)
    next_log = 0
    meters = None
    if a.metrics_endpoint:
        window_start = min(int(t[0]["start"]) for t in traces) if traces else int(plan["end_ns"])
        first_minute = window_start - window_start % MINUTE_NS
        meters = metric_pipeline(resources["cart"], a.metrics_endpoint, first_minute)
        next_flush = first_minute + MINUTE_NS

    def flush_metrics_before(t):
        """Collects and exports the counter at every minute of the shop's time up to t."""
        nonlocal next_flush
        provider, _, clock = meters
        while next_flush <= t:
            clock.now_ns = next_flush
            if not provider.force_flush(30_000):
                problems.seen.append("error: the metrics' force_flush timed out")
            next_flush += MINUTE_NS

    def write_logs_before(t):
        """Writes the lines due before t, each inside its (live) span."""
        nonlocal next_log
        while next_log < len(logs) and logs[next_log]["time"] < t:
            r = logs[next_log]
            next_log += 1
            span = live[r["trace"]][r["span"]]
            if span is None:
                problems.seen.append(f"error: a log line outside its span: {r}")
                continue
            clock.now_ns = r["time"]
            with trace.use_span(span, end_on_exit=False):
                write_log(loggers[r["service"]], r)

    for what, ti, si in plan["events"]:
        if logs:
            write_logs_before(event_time(traces, what, ti, si))
        if meters:
            flush_metrics_before(event_time(traces, what, ti, si))
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
            if meters and s.get("transition"):
                _, counter, clock = meters
                clock.now_ns = int(s["end"])
                counter.add(1, {"cart.stage": s["transition"]})
            ended += 1
            if ended % FLUSH_EVERY == 0:
                for p in list(providers.values()) + list(log_providers.values()):
                    if not p.force_flush(30_000):
                        problems.seen.append("error: force_flush timed out")
    if logs:
        write_logs_before(int(plan["end_ns"]))  # lines of spans still open at the end
        if next_log != len(logs):
            problems.seen.append(f"error: {len(logs) - next_log} log lines not written")
    if meters:
        flush_metrics_before(int(plan["end_ns"]))
        meters[0].shutdown()
    for p in providers.values():
        p.shutdown()
    for p in log_providers.values():
        p.shutdown()

    ids = {
        "trace_ids": [format(c[0].trace_id, "032x") for c in contexts],
        "span_ids": [[format(x.span_id, "016x") for x in c] for c in contexts],
    }
    if a.sample_rate is not None:
        ids["sampled"] = [bool(c[0].trace_flags.sampled) for c in contexts]
    with open(a.ids, "w") as f:
        json.dump(ids, f, separators=(",", ":"))
    if problems.seen:
        for p in problems.seen[:10]:
            print(f"shop.py: the SDK said: {p}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
