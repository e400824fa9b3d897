#!/usr/bin/env python3
"""The shop simulation, once for every SDK: a plan of traces and spans with their times.

    plan.py --carts N --seed S [--catalog] --out plan.json

Deterministic from the seed (each cart draws from its own random stream, so a cart does not
depend on how many carts come before it). The drivers (shop.py, js/shop.mjs) replay the plan
through a real OpenTelemetry SDK; truth.py turns the truth computed here into truth.json once
a driver has told it the trace ids the SDK chose. Standard library only.

A cart: 1-5 `cart.add_item` spans minutes apart, each the root of its own trace (service
cart); a few come back after an idle spell past the threshold (recovered carts); part of the
carts check out: a trace with root `cart.begin_checkout` (checkout), children
`shipping.calculate_rates` (shipping, sometimes slow) and `payment.authorize` (payment,
sometimes failing, sometimes retried), and `checkout.complete` (checkout) for converted carts.
Some cart spans have a nested database or HTTP client child without `cart.id`. Browsing
noise (`GET /product`, `catalog.search`) lives in traces of its own.

With --catalog the shop records a cart's value only at checkout (as much instrumentation
does), and prices elsewhere: each product has one price; most adds to the cart follow a view
of the product (`GET /product`, recording `product.id` and `product.price`); the adds record
`product.id` and `product.quantity`, and the price too for half the carts (one of the shop's
two clients records it). The truth still knows every cart's value. Without it the plan is
what it always was, to the byte.

Spans that start after the export's end are left out; spans that start before it but end
after it are started by the drivers and never ended, as an SDK at the moment of the export
would have them: they are not exported, and the truth is computed from the spans that are.
"""

import argparse
import calendar
import json
import math
import random
import sys
import time

NS_MS = 1_000_000
NS_S = 1_000 * NS_MS
NS_MIN = 60 * NS_S

END = "2026-11-20T12:00:00Z"
WINDOW_NS = 6 * 60 * NS_MIN
THRESHOLD_NS = 30 * NS_MIN
SLOW_MS = 2000.0

# Resource of each service: service.version.
SERVICES = {
    "frontend": "7.0.2",
    "catalog": "1.9.0",
    "cart": "4.2.3",
    "checkout": "2.8.1",
    "shipping": "1.14.0",
    "payment": "3.2.0",
}

# Span name -> lifecycle stage, in the order of the reference model.
STAGES = {
    "cart.add_item": (0, "active"),
    "cart.begin_checkout": (1, "checkout"),
    "shipping.calculate_rates": (2, "shipping"),
    "payment.authorize": (3, "payment"),
    "checkout.complete": (4, "completed"),
}

# The truth file's rules, word for word as `cartscope generate` writes them.
RULES = (
    "outcome: converted if it completed with no idle spell of the threshold before; "
    "recovered if it came back after such a spell and then completed or is still active; "
    "abandoned if idle at least the threshold at the end without completing; else active. "
    "last_operation: the span that ended last. suspected_cause (abandoned carts only): "
    "slow_response if it took over 2000 ms, else error if it failed, else none."
)


def end_ns():
    return calendar.timegm(time.strptime(END, "%Y-%m-%dT%H:%M:%SZ")) * NS_S


def money(v):
    return round(v * 100.0) / 100.0


class Trace:
    def __init__(self):
        self.spans = []

    def span(self, parent, service, name, kind, start, dur_ns, attrs):
        """Adds a span; attrs is a list of (key, value) with str, int or float values."""
        self.spans.append(
            {
                "parent": parent,
                "service": service,
                "name": name,
                "kind": kind,
                "start": int(start),
                "end": int(start) + max(int(dur_ns), 1000),
                "attributes": list(attrs),
                "error": None,
                "events": [],
            }
        )
        return len(self.spans) - 1


def price_of(sku):
    """A product's one price (--catalog), from its id alone."""
    r = random.Random("price:" + sku)
    return money(min(max(28.0 * math.exp(0.8 * r.gauss(0.0, 1.0)), 2.0), 900.0))


class Cart:
    def __init__(self, index, seed, carts, catalog=False):
        self.rng = random.Random(seed * 1_000_003 + index)
        self.catalog = catalog
        # --catalog: whether this cart's client records the price on its adds.
        self.client_prices = catalog and self.rng.random() < 0.5
        self.index = index
        self.cart_id = "cart-%08d" % (index + 1)
        pool = max(1, carts * 2 // 3)
        self.user_id = "user-%07d" % (self.rng.randrange(pool) + 1)
        self.items = 0
        self.value = 0.0
        self.traces = []

    def lognormal(self, median, sigma):
        return median * math.exp(sigma * self.rng.gauss(0.0, 1.0))

    def ms(self, x):
        return int(x * NS_MS)

    def sku(self):
        return "SKU-%05d" % (self.rng.randrange(5000) + 1)

    def child_inside(self, tr, parent, service, name, kind, attrs, lo=0.15, hi=0.6):
        """A nested client span without cart.id, inside its parent and ending well before it."""
        p = tr.spans[parent]
        d = p["end"] - p["start"]
        start = p["start"] + max(int(d * lo), 1000)
        end = min(p["start"] + int(d * hi), p["end"] - NS_MS)
        if end <= start:
            return
        tr.span(parent, service, name, kind, start, end - start, attrs)

    def noise(self, t0):
        t = t0 - int(self.rng.uniform(20.0, 90.0) * NS_S)
        for _ in range(1 + self.rng.randrange(2)):
            tr = Trace()
            d = self.ms(self.lognormal(60.0, 0.5))
            if self.rng.random() < 0.5:
                tr.span(-1, "frontend", "GET /product", "server", t, d, [
                    ("http.request.method", "GET"),
                    ("url.path", "/product/" + self.sku()),
                    ("http.response.status_code", 200),
                ])
            else:
                root = tr.span(-1, "catalog", "catalog.search", "server", t, d, [
                    ("search.query", self.rng.choice(["shoes", "red dress", "lamp", "usb cable", "tent"])),
                    ("search.results", self.rng.randrange(200)),
                ])
                if self.rng.random() < 0.5:
                    self.child_inside(tr, root, "catalog", "SELECT products", "client", [
                        ("db.system.name", "postgresql"),
                        ("db.operation.name", "SELECT"),
                        ("db.collection.name", "products"),
                    ])
            self.traces.append(tr)
            t += int(self.rng.uniform(5.0, 40.0) * NS_S)

    def add_item(self, t):
        if self.catalog:
            return self.add_listed_item(t)
        tr = Trace()
        d = max(self.ms(self.lognormal(35.0, 0.4)), 5 * NS_MS)
        price = money(min(max(self.lognormal(28.0, 0.8), 2.0), 900.0))
        qty = 1 + (self.rng.random() < 0.15)
        self.items += qty
        self.value = money(self.value + price * qty)
        root = tr.span(-1, "cart", "cart.add_item", "server", t, d, [
            ("cart.id", self.cart_id),
            ("user.id", self.user_id),
            ("product.id", self.sku()),
            ("cart.item_count", self.items),
            ("cart.total_value", float(self.value)),
        ])
        if self.items == qty:
            tr.spans[root]["transition"] = "active"
        if self.rng.random() < 0.1:
            self.child_inside(tr, root, "cart", "UPDATE cart_items", "client", [
                ("db.system.name", "postgresql"),
                ("db.operation.name", "UPDATE"),
                ("db.collection.name", "cart_items"),
            ])
        self.traces.append(tr)
        return tr.spans[root]["end"]

    def add_listed_item(self, t):
        """--catalog: a product view (most of the time), then the add, with the product's one
        price; the add records the price only when the cart's client does."""
        sku = self.sku()
        price = price_of(sku)
        if self.rng.random() < 0.7:
            view = Trace()
            v = t - int(self.rng.uniform(10.0, 60.0) * NS_S)
            view.span(-1, "frontend", "GET /product", "server", v, self.ms(self.lognormal(60.0, 0.5)), [
                ("http.request.method", "GET"),
                ("url.path", "/product/" + sku),
                ("http.response.status_code", 200),
                ("product.id", sku),
                ("product.price", float(price)),
            ])
            self.traces.append(view)
        tr = Trace()
        d = max(self.ms(self.lognormal(35.0, 0.4)), 5 * NS_MS)
        qty = 1 + (self.rng.random() < 0.15)
        self.items += qty
        self.value = money(self.value + price * qty)
        attrs = [
            ("cart.id", self.cart_id),
            ("user.id", self.user_id),
            ("product.id", sku),
            ("product.quantity", qty),
            ("cart.item_count", self.items),
        ]
        if self.client_prices:
            attrs.append(("product.price", float(price)))
        root = tr.span(-1, "cart", "cart.add_item", "server", t, d, attrs)
        tr.spans[root]["state"] = (self.items, self.value)
        if self.items == qty:
            tr.spans[root]["transition"] = "active"
        self.traces.append(tr)
        return tr.spans[root]["end"]

    def checkout(self, t):
        tr = Trace()
        self.traces.append(tr)
        d = max(self.ms(self.lognormal(55.0, 0.4)), 5 * NS_MS)
        root = tr.span(-1, "checkout", "cart.begin_checkout", "server", t, d, [
            ("cart.id", self.cart_id),
            ("user.id", self.user_id),
            ("cart.item_count", self.items),
            ("cart.total_value", float(self.value)),
        ])
        tr.spans[root]["transition"] = "checkout"
        if self.rng.random() < 0.2:
            self.child_inside(tr, root, "checkout", "SELECT cart_items", "client", [
                ("db.system.name", "postgresql"),
                ("db.operation.name", "SELECT"),
                ("db.collection.name", "cart_items"),
            ])
        root_end = tr.spans[root]["end"]

        # The shipping quote, right after the checkout page loads; sometimes slow.
        t = root_end + self.ms(self.rng.uniform(5.0, 40.0))
        slow = self.rng.random() < 0.15
        ms = self.rng.uniform(2300.0, 6500.0) if slow else min(self.lognormal(280.0, 0.45), 1500.0)
        ship = tr.span(root, "shipping", "shipping.calculate_rates", "server", t, self.ms(ms), [
            ("cart.id", self.cart_id),
            ("shipping.carrier", self.rng.choice(["dhl", "ups", "postnl"])),
            ("shipping.country", self.rng.choice(["NL", "DE", "US", "FR", "IN"])),
        ])
        if self.rng.random() < 0.25:
            self.child_inside(tr, ship, "shipping", "POST /v1/rates", "client", [
                ("http.request.method", "POST"),
                ("server.address", "rates.carrier.example"),
                ("http.response.status_code", 200),
            ], lo=0.05, hi=0.85)
        ship_end = tr.spans[ship]["end"]
        if self.rng.random() < (0.55 if slow else 0.12):
            return

        # The payment, once the customer has typed their card; sometimes failing.
        t = ship_end + int(self.rng.uniform(20.0, 110.0) * NS_S)
        method = self.rng.choice(["card", "paypal", "apple_pay"])
        attempt = 1
        while True:
            fails = self.rng.random() < 0.10
            timeout = fails and self.rng.random() < 0.3
            ms = self.rng.uniform(5000.0, 8000.0) if timeout else self.lognormal(420.0, 0.35)
            attrs = [
                ("cart.id", self.cart_id),
                ("payment.method", method),
                ("payment.amount", float(self.value)),
            ]
            if attempt > 1:
                attrs.append(("retry.attempt", attempt))
            pay = tr.span(root, "payment", "payment.authorize", "server", t, self.ms(ms), attrs)
            s = tr.spans[pay]
            if not fails:
                paid = True
                break
            if timeout:
                ty, msg = "TimeoutError", "payment gateway timed out after 5s"
            else:
                ty, msg = self.rng.choice([
                    ("CardDeclined", "card declined by issuer"),
                    ("InsufficientFunds", "insufficient funds"),
                ])
            s["error"] = msg
            s["events"].append({"name": "exception", "time": s["end"] - 1000, "type": ty, "message": msg})
            if attempt == 1 and self.rng.random() < 0.4:
                attempt += 1
                t = s["end"] + int(self.rng.uniform(4.0, 25.0) * NS_S)
                continue
            paid = False
            break
        pay_end = tr.spans[-1]["end"]
        if not paid:
            # Most customers whose payment failed leave; the rest pay another way.
            if self.rng.random() < 0.85:
                return
            t = pay_end + int(self.rng.uniform(30.0, 90.0) * NS_S)
            tr.span(root, "payment", "payment.authorize", "server", t,
                    self.ms(self.lognormal(420.0, 0.35)), [
                        ("cart.id", self.cart_id),
                        ("payment.method", "paypal"),
                        ("payment.amount", float(self.value)),
                        ("retry.attempt", attempt + 1),
                    ])
            pay_end = tr.spans[-1]["end"]
        if self.rng.random() < 0.04:
            return  # paid, then closed the tab before the order was placed
        t = pay_end + self.ms(self.rng.uniform(30.0, 300.0))
        done = tr.span(root, "checkout", "checkout.complete", "server", t, self.ms(self.lognormal(90.0, 0.4)), [
            ("cart.id", self.cart_id),
            ("user.id", self.user_id),
            ("order.id", "ord-%012x" % self.rng.getrandbits(48)),
        ])
        tr.spans[done]["transition"] = "completed"


def simulate(index, seed, carts, end, catalog=False):
    c = Cart(index, seed, carts, catalog)
    slot = WINDOW_NS / max(carts, 1)
    t0 = end - WINDOW_NS + int((index + c.rng.random()) * slot)
    c.noise(t0)
    n_items = 1 + c.rng.randrange(5)
    t = t0
    last_end = t0
    for k in range(n_items):
        if k > 0:
            t += int(min(c.rng.expovariate(1 / 2.5), 12.0) * NS_MIN) + NS_S
        last_end = c.add_item(t)
    if c.rng.random() < 0.05:
        # Back after an idle spell past the threshold: a recovered cart.
        last_end = c.add_item(last_end + THRESHOLD_NS + int(c.rng.uniform(10.0, 90.0) * NS_MIN))
    if c.rng.random() < 0.45:
        c.checkout(last_end + int(min(c.rng.expovariate(1 / 3.0), 15.0) * NS_MIN) + NS_S)
    return c


def cart_of(spans):
    """The cart a trace belongs to: the (least) cart.id among its exported spans."""
    ids = [v for s in spans if s["exported"] for k, v in s["attributes"] if k == "cart.id"]
    return min(ids) if ids else None


def truth_of(cart_id, spans, end):
    """The truth about one cart from its exported spans, by `cartscope generate`'s rules.

    `spans`: (trace index, span) of every exported span of the cart's traces, child spans
    without cart.id included (a span belongs to the cart that its trace belongs to).
    """
    order = sorted(range(len(spans)), key=lambda i: (spans[i][1]["start"], i))
    max_end = 0
    came_back = False
    for k, i in enumerate(order):
        s = spans[i][1]
        if k > 0 and s["start"] >= max_end + THRESHOLD_NS:
            came_back = True
        max_end = max(max_end, s["end"])
    first_seen = min(s["start"] for _, s in spans)
    li = max(range(len(spans)), key=lambda i: (spans[i][1]["end"], spans[i][1]["start"], i))
    last_trace, last = spans[li]
    converted = any(s["name"] == "checkout.complete" for _, s in spans)
    idle = end - max_end
    if converted:
        outcome = "recovered" if came_back else "converted"
    elif idle >= THRESHOLD_NS:
        outcome = "abandoned"
    elif came_back:
        outcome = "recovered"
    else:
        outcome = "active"
    stage = max((STAGES[s["name"]] for _, s in spans if s["name"] in STAGES), default=(0, "active"))[1]
    latest = None
    user = None
    for _, s in spans:
        a = dict(s["attributes"])
        # The cart's items and value after this span: as recorded, or (--catalog, where the
        # adds record no value) as the plan knows them.
        state = s.get("state")
        if state is None and "cart.item_count" in a and "cart.total_value" in a:
            state = (a["cart.item_count"], a["cart.total_value"])
        if state is not None:
            if latest is None or s["end"] >= latest[0]:
                latest = (s["end"], state[0], state[1])
        if "user.id" in a:
            user = a["user.id"]
    _, item_count, value = latest or (0, 0, 0.0)
    duration_ms = (last["end"] - last["start"]) / 1e6
    if outcome != "abandoned":
        cause = "none"
    elif duration_ms > SLOW_MS:
        cause = "slow_response"
    elif last["error"] is not None:
        cause = "error"
    else:
        cause = "none"
    return {
        "cart_id": cart_id,
        "user_id": user,
        "outcome": outcome,
        "last_stage": stage,
        "item_count": item_count,
        "value": value,
        "first_seen": first_seen,
        "last_activity": max_end,
        "last_operation": last["name"],
        "last_op_duration_ms": duration_ms,
        "last_op_status": "error" if last["error"] is not None else "unset",
        "last_trace": last_trace,  # truth.py puts the trace id the SDK chose here
        "suspected_cause": cause,
        "span_count": len(spans),
    }


def build(carts, seed, catalog=False):
    end = end_ns()
    traces = []  # (first start, cart index, order in cart, Trace)
    for index in range(carts):
        c = simulate(index, seed, carts, end, catalog)
        for k, tr in enumerate(c.traces):
            # Spans that start after the end never existed; those that end after it were
            # never exported.
            kept = {}
            for i, s in enumerate(tr.spans):
                if s["start"] < end and (s["parent"] < 0 or s["parent"] in kept):
                    kept[i] = len(kept)
            spans = []
            for i, new in kept.items():
                s = dict(tr.spans[i])
                s["parent"] = kept[s["parent"]] if s["parent"] >= 0 else -1
                s["exported"] = s["end"] <= end
                spans.append(s)
            if spans:
                traces.append((spans[0]["start"], index, k, spans))
    traces.sort(key=lambda x: (x[0], x[1], x[2]))
    traces = [t[3] for t in traces]

    # The truth, from the exported spans only.
    by_cart = {}
    noise_spans = 0
    for ti, spans in enumerate(traces):
        cart = cart_of(spans)
        exported = [s for s in spans if s["exported"]]
        if cart is None:
            noise_spans += len(exported)
            continue
        by_cart.setdefault(cart, []).extend((ti, s) for s in exported)
    truth = [truth_of(cid, by_cart[cid], end) for cid in sorted(by_cart)]

    # The order a live shop would run them in: every span starts at its start and ends at its
    # end, all traces interleaved; unexported spans are started and never ended.
    events = []
    for ti, spans in enumerate(traces):
        for si, s in enumerate(spans):
            events.append((s["start"], 1, ti, si))
            if s["exported"]:
                events.append((s["end"], 0, ti, si))
    events.sort()

    def out_span(s):
        o = {
            "parent": s["parent"],
            "service": s["service"],
            "name": s["name"],
            "kind": s["kind"],
            # Strings: nanoseconds since the epoch do not fit a JavaScript number.
            "start": str(s["start"]),
            "end": str(s["end"]),
            "exported": s["exported"],
            # [key, "string"|"int"|"double", value]
            "attributes": [
                [k, "string" if isinstance(v, str) else "int" if isinstance(v, int) else "double", v]
                for k, v in s["attributes"]
            ],
        }
        if s["error"] is not None:
            o["error"] = s["error"]
        if s["events"]:
            o["events"] = [dict(e, time=str(e["time"])) for e in s["events"]]
        # The stage this span moves its cart into, for the drivers' transition counter
        # (shop.py --metrics-endpoint); not an attribute.
        if s.get("transition"):
            o["transition"] = s["transition"]
        return o

    return {
        "version": 1,
        "generator": {
            "carts": carts,
            "end": END,
            "incidents": [],
            "naming": "reference",
            "rules": RULES,
            "seed": seed,
            "threshold": "30m",
            "window": "6h",
        },
        "end_ns": str(end),
        "services": SERVICES,
        "traces": [[out_span(s) for s in spans] for spans in traces],
        # [0 = end | 1 = start, trace index, span index], in time order.
        "events": [[kind, ti, si] for _, kind, ti, si in events],
        "truth": truth,
        "noise_spans": noise_spans,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--carts", type=int, required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--catalog", action="store_true", help="values at checkout, prices on product views")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.carts < 1:
        sys.exit("plan.py: --carts must be at least 1")
    plan = build(a.carts, a.seed, a.catalog)
    with open(a.out, "w") as f:
        json.dump(plan, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
