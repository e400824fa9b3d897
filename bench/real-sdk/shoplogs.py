"""The log lines the shop's services write inside their spans, planned from a plan (plan.py).

Shared by shop.py (which writes them through Python's `logging` and the OpenTelemetry SDK's
LoggingHandler, inside the span) and truth.py (which checks the export against them and
writes each cart's last warning or error line). Standard library only; deterministic from the
plan, so from the seed.

Like `log_of` in src/generate/mod.rs, but a span can write more than one line:

- a span that took 2,000 ms or more: WARN `<name> slow: took <whole ms> ms`, 2 ms before its
  end (as the service notices the slow call returning);
- a failed span (a payment): ERROR `<name> failed: <status message>`, at its exception event
  (1 us before its end; after the slow warning when both);
- `checkout.complete`: INFO `order placed`, 1 ms before its end.

A line exists when its time is before the end of the export window (a span still open at the
end writes the lines due before it, though the span itself is never exported). Times are
moved down to the nanosecond the SDK writes back unchanged: the LoggingHandler takes a
record's time as `int(record.created * 1e9)` from a float of seconds, which holds multiples of
256 ns at these dates.
"""

NS_MS = 1_000_000
SLOW_NS = 2_000 * NS_MS
THRESHOLD_NS = 30 * 60 * 1_000 * NS_MS

# severity text as the Python SDK writes it -> (Python logging level name, severity number)
SEVERITIES = {"INFO": ("INFO", 9), "WARN": ("WARNING", 13), "ERROR": ("ERROR", 17)}


def sdk_time(t):
    """The latest time <= t that survives `int((t / 1e9) * 1e9)`."""
    t -= t % 256
    for _ in range(1 << 16):
        if int((t / 1e9) * 1e9) == t:
            return t
        t -= 256
    raise ValueError(f"no float-exact time near {t}")


def body_of(kind, args):
    """The body the driver's logging call produces (the same format strings as shop.py)."""
    if kind == "failed":
        return "%s failed: %s" % tuple(args)
    if kind == "slow":
        return "%s slow: took %d ms" % tuple(args)
    return "order placed"


def plan_logs(plan):
    """Every log line, in time order: dicts with trace, span (indexes into plan["traces"]),
    time (ns), kind (failed | slow | placed), args (of the logging call), severity (the
    SDK's severity text), service, logger (the Python logger's name, the record's scope)
    and body."""
    end = int(plan["end_ns"])
    out = []
    for ti, spans in enumerate(plan["traces"]):
        for si, s in enumerate(spans):
            start, stop = int(s["start"]), int(s["end"])
            lines = []
            if stop - start >= SLOW_NS:
                ms = (stop - start) // NS_MS
                lines.append((stop - 2 * NS_MS, "slow", [s["name"], ms], "WARN"))
            if "error" in s:
                at = max(int(e["time"]) for e in s["events"]) if s.get("events") else stop - 1000
                lines.append((at, "failed", [s["name"], s["error"]], "ERROR"))
            if s["name"] == "checkout.complete":
                lines.append((stop - NS_MS, "placed", [], "INFO"))
            for t, kind, args, sev in lines:
                t = sdk_time(t)
                if t >= end:
                    continue
                if not start < t < stop:
                    raise ValueError(f"a {kind} log line at {t} is outside its span {s['name']} [{start}, {stop}]")
                out.append(
                    {
                        "trace": ti,
                        "span": si,
                        "time": t,
                        "kind": kind,
                        "args": args,
                        "severity": sev,
                        "service": s["service"],
                        "logger": "shop." + s["service"],
                        "body": body_of(kind, args),
                    }
                )
    out.sort(key=lambda r: (r["time"], r["trace"], r["span"]))
    return out


def cart_of(spans):
    """As plan.cart_of: the (least) cart.id among a trace's exported spans."""
    ids = [v for s in spans if s["exported"] for k, ty, v in s["attributes"] if k == "cart.id"]
    return min(ids) if ids else None


def last_logs(plan, logs):
    """cart id -> (log count, last warning-or-error line or None) for every cart.

    A cart's lines are those written in its traces (every trace with a span carrying its
    cart.id, as cartscope's cart_logs links them). The last warning or error line is kept for
    abandoned carts only, up to its abandonment (last activity + the threshold), the latest
    first to the microsecond (ties: higher severity, then body, as cartscope orders them); None
    otherwise.
    """
    trace_cart = [cart_of(spans) for spans in plan["traces"]]
    outcome = {t["cart_id"]: t for t in plan["truth"]}
    count = {}
    last = {}
    for r in logs:
        cart = trace_cart[r["trace"]]
        if cart is None:
            continue
        count[cart] = count.get(cart, 0) + 1
        t = outcome[cart]
        if t["outcome"] != "abandoned" or r["severity"] not in ("WARN", "ERROR"):
            continue
        if r["time"] > t["last_activity"] + THRESHOLD_NS:
            continue
        # cartscope keeps times to the microsecond
        key = (r["time"] // 1000, SEVERITIES[r["severity"]][1], r["body"])
        if cart not in last or key > last[cart][0]:
            last[cart] = (key, r)
    return {
        cid: (count.get(cid, 0), last[cid][1] if cid in last else None) for cid in outcome
    }
