#!/usr/bin/env python3
"""A hand-written export with log-heavy traces, for error_before_abandonment's join of a
cart's events to the warning and error lines of their traces.

    make.py OUT_DIR [--carts N] [--spans S] [--warnings W]

Writes OUT_DIR/traces.jsonl and OUT_DIR/logs.jsonl (OTLP/JSON lines, one request per cart)
in the reference model's names. Every cart is abandoned with its payment failed: a trace
rooted at `cart.add_item`, then a checkout trace rooted at `cart.begin_checkout` holding S
database spans without `cart.id` (the cart's through their trace), `payment.authorize`
failing with a status message, and W warning lines then one ERROR line, the last of the
cart's lines. So each cart has S + 3 events, S + 2 of them in the trace with W + 1 lines.
Deterministic; standard library only. Replay it with --as-of 2026-11-20T12:00:00Z: the
carts start 10 s apart from 06:00, so those idle for the 30-minute threshold by then are
abandoned (1,980 of 2,000), the rest active. Up to about 2,000 spans and 3,000 warnings
the failed payment stays the cart's last span and its ERROR line the last line.
"""

import argparse
import json
import os

NS_S = 1_000_000_000
START = 1795154400 * NS_S  # 2026-11-20T06:00:00Z: carts 10 s apart, all before the as-of time


def kv(k, v):
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    if isinstance(v, float):
        return {"key": k, "value": {"doubleValue": v}}
    return {"key": k, "value": {"stringValue": v}}


def span(trace, sid, parent, name, t0, t1, attrs, status=None):
    s = {
        "traceId": trace,
        "spanId": sid,
        "name": name,
        "kind": 2,
        "startTimeUnixNano": str(t0),
        "endTimeUnixNano": str(t1),
        "attributes": [kv(k, v) for k, v in attrs.items()],
        "status": status or {},
    }
    if parent:
        s["parentSpanId"] = parent
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--carts", type=int, default=1000)
    ap.add_argument("--spans", type=int, default=200)
    ap.add_argument("--warnings", type=int, default=200)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    resource = {"attributes": [kv("service.name", "checkout")]}
    with open(os.path.join(a.out, "traces.jsonl"), "w") as tf, open(
        os.path.join(a.out, "logs.jsonl"), "w"
    ) as lf:
        for c in range(a.carts):
            cart, user = f"cart-{c:08d}", f"user-{c:07d}"
            t = START + c * 10 * NS_S
            add_trace, pay_trace = f"{2 * c + 1:032x}", f"{2 * c + 2:032x}"
            root = f"{(c << 20) + 1:016x}"
            spans = [
                span(add_trace, f"{(c << 20) + 2:016x}", None, "cart.add_item", t, t + 20_000_000,
                     {"cart.id": cart, "user.id": user, "cart.item_count": 1,
                      "cart.total_value": 50.0 + c % 100}),
                span(pay_trace, root, None, "cart.begin_checkout", t + NS_S, t + 2 * NS_S,
                     {"cart.id": cart, "user.id": user, "cart.item_count": 1,
                      "cart.total_value": 50.0 + c % 100}),
            ]
            logs = []
            for i in range(a.spans):
                t0 = t + NS_S + 1_000_000 * (i + 1)
                spans.append(span(pay_trace, f"{(c << 20) + 16 + i:016x}", root, "db.query",
                                  t0, t0 + 500_000, {"db.system": "postgresql"}))
            for i in range(a.warnings):
                logs.append({"timeUnixNano": str(t + NS_S + 700_000 * (i + 1)),
                             "severityNumber": 13, "severityText": "WARN",
                             "body": {"stringValue": f"pool slow ({i})"},
                             "traceId": pay_trace, "spanId": root})
            paid = t + 3 * NS_S
            spans.append(span(pay_trace, f"{(c << 20) + 3:016x}", root, "payment.authorize",
                              paid, paid + 300_000_000, {"cart.id": cart, "user.id": user},
                              {"code": 2, "message": "insufficient funds"}))
            logs.append({"timeUnixNano": str(paid + 300_000_000), "severityNumber": 17,
                         "severityText": "ERROR",
                         "body": {"stringValue": "payment.authorize failed: insufficient funds"},
                         "traceId": pay_trace, "spanId": f"{(c << 20) + 3:016x}"})
            tf.write(json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [
                {"scope": {"name": "shop"}, "spans": spans}]}]}) + "\n")
            lf.write(json.dumps({"resourceLogs": [{"resource": resource, "scopeLogs": [
                {"scope": {"name": "shop"}, "logRecords": logs}]}]}) + "\n")


if __name__ == "__main__":
    main()
